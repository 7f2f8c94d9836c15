"""Stub: replaced by the real command."""


def train() -> None:
    """(not yet implemented)"""
    raise SystemExit("not yet implemented")
