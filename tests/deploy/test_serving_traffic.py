"""Deployments answer traffic (the app in-process; one case on a real server): sticky A/B
variants, forced variants, batches split per variant, the default deployment behind /predict,
shadow agreement, the canary timer stepping up and rolling back, live counts, `variant`
metrics, and clear 4xx for bad requests.

Real MLflow models (tests/support/modelkit.py) on a sqlite registry: `churn` v1 @production,
v2 @candidate (the same fit, so the same answers), v3 @inverted (labels flipped), v4 @broken
(a pyfunc that raises).
"""

from __future__ import annotations

import json
import warnings
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from typing import Any

import httpx
import pandas as pd
import pytest
from typer.testing import CliRunner

from mloop.cli.main import app as cli
from mloop.deploy.service import DeploymentService
from mloop.errors import ConfigError
from mloop.serving.app import create_app
from mloop.serving.server import ServerThread
from mloop.settings import Settings
from tests.support import modelkit
from tests.support.apps import in_process
from tests.support.loopkit import metric_value
from tests.support.waiting import wait_for

ROWS = modelkit.json_rows(modelkit.make_frame(rows=40, seed=3)[0])
KEYS = [f"user-{i}" for i in range(60)]


def _register_copy(settings: Settings, version: str, alias: str) -> None:
    """A new version of `churn` from the files of `version` (the same answers)."""
    import mlflow

    client = mlflow.MlflowClient()
    source = client.get_model_version("churn", version)
    copy = client.create_model_version("churn", source.source, run_id=source.run_id)
    client.set_registered_model_alias("churn", alias, str(copy.version))


def _register_inverted(settings: Settings) -> None:
    """v3 @inverted: the same pipeline fit on flipped labels (it disagrees with v1)."""
    import mlflow
    from mlflow.models import infer_signature

    frame, y = modelkit.make_frame()
    pipeline = modelkit.make_pipeline().fit(frame, 1 - y)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with mlflow.start_run():
            info = mlflow.sklearn.log_model(
                pipeline,
                name="model",
                signature=infer_signature(frame, pipeline.predict(frame)),
                serialization_format="cloudpickle",
                registered_model_name="churn",
                pip_requirements=modelkit.PIP_REQUIREMENTS,  # no inference subprocess
            )
    mlflow.MlflowClient().set_registered_model_alias(
        "churn", "inverted", str(info.registered_model_version)
    )


def _register_broken(settings: Settings) -> None:
    """v4 @broken: a pyfunc with the same signature whose predict raises."""
    import mlflow
    from mlflow.models import infer_signature

    class Raising(mlflow.pyfunc.PythonModel):
        def predict(self, context, model_input: pd.DataFrame, params=None):
            raise RuntimeError("the broken candidate fails on purpose")

    frame, y = modelkit.make_frame()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with mlflow.start_run():
            info = mlflow.pyfunc.log_model(
                name="model",
                python_model=Raising(),
                signature=infer_signature(frame, y),
                registered_model_name="churn",
                pip_requirements=modelkit.PIP_REQUIREMENTS,  # no inference subprocess
            )
    mlflow.MlflowClient().set_registered_model_alias(
        "churn", "broken", str(info.registered_model_version)
    )


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Settings:
    settings = modelkit.home_settings(tmp_path_factory.mktemp("deploy-traffic"))
    modelkit.train_and_register(settings)  # v1 @production
    _register_copy(settings, "1", "candidate")  # v2: the same model files
    _register_inverted(settings)  # v3
    _register_broken(settings)  # v4
    return settings


def deploy(settings: Settings, spec: dict[str, Any]) -> None:
    DeploymentService(settings).apply(spec, "test")


@contextmanager
def serving(
    settings: Settings,
    model_ref: str | None = "churn@production",
    *,
    real_server: bool = False,
    **extra: Any,
) -> Iterator[httpx.Client]:
    """A client of the app, in-process (on a real uvicorn server with `real_server`, for a
    caller given its URL); returns once every runtime (served model and variants) settled."""
    if extra:
        settings = settings.model_copy(update=extra)
    app = create_app(model_ref, settings)
    with ExitStack() as stack:
        if real_server:
            server = stack.enter_context(ServerThread(app))
            http = stack.enter_context(httpx.Client(base_url=server.url, timeout=30))
        else:
            http = stack.enter_context(in_process(app, timeout=30))
        for runtime in app.state.mloop.pool.runtimes():
            assert runtime.wait_until_settled(120)
        yield http


