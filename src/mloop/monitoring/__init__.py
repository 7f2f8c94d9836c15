"""mloop.monitoring"""
