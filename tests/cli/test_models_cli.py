"""`mloop models ...` through Typer's runner: output, JSON and exit codes, on a real registry."""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Iterator

import pytest
from typer.testing import CliRunner

from mloop.cli.main import app
from mloop.registry.tracking import configure_mlflow, ensure_experiment
from mloop.security.identities import IdentityStore
from mloop.settings import Settings
from mloop.store import open_database
from tests.support.env import home_env

runner = CliRunner()


@pytest.fixture(scope="module")
def cli_home(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Settings]:
    """MLOOP_HOME for this module, with one logged iris model registered as `iris` version 1."""
    import mlflow
    from sklearn.datasets import load_iris
    from sklearn.linear_model import LogisticRegression

    with home_env(tmp_path_factory.mktemp("models-cli") / "home") as settings:
        configure_mlflow(settings)
        mlflow.set_experiment(experiment_id=ensure_experiment("cli-tests", settings))
        features, target = load_iris(return_X_y=True)
        database = open_database(settings)
        for person in ("ci", "alice", "bob"):  # `--as` names an identity holding ml_lead
            if IdentityStore(database).find(person) is None:
                IdentityStore(database).add(person, ["ml_lead"], actor="test")
        with mlflow.start_run():
            mlflow.log_params({"C": 1.0})
            mlflow.log_metric("accuracy", 0.97)
            mlflow.set_tags({"mloop.git_commit": "feedc0de", "mloop.data_sha256": "cd" * 32})
            mlflow.sklearn.log_model(
                LogisticRegression(max_iter=200).fit(features, target),
                name="model",
                registered_model_name="iris",
                pip_requirements=["scikit-learn"],
            )
        yield settings


@pytest.fixture
def make_model(cli_home: Settings) -> Callable[[int], str]:
    """A fresh registered model with `count` versions of the logged iris model."""
    import mlflow

    def make(count: int) -> str:
        configure_mlflow(cli_home)
        client = mlflow.MlflowClient()
        source = client.get_model_version("iris", "1")
        name = f"cli-{uuid.uuid4().hex[:8]}"
        client.create_registered_model(name)
        for _ in range(count):
            client.create_model_version(name, source=source.source, run_id=source.run_id)
        return name

    return make


class Ran:
    """A CliRunner result whose `output` has Rich's line wrapping undone (tests run 80 wide)."""

    def __init__(self, result) -> None:
        self.exit_code = result.exit_code
        self.exception = result.exception
        self.raw = result.output
        self.output = " ".join(result.output.split())


def invoke(*args: str) -> Ran:
    return Ran(runner.invoke(app, ["models", *args]))


def assert_clean_error(result, code: int, text: str) -> None:
    assert result.exit_code == code, result.output
    assert "error:" in result.output and text in result.output
    assert "Traceback" not in result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)


def test_models_group_help_has_an_example() -> None:
    result = invoke("--help")
    assert result.exit_code == 0
    for command in ("list", "show", "promote", "rollback", "history"):
        assert command in result.output
    for command in ("list", "show", "promote", "rollback", "history"):
        assert "Example:" in invoke(command, "--help").output


def test_promote_prints_what_moved_and_what_got_archived(make_model) -> None:
    name = make_model(2)
    first = invoke("promote", name, "1", "--stage", "production", "--reason", "first")
    assert first.exit_code == 0, first.output
    assert f"moved {name}/1: None -> Production" in first.output
    assert "archived" not in first.output
    assert f"models:/{name}@production" in first.output

    second = invoke("promote", name, "2", "-s", "PRODUCTION")
    assert second.exit_code == 0, second.output
    assert f"moved {name}/2: None -> Production" in second.output
    assert f"archived {name}/1: Production -> Archived" in second.output


