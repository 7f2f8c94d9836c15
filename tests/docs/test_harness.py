"""The harness itself: block parsing, command splitting, filling abbreviations, output checks."""

from __future__ import annotations

from tests.docs import filling, output
from tests.docs.markdown import parse
from tests.docs.runners import commands

ROW = {"age": 30.0, "tenure_months": 3, "region": "north"}


def test_markers_and_languages_are_read(tmp_path):
    page = tmp_path / "page.md"
    page.write_text(
        "intro\n\n<!-- doc-test: skip (needs S3) -->\n```bash\nls\n```\n\n"
        "```\nplain\n```\n- item:\n\n  ```python\n  print(1)\n  ```\n"
    )
    skipped, plain, nested = parse(page)
    assert (skipped.marker, skipped.reason, skipped.lang, skipped.line) == (
        "skip",
        "needs S3",
        "bash",
        4,
    )
    assert plain.lang == "" and plain.marker is None
    assert nested.lang == "python" and nested.text == "print(1)"


def test_commands_join_continuations_and_quotes_and_keep_shown_output():
    text = (
        'curl -s localhost:8000/predict \\\n  -d \'{"features": {\n  "age": 1}}\'\n'
        '# {"prediction": 1}\n\nmloop drift a b --fail-on-drift   # CI gate: exit 10\n'
    )
    curl, drift = commands(text)
    assert curl.text.count("\n") == 2 and curl.shown == ['{"prediction": 1}']
    assert drift.allowed_exits == {0, 10} and drift.shown == []


def test_abbreviated_bodies_are_completed():
    body = filling.json_body('{"instances": [{"age": 41, ...}, ...], "user_id": "u-1"}')
    done = filling.complete(body, ROW, lambda: "id-1")
    assert done["instances"] == [{**ROW, "age": 41}, {**ROW, "age": 41}]
    assert done["user_id"] == "u-1"
    ids = filling.complete(
        filling.json_body('{"prediction_id": "0b6c-...", "actual": 1}'), ROW, lambda: "id-1"
    )
    assert ids == {"prediction_id": "id-1", "actual": 1}
    split = filling.json_body('{"dataframe_split": {"columns": ["age", ...], "data": [[41, ...]]}}')
    frame = filling.complete(split, ROW, lambda: "")["dataframe_split"]
    assert frame == {"columns": ["age", "tenure_months", "region"], "data": [[41, 3, "north"]]}
    assert filling.complete_python('f({"age": 41, ...})') == 'f({**__doc_row__, "age": 41})'
    assert filling.point_at("curl localhost:8000/x", 9) == "curl 127.0.0.1:9/x"


def test_output_checks_fail_on_drift():
    assert (
        output.mismatch('{"job_id": "0b7c…", "status": "queued"}', '{"job_id": 1, "status": 2}')
        is None
    )
    assert "status" in output.mismatch('{"job_id": "…", "status": "queued"}', '{"job_id": 1}')
    assert "JSON" in output.mismatch('{"a": 1}', "error: nope")
    shown = "Scored 4,999,812 rows with churn version 3 (local) in 44.1s"
    assert output.mismatch(shown, "Scored 1,200 rows with churn version 1 (local) in 0.9s") is None
    assert output.mismatch(shown, "Scored 1,200 rows with churn version 1 (ray) in 0.9s")
    assert output.mismatch("single   300  HTTP 200", "│ single │ 300 │ HTTP 200 │") is None
    assert output.expected_status('202 {"a": 1}') == (202, '{"a": 1}')
