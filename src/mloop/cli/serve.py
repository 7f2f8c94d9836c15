"""Stub: replaced by the real command."""


def serve() -> None:
    """(not yet implemented)"""
    raise SystemExit("not yet implemented")
