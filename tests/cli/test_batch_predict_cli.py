"""`mloop batch-predict` through Typer's runner: summary, JSON, rejects, resume, exit codes."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from mloop.cli.main import app
from tests.support import modelkit

runner = CliRunner()


@pytest.fixture
def data(mloop_home, tmp_path) -> Path:
    modelkit.train_and_register(mloop_home)
    frame, _ = modelkit.make_frame(500, seed=11)
    frame.insert(0, "id", range(500))
    frame = frame.astype({"support_calls": object})
    frame.loc[42, "support_calls"] = "many"
    path = tmp_path / "customers.csv"
    frame.to_csv(path, index=False)
    return path


def test_scores_a_file_and_prints_a_summary(data, tmp_path):
    out = tmp_path / "scores.parquet"
    result = runner.invoke(
        app, ["batch-predict", "churn@production", str(data), str(out), "--chunk-rows", "100"]
    )
    assert result.exit_code == 0, result.output
    assert "Scored 499 rows with churn version 1 (local)" in result.output
    assert "rejected    1" in result.output and "scores.rejects.csv" in result.output
    scores = pd.read_parquet(out)
    assert list(scores.columns) == ["id", "prediction", "probability", "model_version"]
    assert 42 not in set(scores["id"]) and len(scores) == 499
    rejects = pd.read_csv(tmp_path / "scores.rejects.csv")
    assert rejects["row"].tolist() == [43]
    assert rejects["reason"][0] == "feature 'support_calls' expects an integer, got 'many'"


def test_json_summary_and_refusal_to_overwrite(data, tmp_path):
    out = tmp_path / "scores.csv"
    result = runner.invoke(app, ["batch-predict", "churn/1", str(data), str(out), "--json"])
    assert result.exit_code == 0, result.output
    summary = json.loads(result.output)
    assert summary["scored"] == 499 and summary["rejected"] == 1 and summary["rows"] == 500
    again = runner.invoke(app, ["batch-predict", "churn/1", str(data), str(out)])
    assert again.exit_code == 4 and "already exists" in again.output
    assert "hint: pass --restart" in again.output
    redo = runner.invoke(app, ["batch-predict", "churn/1", str(data), str(out), "--restart"])
    assert redo.exit_code == 0


def test_errors_exit_with_their_codes(data, tmp_path):
    missing = runner.invoke(app, ["batch-predict", "churn/1", str(tmp_path / "no.csv"), "o"])
    assert missing.exit_code == 3 and "does not" in missing.output
    assert "scoring" not in missing.output  # no progress bar for a run that never started
    model = runner.invoke(app, ["batch-predict", "churn/7", str(data), str(tmp_path / "o")])
    assert model.exit_code == 3
    text = tmp_path / "data.txt"
    text.write_text("a,b\n")
    wrong = runner.invoke(app, ["batch-predict", "churn/1", str(text), str(tmp_path / "o")])
    assert wrong.exit_code == 2 and "unsupported table extension" in wrong.output
    engine = runner.invoke(app, ["batch-predict", "churn/1", str(data), "o", "--engine", "spark"])
    assert engine.exit_code == 2


def test_help_has_an_example():
    result = runner.invoke(app, ["batch-predict", "--help"])
    assert result.exit_code == 0
    assert "Example: mloop batch-predict churn@production" in result.output
