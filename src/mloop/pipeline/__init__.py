"""mloop.pipeline"""
