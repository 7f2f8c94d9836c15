"""Rerunning batch-predict on a finished output: skip the finished chunks, never crash."""

from __future__ import annotations

import dataclasses

import pandas as pd
import pytest

from mloop.errors import ConflictError
from mloop.jobs.batch import batch_predict
from mloop.registry.resolve import load_model
from tests.support import modelkit


@pytest.fixture(scope="module")
def model(jobs_model):
    return load_model("churn@production", jobs_model.settings)


@pytest.fixture
def dirty(tmp_path):
    frame, _ = modelkit.make_frame(300, seed=5)
    frame.insert(0, "customer_id", [f"c{i:04d}" for i in range(len(frame))])
    frame = frame.astype({"support_calls": object})
    frame.loc[5, "support_calls"] = "lots"
    frame.loc[150, "support_calls"] = "many"
    source = tmp_path / "dirty.csv"
    frame.to_csv(source, index=False)
    return source


def _run(jobs_model, model, source, out, **options):
    return batch_predict(
        "churn@production",
        source,
        out,
        settings=jobs_model.settings,
        chunk_rows=100,
        model=model,
        **options,
    )


def test_a_rerun_on_a_finished_folder_with_rejects_skips_every_chunk(
    jobs_model, model, dirty, tmp_path
):
    out = tmp_path / "scores"
    first = _run(jobs_model, model, dirty, out)
    assert first.rejected == 2 and first.rejects is not None
    before = pd.read_csv(first.rejects)
    again = _run(jobs_model, model, dirty, out)
    assert again.chunks == 3 and again.chunks_skipped == 3
    assert (again.rows, again.scored, again.rejected) == (300, 298, 2)
    assert again.rejects == first.rejects
    pd.testing.assert_frame_equal(pd.read_csv(again.rejects), before)
    assert sum(len(pd.read_parquet(part)) for part in out.glob("part-*.parquet")) == 298


def test_a_finished_output_of_another_model_is_named_as_finished(
    jobs_model, model, dirty, tmp_path
):
    out = tmp_path / "scores"
    _run(jobs_model, model, dirty, out)
    other = dataclasses.replace(model, uri="models:/churn/99", version="99")
    with pytest.raises(ConflictError) as caught:
        _run(jobs_model, other, dirty, out)
    message = caught.value.message
    assert "unfinished" not in message
    assert "finished run" in message and "model_uri" in message
    assert "models:/churn/1" in message
    assert "--restart" in caught.value.hint and "another OUTPUT" in caught.value.hint