def ab_spec(name: str, **extra: Any) -> dict[str, Any]:
    return {
        "name": name,
        "policy": "ab",
        "variants": [
            {"name": "control", "model": "churn@production", "weight": 50},
            {"name": "treatment", "model": "churn@candidate", "weight": 50},
        ],
        **extra,
    }


def ask(
    http: httpx.Client, name: str, row: dict, *, key: str | None = None, **kwargs: Any
) -> httpx.Response:
    body: dict[str, Any] = {"features": row}
    if key is not None:
        body["user_id"] = key
    return http.post(f"/deployments/{name}/predict", json=body, timeout=30, **kwargs)


def variant_of(http: httpx.Client, name: str, key: str, **kwargs: Any) -> str:
    answer = ask(http, name, ROWS[0], key=key, **kwargs)
    assert answer.status_code == 200, answer.text
    return answer.json()["variant"]


def status(http: httpx.Client, name: str) -> dict[str, Any]:
    answer = http.get(f"/deployments/{name}", timeout=30)
    assert answer.status_code == 200, answer.text
    return {v["variant"]: v for v in answer.json()["variants"]}


# ------------------------------------------------------------------------------ A/B routing


def test_ab_sticky_forced_split_metrics_and_live_counts(home):
    deploy(home, ab_spec("ab"))
    with serving(home) as http:
        first = {key: variant_of(http, "ab", key) for key in KEYS}
        assert {key: variant_of(http, "ab", key) for key in KEYS[:10]} == {
            k: first[k] for k in KEYS[:10]
        }  # sticky
        shares = {v: sum(1 for x in first.values() if x == v) for v in ("control", "treatment")}
        assert 15 <= shares["control"] <= 45 and shares["control"] + shares["treatment"] == 60
        # The key may come from the X-User-Id header or the row (not a model feature: dropped).
        for key in KEYS[:8]:
            by_header = ask(http, "ab", ROWS[1], headers={"X-User-Id": key})
            in_row = ask(http, "ab", {**ROWS[1], "user_id": key})
            assert by_header.json()["variant"] == in_row.json()["variant"] == first[key]
        key = KEYS[0]
        # A forced variant wins over the sticky one; each answer names its variant and version.
        other = "treatment" if first[key] == "control" else "control"
        forced = ask(http, "ab", ROWS[2], key=key, headers={"X-Variant": other}).json()
        assert forced["variant"] == other and forced["deployment"] == "ab"
        assert forced["model_version"] == {"control": "1", "treatment": "2"}[other]
        assert set(forced) >= {"prediction", "probability", "probabilities", "prediction_id"}

        metrics = http.get("/metrics").text
        controls = sum(1 for x in first.values() if x == "control") + sum(
            1 for k in KEYS[:10] if first[k] == "control"
        )
        counted = metric_value(
            metrics, "model_predictions_total", variant="ab/control", model_version="1",
            status="success",
        )  # fmt: skip
        assert counted is not None and counted >= controls
        assert metric_value(metrics, "model_prediction_latency_seconds_count",
                            variant="ab/treatment")  # fmt: skip
        live = status(http, "ab")
        assert live["control"]["counts"]["requests"] == counted
        assert live["control"]["counts"]["errors"] == 0
        assert live["treatment"]["counts"]["p95_ms"] > 0

    with serving(home) as restarted:  # another process after a restart: the same assignment
        assert {k: variant_of(restarted, "ab", k) for k in KEYS[:12]} == {
            k: first[k] for k in KEYS[:12]
        }


