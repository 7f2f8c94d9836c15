"""The error tree: statuses, exit codes, JSON bodies and the extra-import helper."""

from __future__ import annotations

import pytest

from mloop import errors


@pytest.mark.parametrize(
    ("cls", "status", "code"),
    [
        (errors.MloopError, 500, 1),
        (errors.UserError, 400, 2),
        (errors.ConfigError, 400, 2),
        (errors.ValidationError, 422, 2),
        (errors.NotFoundError, 404, 3),
        (errors.ConflictError, 409, 4),
        (errors.PayloadTooLargeError, 413, 2),
        (errors.CriteriaNotMetError, 422, 5),
        (errors.ServiceUnavailableError, 503, 6),
        (errors.ModelIntegrityError, 409, 10),
    ],
)
def test_status_and_exit_code(cls, status, code):
    assert (cls.http_status, cls.exit_code) == (status, code)
    assert issubclass(cls, errors.MloopError)


def test_to_dict_carries_detail_and_hint():
    err = errors.NotFoundError("model 'x' not found", hint="mloop models list")
    assert err.to_dict() == {
        "error": "NotFoundError",
        "detail": "model 'x' not found",
        "hint": "mloop models list",
    }
    assert "hint" not in errors.ValidationError("bad").to_dict()


def test_require_names_the_extra_to_install():
    with pytest.raises(errors.MissingExtraError) as info:
        errors.require("surely_not_an_installed_module_xyz", "ray")
    assert info.value.hint == "pip install 'mloop[ray]'"
    assert info.value.exit_code == 7
    assert errors.require("json", "dev").dumps([1]) == "[1]"
