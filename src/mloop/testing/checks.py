"""Checks a project runs on its own model: plain functions raising AssertionError with a
message that says what failed, usable with or without pytest.

`model` is anything with `.predict(rows: list[dict]) -> list`; `.scores(rows)` (positive-class
probability for a binary classifier, the prediction for a regressor) is used for directional
checks when it has one. Heavy modules are imported inside the functions (the plugin that
re-exports these is loaded into every pytest run).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

SYNTH_ROWS = 5
MIN_METRIC_HINT = "known metrics: accuracy, precision, recall, f1, roc_auc, rmse, mae, r2"


def example_rows(contract: Any, count: int = SYNTH_ROWS) -> list[dict[str, Any]]:
    """The contract's `examples:` rows, else `count` rows made from its ranges and values."""
    if contract.examples:
        return [dict(row) for row in contract.examples]
    return [
        {rule.name: _value(rule, i, count) for rule in contract.serving_features()}
        for i in range(count)
    ]


def check_examples_predict(model: Any, contract: Any) -> list[Any]:
    """The example rows predict without error, one answer each, within the label space."""
    rows = example_rows(contract)
    try:
        answers = list(model.predict(rows))
    except Exception as exc:
        raise AssertionError(f"the model failed to predict the example rows: {exc}") from exc
    assert len(answers) == len(rows), f"{len(rows)} example rows got {len(answers)} answers"
    classes = getattr(model, "classes", None)
    for i, answer in enumerate(answers):
        if classes is not None:
            assert answer in classes, f"example row {i}: {answer!r} is not a class of {classes}"
        else:
            assert _finite(answer), f"example row {i}: {answer!r} is not a finite number"
    return answers


def check_invariance(model: Any, contract: Any) -> None:
    """For each `tests.invariance` entry, changing the feature among its values leaves every
    example row's prediction unchanged."""
    for check in (contract.tests or {}).get("invariance", []):
        feature, values = check["feature"], check["values"]
        for i, row in enumerate(example_rows(contract)):
            variants = [{**row, feature: value} for value in values]
            answers = list(model.predict(variants))
            assert len(set(map(repr, answers))) == 1, (
                f"invariance broken: changing {feature!r} among {values} changed the "
                f"prediction of example row {i}: "
                + ", ".join(f"{v!r} -> {a!r}" for v, a in zip(values, answers, strict=True))
            )


def check_directional(model: Any, contract: Any) -> None:
    """For each `tests.directional` entry, raising (or lowering, `increase: false`) the feature
    moves the score that way (`expect: up|down`) for the example rows, on average."""
    for check in (contract.tests or {}).get("directional", []):
        feature, expect = check["feature"], check["expect"]
        rule = contract.rule(feature)
        low, high = _span(rule)
        if not check.get("increase", True):
            low, high = high, low
        rows = example_rows(contract)
        before = _scores(model, [{**row, feature: low} for row in rows])
        after = _scores(model, [{**row, feature: high} for row in rows])
        change = sum(a - b for a, b in zip(after, before, strict=True)) / len(rows)
        moved = change > 0 if expect == "up" else change < 0
        assert moved, (
            f"directional check failed: moving {feature!r} from {low} to {high} should move "
            f"the score {expect}, it moved by {change:+.4g} on average over {len(rows)} rows"
        )


def check_min_metrics(
    model: Any, data_path: str | Path, minimums: Mapping[str, float], *, target: str | None = None
) -> dict[str, float]:
    """Metrics on a held-out file meet `minimums` (`rmse`/`mae`: at most); the metrics."""
    from mloop.data.io import read_table  # lazy: pandas
    from mloop.pipeline.evaluate import check_criteria

    frame = read_table(Path(data_path))
    target = target or getattr(model, "target", None)
    assert target in frame.columns, f"{data_path}: no target column {target!r}"
    inputs = frame.drop(columns=[target])
    rows = inputs.astype(object).where(inputs.notna(), None).to_dict("records")  # NaN: null
    metrics = _metrics(model, rows, frame[target].tolist())
    unknown = sorted(set(minimums) - set(metrics))
    assert not unknown, f"no metric(s) {', '.join(unknown)} for this model; {MIN_METRIC_HINT}"
    failed = [c for c in check_criteria(metrics, dict(minimums)) if not c.passed]
    assert not failed, f"metrics on {Path(data_path).name} below the minimum: " + "; ".join(
        c.describe() for c in failed
    )
    return metrics


