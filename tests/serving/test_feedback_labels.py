"""POST /feedback refuses labels the model cannot answer: 422 naming the allowed values."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select

from mloop.errors import ValidationError
from mloop.monitoring.feedback import LabelSpace
from mloop.serving.app import create_app
from mloop.store import open_database
from mloop.store.monitoring import FeedbackRecord
from tests.support import loopkit, modelkit
from tests.support.apps import in_process


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    settings = modelkit.home_settings(tmp_path_factory.mktemp("feedback-labels"))
    return modelkit.train_and_register(settings)


@pytest.fixture(scope="module")
def server(trained):
    with in_process(create_app("churn@production", trained.settings)) as live:
        yield live


def _labels_stored(trained) -> int:
    with open_database(trained.settings).session() as session:
        return session.scalar(select(func.count()).select_from(FeedbackRecord))


def _ids(server, trained, n, start):
    return loopkit.predict_ids(server, modelkit.json_rows(trained.frame.iloc[start : start + n]))


@pytest.mark.parametrize("actual", ["banana", 7, True, -1.5])
def test_a_label_outside_the_classes_is_a_422_and_nothing_is_stored(server, trained, actual):
    before = _labels_stored(trained)
    ids = _ids(server, trained, 1, start=0)
    answer = server.post("/feedback", json={"prediction_id": ids[0], "actual": actual})
    assert answer.status_code == 422, answer.text
    detail = answer.json()["detail"]
    assert "'actual'" in detail and "allowed: 0, 1" in detail
    assert _labels_stored(trained) == before


def test_one_impossible_label_refuses_the_whole_bulk_request(server, trained):
    before = _labels_stored(trained)
    ids = _ids(server, trained, 3, start=3)
    items = [{"prediction_id": i, "actual": a} for i, a in zip(ids, [0, "banana", 1], strict=True)]
    answer = server.post("/feedback", json={"feedback": items})
    assert answer.status_code == 422, answer.text
    assert "feedback[1]" in answer.json()["detail"] and "'banana'" in answer.json()["detail"]
    assert _labels_stored(trained) == before


def test_the_classes_in_another_spelling_are_accepted(server, trained):
    ids = _ids(server, trained, 2, start=8)
    for pid, actual in zip(ids, ["1", 0.0], strict=True):
        answer = server.post("/feedback", json={"prediction_id": pid, "actual": actual})
        assert answer.status_code == 200, answer.text


def test_a_model_answering_numbers_takes_numbers_only():
    space = LabelSpace(None)
    assert space.check(3.5, prediction=2.0, where="body") == 3.5
    with pytest.raises(ValidationError, match="'actual' must be a number.*'banana'"):
        space.check("banana", prediction=2.0, where="body")
    with pytest.raises(ValidationError, match="must be a number"):
        space.check(True, prediction=2.0, where="body")
    # a model answering text without classes: nothing to check against
    assert space.check("anything", prediction="a", where="body") == "anything"