def test_promote_json(make_model) -> None:
    name = make_model(1)
    result = invoke("promote", name, "1", "--stage", "Staging", "--as", "ci", "--json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.raw)
    assert data["model_name"] == name and data["version"] == "1"
    assert (data["from_stage"], data["to_stage"], data["actor"]) == ("None", "Staging", "ci")


def test_rollback_prints_from_and_to_and_then_runs_out(make_model) -> None:
    name = make_model(2)
    invoke("promote", name, "1", "--stage", "Production")
    invoke("promote", name, "2", "--stage", "Production")
    result = invoke("rollback", name)
    assert result.exit_code == 0, result.output
    assert f"rolled back {name} Production: version 2 -> version 1" in result.output

    again = invoke("rollback", name)
    assert_clean_error(again, 4, "nothing to roll back to")


def test_list_shows_models_and_stage_holders(make_model) -> None:
    name = make_model(2)
    invoke("promote", name, "2", "--stage", "Production")
    table = invoke("list")
    assert table.exit_code == 0, table.output
    assert name in table.output and "iris" in table.output
    data = {row["name"]: row for row in json.loads(invoke("list", "--json").raw)}
    assert data[name]["latest_version"] == "2"
    assert data[name]["version_count"] == 2
    assert data[name]["production_version"] == "2"
    assert data[name]["staging_version"] is None


def test_show_defaults_to_the_latest_version_and_shows_lineage(make_model) -> None:
    name = make_model(2)
    invoke("promote", name, "1", "--stage", "Staging", "--reason", "try it")
    latest = invoke("show", name)
    assert latest.exit_code == 0, latest.output
    assert f"{name} version 2" in latest.output
    assert "accuracy" in latest.output and "feedc0de" in latest.output

    staged = invoke("show", f"{name}@staging")
    assert staged.exit_code == 0, staged.output
    assert f"{name} version 1" in staged.output
    assert "Staging" in staged.output and "try it" in staged.output

    data = json.loads(invoke("show", f"{name}/1", "--json").raw)
    assert data["stage"] == "Staging" and data["aliases"] == ["staging"]
    assert data["metrics"] == {"accuracy": 0.97}
    assert data["params"] == {"C": "1.0"}
    assert data["lineage"]["mloop.git_commit"] == "feedc0de"
    assert [h["to_stage"] for h in data["history"]] == ["Staging"]


def test_history_table_and_json(make_model) -> None:
    name = make_model(2)
    assert "No stage changes recorded" in invoke("history", name).output
    invoke("promote", name, "1", "--stage", "Production", "--as", "alice")
    invoke("promote", name, "2", "--stage", "Production", "--as", "bob")
    table = invoke("history", name)
    assert table.exit_code == 0, table.output
    assert "alice" in table.output and "bob" in table.output
    rows = json.loads(invoke("history", name, "--json").raw)
    assert [(r["version"], r["to_stage"]) for r in rows] == [
        ("1", "Production"),
        ("2", "Production"),
        ("1", "Archived"),
    ]


def test_unknown_model_exits_3_with_an_error_line(cli_home: Settings) -> None:
    for args in (
        ("show", "ghost"),
        ("promote", "ghost", "1", "--stage", "Staging"),
        ("rollback", "ghost"),
        ("history", "ghost"),
    ):
        result = invoke(*args)
        assert_clean_error(result, 3, "registered model 'ghost' not found")
        assert "hint:" in result.output and "iris" in result.output


def test_unknown_version_and_alias_exit_3(make_model) -> None:
    name = make_model(2)
    assert_clean_error(invoke("show", f"{name}/5"), 3, "its versions are 1, 2")
    assert_clean_error(invoke("show", f"{name}@production"), 3, "it has no aliases")


def test_bad_stage_and_bad_input_exit_2(make_model) -> None:
    name = make_model(1)
    bad_stage = invoke("promote", name, "1", "--stage", "prod")
    assert_clean_error(bad_stage, 2, "unknown stage 'prod'")
    assert "None, Staging, Production, Archived" in bad_stage.output
    assert_clean_error(invoke("rollback", name, "--stage", "Archived"), 2, "cannot roll back")
    assert_clean_error(
        invoke("promote", name, "one", "--stage", "Staging"), 2, "positive whole number"
    )
    assert_clean_error(invoke("show", "bad@@ref"), 2, "invalid model reference")


def test_promoting_to_the_held_stage_exits_4(make_model) -> None:
    name = make_model(1)
    assert invoke("promote", name, "1", "--stage", "Staging").exit_code == 0
    assert_clean_error(invoke("promote", name, "1", "--stage", "Staging"), 4, "already in Staging")
