"""`mloop drift` through Typer's runner: two tables, a model's profile, outputs and errors."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from mloop.cli.main import app
from mloop.data import generate_churn, write_table

runner = CliRunner()


def squash(text: str) -> str:
    return "".join(text.split())


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    folder = tmp_path_factory.mktemp("drift")
    ref = write_table(generate_churn(3000, seed=1), folder / "ref.parquet")
    same = write_table(generate_churn(1000, seed=2), folder / "same.csv")
    drifted = write_table(generate_churn(1000, seed=3, drift=True), folder / "drifted.csv")
    return ref, same, drifted


def test_drift_writes_json_and_html(files, tmp_path):
    ref, _, drifted = files
    out, js = tmp_path / "r" / "report.html", tmp_path / "r" / "result.json"
    result = runner.invoke(
        app, ["drift", str(ref), str(drifted), "--out", str(out), "--json", str(js)]
    )
    assert result.exit_code == 0, result.output
    body = json.loads(js.read_text())
    assert body["dataset_drift"] is True
    assert body["columns"]["tenure_months"]["drift_detected"] is True
    assert body["columns"]["region"]["drift_detected"] is False
    assert "<svg" in out.read_text() and "Dataset drift detected" in out.read_text()
    assert "datasetdrift" in squash(result.output)


def test_columns_option_and_fail_on_drift(files, tmp_path):
    ref, same, drifted = files
    js = tmp_path / "r.json"
    result = runner.invoke(
        app, ["drift", str(ref), str(same), "--columns", "age,region", "--json", str(js),
              "--fail-on-drift"],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert list(json.loads(js.read_text())["columns"]) == ["age", "region"]
    result = runner.invoke(app, ["drift", str(ref), str(drifted), "--fail-on-drift"])
    assert result.exit_code == 10


@pytest.mark.parametrize(
    "args,code,message",
    [
        (["missing.csv", "other.csv"], 3, "does not exist"),
        (["{ref}", "{same}", "--columns", "nope"], 2, "has no column 'nope'"),
        (["{ref}", "{same}", "--method", "magic"], 2, "unknown drift method"),
        (["{ref}"], 2, "REFERENCE and CURRENT"),
        (["{ref}", "data.txt"], 2, "unsupported table extension"),
    ],
)
def test_errors_are_one_line_with_exit_codes(files, args, code, message):
    ref, same, _ = files
    argv = ["drift", *(a.format(ref=ref, same=same) for a in args)]
    result = runner.invoke(app, argv)
    assert result.exit_code == code, result.output
    assert message in result.output
    assert "Traceback" not in result.output


def test_model_option_uses_inputs_and_the_logged_profile(mloop_home, files, tmp_path):
    from mloop.pipeline.config import config_from_dict
    from mloop.pipeline.train import train

    ref, same, drifted = files
    data = write_table(generate_churn(800, seed=4), tmp_path / "train.csv")
    config = config_from_dict(
        {"train": {"params": {"n_estimators": 10}}, "evaluate": {"cv_folds": 0},
         "register": {"criteria": {}}},
        source="test",
    )  # fmt: skip
    trained = train(data, config, settings=mloop_home)
    assert trained.registered
    js = tmp_path / "two.json"
    # Two tables: only the model's input columns, dates compared as dates.
    result = runner.invoke(
        app, ["drift", str(ref), str(drifted), "--model", trained.ref, "--json", str(js)]
    )
    assert result.exit_code == 0, result.output
    body = json.loads(js.read_text())
    assert "customer_id" not in body["columns"] and "churn" not in body["columns"]
    assert body["columns"]["signup_date"]["type"] == "date"
    # One table: against the reference profile logged at training time.
    js = tmp_path / "one.json"
    result = runner.invoke(app, ["drift", str(drifted), "--model", trained.ref, "--json", str(js)])
    assert result.exit_code == 0, result.output
    body = json.loads(js.read_text())
    assert body["reference_rows"] == 640  # the training split
    assert body["columns"]["tenure_months"]["drift_detected"] is True
    result = runner.invoke(app, ["drift", str(same), "--model", "nosuchmodel/1"])
    assert result.exit_code == 3, result.output


def test_help_has_an_example():
    result = runner.invoke(app, ["drift", "--help"])
    assert result.exit_code == 0
    assert "Example: mloop drift" in result.output
