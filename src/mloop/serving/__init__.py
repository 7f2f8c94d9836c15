"""mloop.serving"""