def test_status_counts_each_deployment_and_variant_not_the_model_version(home):
    """Issue 20: `deploy status` counted every prediction of the variant's version."""
    deploy(home, ab_spec("count-ab"))
    deploy(home, {"name": "count-one", "variants": [{"name": "main", "model": "churn@production"}]})
    with serving(home) as http:
        for variant, times in (("control", 6), ("treatment", 3)):
            for _ in range(times):
                forced = ask(http, "count-ab", ROWS[0], headers={"X-Variant": variant})
                assert forced.status_code == 200, forced.text
        for _ in range(4):
            assert ask(http, "count-one", ROWS[1]).status_code == 200
        batch = http.post(
            "/deployments/count-one/predict/batch", json={"instances": ROWS[:5]}, timeout=30
        )
        assert batch.status_code == 200, batch.text
        for _ in range(5):  # plain /predict: the same version 1, no deployment
            assert http.post("/predict", json={"features": ROWS[2]}).status_code == 200
    # the server stopped (its traffic log flushed): the database's counts, as the CLI reads them
    service = DeploymentService(home)
    counts = {v["variant"]: v["counts"] for v in service.status("count-ab")["variants"]}
    assert counts["control"]["requests"] == 6 and counts["treatment"]["requests"] == 3
    one = service.status("count-one")
    assert one["variants"][0]["counts"] == {"requests": 9, "errors": 0}
    assert one["counts_source"].startswith("traffic log")
    shown = CliRunner().invoke(cli, ["deploy", "status", "count-ab", "--json"],
                               env={"MLOOP_HOME": str(home.home)})  # fmt: skip
    assert shown.exit_code == 0, shown.output
    shown_counts = {v["variant"]: v["counts"] for v in json.loads(shown.output)["variants"]}
    assert shown_counts == counts


def test_a_batch_with_mixed_keys_is_split_per_variant_in_request_order(home):
    deploy(home, ab_spec("ab-batch"))
    with serving(home) as http:
        keys = KEYS[:16]
        expected = [variant_of(http, "ab-batch", k) for k in keys]
        assert len(set(expected)) == 2
        rows = [{**ROWS[i], "user_id": k} for i, k in enumerate(keys)]
        answer = http.post(
            "/deployments/ab-batch/predict/batch", json={"instances": rows}, timeout=30
        )
        assert answer.status_code == 200, answer.text
        body = answer.json()
        assert body["deployment"] == "ab-batch" and body["total_count"] == 16
        assert [p["variant"] for p in body["predictions"]] == expected
        versions = {"control": "1", "treatment": "2"}
        assert [p["model_version"] for p in body["predictions"]] == [versions[v] for v in expected]
        plain = http.post(
            "/predict/batch", json={"instances": [ROWS[i] for i in range(16)]}, timeout=30
        ).json()  # v1 and v2 are the same fit: the same labels, row by row
        assert [p["prediction"] for p in body["predictions"]] == [
            p["prediction"] for p in plain["predictions"]
        ]
        # One key for the whole batch, at the top level: every row on that key's variant.
        one = http.post(
            "/deployments/ab-batch/predict/batch",
            json={"instances": ROWS[:5], "user_id": keys[0]},
            timeout=30,
        ).json()
        assert {p["variant"] for p in one["predictions"]} == {expected[0]}


# ------------------------------------------------------------------------ default deployment


def test_the_default_deployment_answers_predict_without_a_model_ref(home):
    deploy(
        home,
        {
            "name": "main",
            "default": True,
            "policy": "single",
            "variants": [{"name": "only", "model": "churn@candidate"}],
        },
    )
    with serving(home, model_ref=None) as http:
        answer = http.post("/predict", json={"features": ROWS[0]}, timeout=30)
        assert answer.status_code == 200, answer.text
        body = answer.json()
        assert (body["deployment"], body["variant"], body["model_version"]) == ("main", "only", "2")
        batch = http.post("/predict/batch", json={"instances": ROWS[:3]}, timeout=30)
        assert [p["variant"] for p in batch.json()["predictions"]] == ["only"] * 3
        invocations = http.post("/invocations", json={"dataframe_records": ROWS[:2]}, timeout=30)
        assert invocations.status_code == 200, invocations.text
        assert http.get("/ready").json()["model_version"] == "2"
    with serving(home) as explicit:  # an explicit MODEL_REF wins over the default deployment
        body = explicit.post("/predict", json={"features": ROWS[0]}).json()
        assert body["model_version"] == "1" and "deployment" not in body
    DeploymentService(home).delete("main", "test")


def test_without_a_model_ref_or_a_default_deployment_the_server_refuses_to_start(mloop_home):
    with pytest.raises(ConfigError, match="no default deployment") as caught:
        create_app(None, mloop_home)
    assert "default: true" in (caught.value.hint or "")
    result = CliRunner().invoke(cli, ["serve"])
    assert result.exit_code == 2
    said = " ".join(result.output.split())  # Rich's line wrapping undone
    assert "no default deployment" in said and "default: true" in said


