"""Batch scoring on the local engine: formats, folders, rejects, resume, refusals."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from mloop.errors import ConflictError, NotFoundError, ValidationError
from mloop.jobs.batch import batch_predict
from mloop.model.table import check_chunk
from mloop.registry.resolve import load_model
from tests.support import modelkit


@pytest.fixture(scope="module")
def model(jobs_model):
    return load_model("churn@production", jobs_model.settings)


@pytest.fixture(scope="module")
def table(jobs_model):
    frame, _ = modelkit.make_frame(1000, seed=3)
    frame.insert(0, "customer_id", [f"c{i:04d}" for i in range(len(frame))])
    return frame


def _expected(jobs_model, frame):
    return jobs_model.pipeline.predict_proba(frame[list(modelkit.COLUMNS)])


@pytest.mark.parametrize("suffix", [".csv", ".parquet"])
def test_a_file_is_scored_in_chunks_with_ids_and_versions(
    jobs_model, model, table, tmp_path, suffix
):
    source = tmp_path / f"in{suffix}"
    table.to_csv(source, index=False) if suffix == ".csv" else table.to_parquet(source)
    out = tmp_path / f"out{suffix}"
    seen = []
    summary = batch_predict(
        "churn@production",
        source,
        out,
        settings=jobs_model.settings,
        chunk_rows=128,
        model=model,
        progress=lambda done, total: seen.append((done, total)),
    )
    assert (summary.rows, summary.scored, summary.rejected) == (1000, 1000, 0)
    assert summary.chunks == 8 and summary.chunks_skipped == 0 and summary.rejects is None
    result = pd.read_csv(out) if suffix == ".csv" else pd.read_parquet(out)
    assert list(result.columns) == ["customer_id", "prediction", "probability", "model_version"]
    assert result["customer_id"].tolist() == table["customer_id"].tolist()
    expected = _expected(jobs_model, table)
    assert result["prediction"].tolist() == expected.argmax(axis=1).tolist()
    assert np.allclose(result["probability"], expected.max(axis=1))
    assert set(result["model_version"].astype(str)) == {"1"}
    assert seen[-1][0] == 1000 and len(seen) == 9
    assert not out.with_name(out.name + ".parts").exists()  # parts removed once assembled


def test_a_folder_of_mixed_files_goes_to_a_folder_of_parts(jobs_model, model, table, tmp_path):
    folder = tmp_path / "inputs"
    folder.mkdir()
    table.iloc[:400].to_csv(folder / "a.csv", index=False)
    table.iloc[400:].to_parquet(folder / "b.parquet")
    (folder / "notes.txt").write_text("ignored")
    summary = batch_predict(
        "churn@production",
        folder,
        tmp_path / "scores",
        settings=jobs_model.settings,
        chunk_rows=250,
        model=model,
    )
    assert summary.files == 2 and summary.rows == 1000 and summary.chunks == 5
    result = pd.read_parquet(tmp_path / "scores")
    assert sorted(result["customer_id"]) == sorted(table["customer_id"])


def test_rows_failing_validation_go_to_rejects_with_row_and_reason(
    jobs_model, model, table, tmp_path
):
    source = tmp_path / "dirty.csv"
    dirty = table.head(300).copy().astype({"support_calls": object, "tenure": object})
    dirty.loc[5, "support_calls"] = "lots"  # not a number: read on as text from here
    dirty.loc[17, "support_calls"] = 2.5  # a fraction for an integer feature
    dirty.loc[250, "tenure"] = "inf"
    dirty.loc[260, "plan"] = None  # required string
    dirty.to_csv(source, index=False)
    summary = batch_predict(
        "churn@production",
        source,
        tmp_path / "out.csv",
        settings=jobs_model.settings,
        chunk_rows=100,
        model=model,
    )
    assert (summary.rows, summary.scored, summary.rejected) == (300, 296, 4)
    rejects = pd.read_csv(summary.rejects)
    assert rejects["row"].tolist() == [6, 18, 251, 261]  # 1-based data rows
    assert rejects["customer_id"].tolist() == ["c0005", "c0017", "c0250", "c0260"]
    reasons = rejects["reason"].tolist()
    assert reasons[0] == "feature 'support_calls' expects an integer, got 'lots'"
    assert reasons[1].startswith("feature 'support_calls' expects an integer, got '2.5'")
    assert reasons[2].startswith("feature 'tenure' is not finite, got")
    assert reasons[3] == "feature 'plan' is required"
    scored = pd.read_csv(tmp_path / "out.csv")
    assert len(scored) == 296 and "c0005" not in set(scored["customer_id"])


def test_a_folder_output_with_rejects_still_reads_as_one_parquet_table(
    jobs_model, model, table, tmp_path
):
    source = tmp_path / "dirty.csv"
    dirty = table.head(300).copy().astype({"tenure": object})
    dirty.loc[7, "tenure"] = "inf"
    dirty.to_csv(source, index=False)
    summary = batch_predict(
        "churn@production",
        source,
        tmp_path / "scores",
        settings=jobs_model.settings,
        chunk_rows=100,
        model=model,
    )
    assert summary.rejected == 1 and summary.rejects == str(tmp_path / "scores" / "_rejects.csv")
    result = pd.read_parquet(tmp_path / "scores")  # the rejects file is not taken for a part
    assert len(result) == 299 and "c0007" not in set(result["customer_id"])
    assert pd.read_csv(summary.rejects)["customer_id"].tolist() == ["c0007"]


def test_malformed_lines_are_rejected_not_fatal(jobs_model, model, table, tmp_path):
    source = tmp_path / "broken.csv"
    lines = table.head(50).to_csv(index=False).splitlines()
    lines.insert(10, "c9999,1.0")  # two fields instead of six
    source.write_text("\n".join(lines) + "\n")
    summary = batch_predict(
        "churn@production",
        source,
        tmp_path / "out.csv",
        settings=jobs_model.settings,
        model=model,
    )
    assert summary.scored == 50 and summary.rejected == 1
    rejects = pd.read_csv(summary.rejects)
    assert "expected 6 fields, got 2" in rejects["reason"][0]


def test_an_interrupted_run_resumes_and_skips_finished_chunks(jobs_model, model, table, tmp_path):
    source = tmp_path / "in.parquet"
    table.to_parquet(source)
    out = tmp_path / "out.csv"

    def interrupt(done, total):
        if done >= 500:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        batch_predict(
            "churn@production",
            source,
            out,
            settings=jobs_model.settings,
            chunk_rows=100,
            model=model,
            progress=interrupt,
        )
    assert not out.exists()
    assert (tmp_path / "out.csv.parts" / "_manifest.json").exists()
    summary = batch_predict(
        "churn@production", source, out, settings=jobs_model.settings, chunk_rows=100, model=model
    )
    assert summary.chunks == 10 and 5 <= summary.chunks_skipped < 10
    assert summary.rows == 1000 and summary.scored == 1000
    result = pd.read_csv(out)
    assert result["customer_id"].tolist() == table["customer_id"].tolist()  # once each, in order


def test_a_resume_with_other_settings_or_an_existing_output_is_refused(
    jobs_model, model, table, tmp_path
):
    source = tmp_path / "in.parquet"
    table.to_parquet(source)
    out = tmp_path / "out.parquet"

    def interrupt(done, total):
        if done >= 200:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        batch_predict(
            "churn@production",
            source,
            out,
            settings=jobs_model.settings,
            chunk_rows=100,
            model=model,
            progress=interrupt,
        )
    with pytest.raises(ConflictError, match="different chunk_rows"):
        batch_predict(
            "churn@production",
            source,
            out,
            settings=jobs_model.settings,
            chunk_rows=50,
            model=model,
        )
    summary = batch_predict(
        "churn@production",
        source,
        out,
        settings=jobs_model.settings,
        chunk_rows=50,
        model=model,
        restart=True,
    )
    assert summary.chunks_skipped == 0 and summary.rows == 1000
    with pytest.raises(ConflictError, match="already exists"):
        batch_predict("churn@production", source, out, settings=jobs_model.settings, model=model)


def test_bad_inputs_are_clear_errors(jobs_model, model, table, tmp_path):
    settings = jobs_model.settings
    with pytest.raises(NotFoundError, match="does not exist"):
        batch_predict("churn@production", tmp_path / "nope.csv", tmp_path / "o", settings=settings)
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValidationError, match="holds no data files"):
        batch_predict("churn@production", tmp_path / "empty", tmp_path / "o", settings=settings)
    lacking = tmp_path / "lacking.csv"
    table.drop(columns=["plan"]).to_csv(lacking, index=False)
    with pytest.raises(ValidationError, match="no column for feature 'plan'"):
        batch_predict("churn@production", lacking, tmp_path / "o", settings=settings, model=model)
    with pytest.raises(ValidationError, match="no id column 'key'"):
        batch_predict(
            "churn@production",
            lacking.with_name("x.csv") if False else _good(table, tmp_path),
            tmp_path / "o2",
            settings=settings,
            model=model,
            id_column="key",
        )
    with pytest.raises(NotFoundError):
        batch_predict("churn/42", _good(table, tmp_path), tmp_path / "o3", settings=settings)


def _good(table, tmp_path):
    path = tmp_path / "good.parquet"
    table.to_parquet(path)
    return path


def test_chunk_validation_matches_the_request_validator(jobs_model, model, table):
    frame = table[list(modelkit.COLUMNS)].head(50)
    checked = check_chunk(model.schema, frame)
    assert checked.good.all() and checked.rejected == 0
    reference = model.schema.to_frame(modelkit.json_rows(frame))
    pd.testing.assert_frame_equal(
        checked.frame.astype({"plan": object}),
        reference.astype({"plan": object}),
        check_dtype=False,
    )
    assert list(checked.frame.dtypes.astype(str))[:3] == list(reference.dtypes.astype(str))[:3]
