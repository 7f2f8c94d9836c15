"""mloop.features"""