# ------------------------------------------------------------------------------------ shadow


def shadow_spec(name: str, candidate_model: str) -> dict[str, Any]:
    return {
        "name": name,
        "policy": "shadow",
        "variants": [
            {"name": "primary", "model": "churn@production"},
            {"name": "shadow", "model": candidate_model},
        ],
        "shadow": {"candidate": "shadow", "share": 100},
    }


def shadow_counts(http: httpx.Client, name: str, total: int) -> dict[str, Any] | None:
    counts = status(http, name)["shadow"]["counts"]
    seen = sum(counts.get(f"shadow_{r}", 0) for r in ("agree", "disagree", "error", "skipped"))
    return counts if seen >= total else None


@pytest.mark.parametrize(
    ("candidate", "outcome"),
    [("churn@candidate", "agree"), ("churn@inverted", "disagree"), ("churn@broken", "error")],
)
def test_shadow_answers_from_the_primary_and_counts_agreement(home, candidate, outcome):
    name = f"shadow-{outcome}"
    deploy(home, shadow_spec(name, candidate))
    # A real server for the "agree" case: `mloop deploy status --url` reads its live counts.
    with serving(home, real_server=outcome == "agree") as http:
        for row in ROWS[:20]:
            answer = ask(http, name, row)
            assert answer.status_code == 200, answer.text
            assert (answer.json()["variant"], answer.json()["model_version"]) == ("primary", "1")
        batch = http.post(
            f"/deployments/{name}/predict/batch", json={"instances": ROWS[:10]}, timeout=30
        )
        assert batch.status_code == 200 and batch.json()["total_count"] == 10
        counts = wait_for(lambda: shadow_counts(http, name, 30), "shadow results")
        asked = 30 - counts["shadow_skipped"]
        assert asked > 0
        if outcome == "agree":
            assert counts["shadow_agree"] == asked and counts["shadow_agreement"] == 1.0
        elif outcome == "disagree":
            assert counts["shadow_disagree"] > 0 and counts["shadow_agreement"] < 0.5
        else:
            assert counts["shadow_error"] == asked and "shadow_agreement" not in counts
        metrics = http.get("/metrics").text
        assert (
            metric_value(metrics, "mloop_shadow_predictions_total", deployment=name, result=outcome)
            == counts[f"shadow_{outcome}"]
        )
        if outcome == "agree":  # the CLI shows the server's live counts with --url
            wide = CliRunner(env={"COLUMNS": "200"})
            shown = wide.invoke(
                cli, ["deploy", "status", name, "--url", str(http.base_url).rstrip("/")]
            )
            assert shown.exit_code == 0, shown.output
            said = " ".join(shown.output.split())
            assert "100.0%" in said and "counts: server" in said
        # Shadow answers are not answered predictions: only the primary's version counted.
        assert metric_value(metrics, "model_predictions_total", variant=f"{name}/shadow") is None


# ------------------------------------------------------------------------------------ canary


def canary_spec(name: str, candidate_model: str, **slo: Any) -> dict[str, Any]:
    return {
        "name": name,
        "policy": "canary",
        "variants": [
            {"name": "stable", "model": "churn@production"},
            {"name": "canary", "model": candidate_model},
        ],
        "canary": {
            "candidate": "canary",
            "start_percent": 50,
            "step_percent": 25,
            "interval_seconds": 0.2,
            "slo": {"min_requests": 3, "max_p95_ms": 60_000, **slo},
        },
    }


def history(settings: Settings, name: str) -> list[Any]:
    return DeploymentService(settings).history(name)


def test_a_healthy_canary_steps_up_on_the_timer(home):
    deploy(home, canary_spec("canary-ok", "churn@candidate"))
    with serving(home, canary_tick_seconds=0.1) as http:

        def stepped() -> bool:
            for key in KEYS[:12]:
                assert ask(http, "canary-ok", ROWS[0], key=key).status_code == 200
            return any(r.reason == "canary-step" and "->" in (r.note or "")
                       for r in history(home, "canary-ok"))  # fmt: skip

        wait_for(stepped, "a canary step")
        step = next(r for r in history(home, "canary-ok") if "->" in (r.note or ""))
        assert step.note == "within the SLO: 50% -> 75%"
        wait_for(lambda: status(http, "canary-ok")["canary"]["share"] >= 75, "the new share")


