"""The curated top-level API: everything in __all__ resolves, and nothing else is promised."""

from __future__ import annotations

import mloop


def test_all_names_resolve():
    for name in mloop.__all__:
        assert getattr(mloop, name) is not None, name


def test_public_api_is_exactly_this():
    assert sorted(mloop.__all__) == [
        "Client",
        "MloopError",
        "Settings",
        "__version__",
        "get_settings",
    ]


def test_unknown_attribute_raises():
    import pytest

    with pytest.raises(AttributeError):
        _ = mloop.not_a_thing
