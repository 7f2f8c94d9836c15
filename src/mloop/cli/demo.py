"""Stub: replaced by the real command."""


def demo() -> None:
    """(not yet implemented)"""
    raise SystemExit("not yet implemented")
