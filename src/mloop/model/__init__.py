"""A model version as a servable thing: loading (flavors, native fast paths, ONNX), its input
schema and validation, and the shape of its answers.

Serving, jobs, optimize, governance and monitoring import this package; it imports none of them.
"""
