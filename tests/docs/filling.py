"""Complete the abbreviations the docs' examples use, so they run as written.

The docs shorten rows: `{"age": 41, "tenure_months": 7, ...}` means "the other features too",
`{...}` a whole row, `[row, ...]` more rows, `"prediction_id": "..."` an id from an earlier
answer, and `localhost:8000` the server. Only those abbreviations are filled in; anything else
runs exactly as written.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from typing import Any

SERVER = re.compile(r"\b(?:localhost|127\.0\.0\.1):8000\b")
FILL = "__fill__"
MORE = "__more__"


def point_at(text: str, port: int) -> str:
    return SERVER.sub(f"127.0.0.1:{port}", text)


def json_body(text: str) -> Any:
    """The doc's abbreviated JSON, parsed with FILL / MORE where it said `...`."""
    text = text.replace("…", "...")
    text = re.sub(r"\{\s*\.\.\.\s*\}", "{}", text)
    text = re.sub(r",\s*\.\.\.\s*\}", "}", text)
    text = re.sub(r",\s*\.\.\.\s*\]", f', "{MORE}"]', text)
    text = re.sub(r'"[^"]*\.\.\.[^"]*"', f'"{FILL}"', text)
    return json.loads(text)


def complete(value: Any, row: dict, new_id: Callable[[], str], key: str | None = None) -> Any:
    """`value` with every abbreviated row, list and id filled in."""
    if isinstance(value, list):
        items = [complete(item, row, new_id, key) for item in value]
        while MORE in items:
            at = items.index(MORE)
            items[at] = items[at - 1] if at else dict(row)
        return items
    if not isinstance(value, dict):
        if value == FILL and key == "prediction_id":
            return new_id()
        return value
    if key in ("features", "instances", "rows") or (key is None and set(value) & set(row)):
        return {**row, **value}
    if key == "dataframe_split" and {"columns", "data"} <= set(value):
        given = [c for c in value["columns"] if c != MORE]
        columns = given + [c for c in row if c not in given]
        rest = [row[c] for c in columns[len(given) :]]
        data = [[v for v in r if v != MORE] + rest for r in value["data"] if r != MORE]
        return {**value, "columns": columns, "data": data}
    return {k: complete(v, row, new_id, k) for k, v in value.items()}


def complete_curl(command: str, row: dict, new_id: Callable[[], str]) -> str:
    """A curl command with its `-d '...'` body completed (bodies are single-quoted)."""

    def body(found: re.Match) -> str:
        if "..." not in found["body"] and "…" not in found["body"]:
            return found.group(0)
        data = complete(json_body(found["body"]), row, new_id)
        return f"{found['flag']} '{json.dumps(data)}'"

    return re.sub(r"(?P<flag>-d|--data(?:-raw)?)\s+'(?P<body>[^']*)'", body, command, flags=re.S)


def complete_python(source: str) -> str:
    """Python with `{"age": 41, ...}` dict literals completed from `__doc_row__`."""
    return re.sub(
        r"\{(?P<items>[^{}]*?\":[^{}]*?),\s*\.\.\.\s*\}", r"{**__doc_row__, \g<items>}", source
    )