def check_api_payloads(client: Any, contract: Any | None = None) -> None:
    """The served API answers `/predict` (one row), `/predict/batch`, and a bad row with 422."""
    rows = example_rows(contract) if contract is not None else _model_rows(client)
    single = client.post("/predict", json={"features": rows[0]})
    assert single.status_code == 200, f"/predict answered {single.status_code}: {single.text}"
    assert "prediction" in single.json(), f"/predict answer has no prediction: {single.text}"
    batch = client.post("/predict/batch", json={"instances": rows})
    assert batch.status_code == 200, f"/predict/batch answered {batch.status_code}: {batch.text}"
    answers = batch.json().get("predictions", [])
    assert len(answers) == len(rows), f"/predict/batch: {len(rows)} rows, {len(answers)} answers"
    bad = {**rows[0], next(iter(rows[0])): {"not": "a value"}}
    refused = client.post("/predict", json={"features": bad})
    assert refused.status_code == 422, (
        f"a bad row should be refused with 422, got {refused.status_code}: {refused.text}"
    )


def _metrics(model: Any, rows: list[dict], actual: list[Any]) -> dict[str, float]:
    """The model's own `.metrics` (mloop models: from probabilities), else from `.predict`."""
    if hasattr(model, "metrics"):
        return model.metrics(rows, actual)
    from mloop.pipeline.evaluate import regression_metrics  # lazy: sklearn

    predicted = list(model.predict(rows))
    if all(_finite(v) for v in predicted) and all(_finite(v) for v in actual):
        return regression_metrics(actual, predicted)
    hits = sum(p == a for p, a in zip(predicted, actual, strict=True))
    return {"accuracy": hits / max(len(actual), 1)}


def _model_rows(client: Any) -> list[dict[str, Any]]:
    """A row built from the served model's features (`GET /model/info`), when no contract."""
    info = client.get("/model/info")
    assert info.status_code == 200, f"/model/info answered {info.status_code}: {info.text}"
    kinds = {"double": 1.0, "float": 1.0, "long": 1, "integer": 1, "boolean": True}
    row = {}
    for feature in info.json()["features"]:
        date = feature.get("format") == "date"
        row[feature["name"]] = "2024-01-01" if date else kinds.get(feature["type"], "a")
    return [row]


def _value(rule: Any, i: int, count: int) -> Any:
    """The i-th of `count` values spread over what `rule` allows."""
    if rule.allowed:
        return rule.allowed[i % len(rule.allowed)]
    if rule.type in ("number", "integer"):
        low, high = _span(rule)
        value = low + (high - low) * i / max(count - 1, 1)
        return round(value) if rule.type == "integer" else float(value)
    if rule.type == "boolean":
        return i % 2 == 0
    if rule.type == "date":
        return f"2024-01-{1 + i % 28:02d}"
    return f"value-{i}"


def _span(rule: Any) -> tuple[float, float]:
    """A numeric feature's declared range (its bounds, or around the one given, or 0..1)."""
    low, high = rule.min, rule.max
    if low is None and high is None:
        return 0.0, 1.0
    if low is None:
        low = high - max(abs(high), 1.0)
    if high is None:
        high = low + max(abs(low), 1.0)
    if rule.type == "integer":
        return int(low), int(high)
    return float(low), float(high)


def _scores(model: Any, rows: list[dict[str, Any]]) -> list[float]:
    scores = getattr(model, "scores", None)
    values = scores(rows) if scores is not None else model.predict(rows)
    return [float(v) for v in values]


def _finite(value: Any) -> bool:
    import math

    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)
