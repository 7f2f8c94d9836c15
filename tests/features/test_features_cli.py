"""`mloop features infer` and `mloop features check` through Typer's runner."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from mloop.cli.main import app
from mloop.data import generate_churn, write_table
from mloop.features.contract import FeatureContract

runner = CliRunner()


def squash(text: str) -> str:
    """Output without whitespace, so Rich's line wrapping cannot split what we look for."""
    return "".join(text.split())


@pytest.fixture
def churn(tmp_path):
    return write_table(generate_churn(400, seed=9), tmp_path / "churn.csv")


def test_infer_prints_a_contract_that_check_accepts(churn, tmp_path):
    result = runner.invoke(app, ["features", "infer", str(churn), "--target", "churn"])
    assert result.exit_code == 0, result.output
    contract = FeatureContract.from_yaml(result.stdout)
    assert contract.target == "churn" and contract.rule("tenure_months").type == "integer"
    (tmp_path / "features.yaml").write_text(result.stdout)
    result = runner.invoke(
        app, ["features", "check", str(churn), "-c", str(tmp_path / "features.yaml")]
    )
    assert result.exit_code == 0, result.output
    assert "0 error(s)" in " ".join(result.output.split())  # Rich wraps long paths


def test_check_fails_with_a_table_json_and_report_files(churn, tmp_path):
    out = tmp_path / "features.yaml"
    result = runner.invoke(
        app,
        [
            "features",
            "infer",
            str(churn),
            "-t",
            "churn",
            "--entity-key",
            "customer_id",
            "-o",
            str(out),
        ],  # noqa: E501
    )
    assert result.exit_code == 0 and out.is_file(), result.output
    contract = FeatureContract.load(out)
    assert contract.entity_key == "customer_id" and "customer_id" not in contract.names
    frame = generate_churn(400, seed=9)
    frame.loc[3, "tenure_months"] = 500
    bad = write_table(frame, tmp_path / "bad.csv")
    result = runner.invoke(
        app,
        ["features", "check", str(bad), "-c", str(out), "--report", str(tmp_path / "rep")],
        env={"COLUMNS": "200"},
    )
    assert result.exit_code == 2, result.output
    assert "tenure_months=500isabovethedeclaredmaximum" in squash(result.output)
    assert "datarow4" in squash(result.output)
    assert (tmp_path / "rep" / "validation.html").is_file()
    result = runner.invoke(app, ["features", "check", str(bad), "-c", str(out), "--json"])
    assert result.exit_code == 2
    body = json.loads(result.stdout.split("\nerror:")[0])
    assert body["errors"] == 1 and body["failures"][0]["column"] == "tenure_months"


def test_bad_contract_and_missing_file_are_clear(churn, tmp_path):
    bad = tmp_path / "features.yaml"
    bad.write_text("features:\n  age: {type: number, maximum: 3}\n")
    result = runner.invoke(app, ["features", "check", str(churn), "-c", str(bad)])
    assert result.exit_code == 2 and "unknownkey'features.age.maximum'" in squash(result.output)
    result = runner.invoke(app, ["features", "check", str(churn), "-c", str(tmp_path / "no")])
    assert result.exit_code == 2 and "doesnotexist" in squash(result.output)


@pytest.mark.parametrize("command", ["infer", "check"])
def test_help_has_an_example(command):
    result = runner.invoke(app, ["features", command, "--help"])
    assert result.exit_code == 0 and "Example: mloop features " + command in result.output
