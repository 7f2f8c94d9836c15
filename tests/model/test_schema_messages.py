"""What a row with several problems is told: the wrong value sent comes first."""

from __future__ import annotations

import pytest

from mloop.errors import ValidationError
from mloop.model.schema import Feature, InputSchema

SCHEMA = InputSchema(
    [Feature("age", "double"), Feature("tenure_months", "long"), Feature("plan", "string")]
)


def test_a_wrong_type_is_named_before_the_missing_features():
    with pytest.raises(ValidationError) as caught:
        SCHEMA.validate([{"age": "x"}])
    assert caught.value.message == (
        "row 0: feature 'age' expects a number, got a string ('x'); "
        "missing feature 'tenure_months', 'plan'"
    )


def test_missing_and_unknown_features_alone_are_named_as_before():
    with pytest.raises(ValidationError) as caught:
        SCHEMA.validate([{"age": 3.0, "extra": 1}])
    assert caught.value.message == (
        "row 0: missing feature 'tenure_months', 'plan'; unknown feature 'extra'"
    )