def test_a_failing_canary_is_rolled_back_and_traffic_returns_to_the_primary(home):
    deploy(home, canary_spec("canary-bad", "churn@broken"))
    with serving(home, canary_tick_seconds=0.1) as http:

        def rolled_back() -> bool:
            for key in KEYS[:12]:
                answer = ask(http, "canary-bad", ROWS[0], key=key)
                assert answer.status_code in (200, 500), answer.text
            return any(r.reason == "canary-rollback" for r in history(home, "canary-bad"))

        wait_for(rolled_back, "the canary rollback")
        rollback = next(r for r in history(home, "canary-bad") if r.reason == "canary-rollback")
        assert "error rate" in rollback.note and "above the SLO" in rollback.note
        assert rollback.spec["canary"]["status"] == "rolled_back"

        # Routed by this server right after the canary thread wrote the revision (the test may
        # read the revision a moment before the thread's refresh): every key goes to stable.
        def all_stable() -> bool:
            answers = [ask(http, "canary-bad", ROWS[0], key=k) for k in KEYS[:12]]
            return [(a.status_code, a.json().get("variant")) for a in answers] == [
                (200, "stable")
            ] * 12

        wait_for(all_stable, "every key routed to the stable variant")
        live = status(http, "canary-bad")
        assert live["canary"]["share"] == 0
        assert live["canary"]["counts"]["errors"] > 0


# -------------------------------------------------------------------------------- bad input


def test_bad_requests_on_deployment_routes_get_clear_4xx(home):
    deploy(home, ab_spec("ab-bad"))
    with serving(home) as http:
        unknown = ask(http, "nope", ROWS[0])
        assert unknown.status_code == 404 and "ab-bad" in unknown.json()["hint"]
        forced = ask(http, "ab-bad", ROWS[0], headers={"X-Variant": "ghost"})
        assert forced.status_code == 404 and "control, treatment" in forced.json()["hint"]
        post = "/deployments/ab-bad/predict"
        cases = [
            (b"{not json", 422, "malformed JSON"),
            (b'{"features": {"tenure": 1}}', 422, "missing feature"),
            (b'{"features": 3}', 422, "'features' must be"),
            (b'{"features": {}, "extra": 1}', 422, "unknown field 'extra'"),
            (b'{"features": {}, "user_id": {"a": 1}}', 422, "'user_id' must be a string"),
            (b"[1, 2]", 422, "JSON object"),
        ]
        for body, code, message in cases:
            answer = http.post(post, content=body, headers={"content-type": "application/json"})
            assert answer.status_code == code, (body, answer.text)
            assert message in answer.json()["detail"], (body, answer.text)
        batch = "/deployments/ab-bad/predict/batch"
        empty = http.post(batch, json={"instances": []})
        assert empty.status_code == 422 and "empty" in empty.json()["detail"]
        rows = [{**ROWS[i], "user_id": KEYS[i]} for i in range(6)]
        rows[4] = {**rows[4], "plan": 7}
        bad_row = http.post(batch, json={"instances": rows})
        assert bad_row.status_code == 422 and "row 4" in bad_row.json()["detail"], bad_row.text
        metrics = http.get("/metrics").text
        assert metric_value(metrics, "model_predictions_total", status="error") is None


# ---------------------------------------------------------------------------- spec changes


def test_changes_through_rest_apply_at_once_and_other_writers_are_polled(home):
    deploy(home, ab_spec("ab-live"))
    with serving(home, deployment_poll_seconds=0.1) as http:
        shift = http.post("/deployments/ab-live/shift", json={"to": "treatment", "percent": 100})
        assert shift.status_code == 200, shift.text
        assert {variant_of(http, "ab-live", k) for k in KEYS[:10]} == {"treatment"}
        # Another process changes it: this server follows within its poll interval.
        DeploymentService(home).shift("ab-live", "control", 100, "someone-else")
        wait_for(
            lambda: {variant_of(http, "ab-live", k) for k in KEYS[:10]} == {"control"},
            "the polled change",
        )
        DeploymentService(home).delete("ab-live", "someone-else")
        wait_for(lambda: ask(http, "ab-live", ROWS[0]).status_code == 404, "the deletion")
