"""Ground truth: the actual value of a logged prediction, posted when it becomes known.

`parse_feedback` validates `{"prediction_id", "actual"}` or `{"feedback": [...]}`;
`FeedbackStore.record` joins each label with the prediction log and commits the ones it
accepts before the server answers. Each item ends as `recorded`, `unknown` (no such
prediction) or `duplicate` (already labelled, or twice in one request). A label the model
cannot answer (not one of its classes; not a number for a model answering numbers) refuses the
whole request with a 422 naming the allowed values, and nothing is stored. A prediction answered
a moment ago may still sit in a log writer's queue: the store flushes this process's writer,
looks again, and once more half a second later (another worker's writer) before it calls an id
unknown. An unreachable database answers 503 (`ServiceUnavailableError`): nothing committed,
nothing acknowledged.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import DBAPIError, IntegrityError

from mloop.errors import ServiceUnavailableError, ValidationError
from mloop.store import Database, PredictionRecord
from mloop.store.db import transient
from mloop.store.monitoring import FeedbackRecord

RECORDED = "recorded"
UNKNOWN = "unknown"
DUPLICATE = "duplicate"


@dataclass(frozen=True)
class FeedbackItem:
    """One label: which prediction, and what actually happened."""

    prediction_id: str
    actual: Any


@dataclass(frozen=True)
class ItemResult:
    """What happened to one label, with the model version it was joined to when recorded."""

    prediction_id: str
    status: str
    model_name: str | None = None
    model_version: str | None = None
    detail: str | None = None

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"prediction_id": self.prediction_id, "status": self.status}
        if self.model_version is not None:
            out["model_name"], out["model_version"] = self.model_name, self.model_version
        if self.detail:
            out["detail"] = self.detail
        return out


def parse_feedback(body: Any, *, max_items: int) -> tuple[list[FeedbackItem], bool]:
    """Items of a feedback body and whether it was the bulk form; ValidationError otherwise."""
    if not isinstance(body, dict):
        raise ValidationError(
            "the body must be a JSON object",
            hint='{"prediction_id": "...", "actual": 1} or {"feedback": [{...}, ...]}',
        )
    if "feedback" in body:
        extra = sorted(set(body) - {"feedback"})
        if extra:
            raise ValidationError(f"unexpected field(s) next to 'feedback': {', '.join(extra)}")
        entries = body["feedback"]
        if not isinstance(entries, list) or not entries:
            raise ValidationError("'feedback' must be a non-empty array of labels")
        if len(entries) > max_items:
            raise ValidationError(
                f"'feedback' has {len(entries)} labels, over the limit of {max_items}",
                hint="split the request or raise MLOOP_MAX_BATCH_ROWS",
            )
        return [_item(entry, f"feedback[{i}]") for i, entry in enumerate(entries)], True
    return [_item(body, "body")], False


def _item(entry: Any, where: str) -> FeedbackItem:
    if not isinstance(entry, dict):
        raise ValidationError(f"{where}: a label must be an object with prediction_id and actual")
    extra = sorted(set(entry) - {"prediction_id", "actual"})
    if extra:
        raise ValidationError(f"{where}: unexpected field(s) {', '.join(extra)}")
    prediction_id = entry.get("prediction_id")
    if not isinstance(prediction_id, str) or not prediction_id.strip():
        raise ValidationError(f"{where}: 'prediction_id' must be a non-empty string")
    if len(prediction_id) > 36:
        raise ValidationError(f"{where}: 'prediction_id' is longer than 36 characters")
    if "actual" not in entry:
        raise ValidationError(f"{where}: 'actual' is missing (the true label or value)")
    actual = entry["actual"]
    if actual is None or not isinstance(actual, str | int | float | bool):
        raise ValidationError(f"{where}: 'actual' must be a string, number or boolean")
    if isinstance(actual, float) and not math.isfinite(actual):
        raise ValidationError(f"{where}: 'actual' must be finite")
    return FeedbackItem(prediction_id.strip(), actual)


def coerce_actual(actual: Any, prediction: Any) -> Any:
    """The label in the type the model predicts (`"1"` for an int model becomes 1)."""
    if isinstance(prediction, bool) or isinstance(actual, type(prediction)):
        return actual
    try:
        if isinstance(prediction, int) and not isinstance(actual, bool):
            as_float = float(actual)
            return int(as_float) if as_float.is_integer() else as_float
        if isinstance(prediction, float) and not isinstance(actual, bool):
            return float(actual)
        if isinstance(prediction, str):
            return str(actual)
    except (TypeError, ValueError):
        return actual
    return actual


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _same_label(actual: Any, label: Any) -> bool:
    """Equal and of the same kind (True is not the class 1)."""
    return isinstance(actual, bool) == isinstance(label, bool) and actual == label


@dataclass(frozen=True)
class LabelSpace:
    """The labels a model can be told: its classes, or (`classes=None`) any number."""

    classes: tuple[Any, ...] | None = None

    def check(self, actual: Any, *, prediction: Any, where: str) -> Any:
        """`actual` in the type the model answers; ValidationError when the model cannot
        answer it. Without classes only a model that answers numbers is checked."""
        actual = coerce_actual(actual, prediction)
        if self.classes is None:
            if not _is_number(prediction) or _is_number(actual):
                return actual
            raise ValidationError(
                f"{where}: 'actual' must be a number (the model answers numbers), got {actual!r}"
            )
        if any(_same_label(actual, label) for label in self.classes):
            return actual
        allowed = ", ".join(str(label) for label in self.classes)
        raise ValidationError(
            f"{where}: 'actual' {actual!r} is not one of the model's classes (allowed: {allowed})",
            hint="send the true class as the model predicts it",
        )


# (model name, version) -> its label space, or None when this process cannot tell.
LabelSpaces = Callable[[str, str], LabelSpace | None]


class FeedbackStore:
    """Joins labels with the prediction log and commits them (one label per prediction)."""

    def __init__(
        self,
        database: Database,
        *,
        flush: Callable[[], None] | None = None,
        retry_seconds: float = 0.5,
        labels: LabelSpaces | None = None,
    ) -> None:
        self.database = database
        self.retry_seconds = retry_seconds
        self._flush = flush
        self._labels = labels
        self._lock = threading.Lock()  # one writer per process; other processes: IntegrityError

    def record(self, items: Sequence[FeedbackItem], *, bulk: bool = True) -> list[ItemResult]:
        """Commit the labels that join a logged, unlabelled prediction; say what became of each.

        ValidationError (nothing stored) when a label is one the model cannot answer; `bulk`
        names the items `feedback[i]` in that message, else `body`."""
        with self._lock:
            try:
                try:
                    return self._record(items, bulk)
                except IntegrityError:  # another process labelled one meanwhile: look again
                    return self._record(items, bulk)
            except DBAPIError as exc:  # nothing was committed: say so, never acknowledge it
                if not transient(exc):
                    raise
                raise ServiceUnavailableError(
                    f"the platform database is unreachable, no label was recorded: "
                    f"{str(exc.orig).strip().splitlines()[0] if exc.orig else exc}",
                    hint="retry the same request later (labels are idempotent per prediction_id)",
                ) from exc

    def _actual(self, item: FeedbackItem, record: PredictionRecord, where: str) -> Any:
        space = self._labels(record.model_name, record.model_version) if self._labels else None
        if space is None:
            return coerce_actual(item.actual, record.prediction)
        return space.check(item.actual, prediction=record.prediction, where=where)

    def _record(self, items: Sequence[FeedbackItem], bulk: bool = True) -> list[ItemResult]:
        ids = list(dict.fromkeys(item.prediction_id for item in items))
        predictions = self._predictions(ids)
        if len(predictions) < len(ids):
            # Rows of a prediction answered a moment ago may still be queued: in this process
            # flush the writer; another worker's writer commits within its interval, so look
            # once more after `retry_seconds`.
            if self._flush is not None:
                self._flush()
            predictions = self._predictions(ids)
            if len(predictions) < len(ids) and self.retry_seconds:
                time.sleep(self.retry_seconds)
                predictions = self._predictions(ids)
        with self.database.session() as session:
            labelled = set(
                session.scalars(
                    select(FeedbackRecord.prediction_id).where(
                        FeedbackRecord.prediction_id.in_(ids)
                    )
                )
            )
            results, seen, rows = [], set(), []
            for index, item in enumerate(items):
                pid = item.prediction_id
                record = predictions.get(pid)
                if record is None:
                    results.append(ItemResult(pid, UNKNOWN, detail="no logged prediction"))
                    continue
                if pid in labelled or pid in seen:
                    detail = "already labelled" if pid in labelled else "twice in this request"
                    results.append(
                        ItemResult(pid, DUPLICATE, record.model_name, record.model_version, detail)
                    )
                    continue
                seen.add(pid)
                actual = self._actual(item, record, f"feedback[{index}]" if bulk else "body")
                rows.append(
                    FeedbackRecord(
                        prediction_id=pid,
                        model_name=record.model_name,
                        model_version=record.model_version,
                        actual=actual,
                        prediction=record.prediction,
                        probability=record.probability,
                        predicted_at=record.created_at,
                    )
                )
                results.append(ItemResult(pid, RECORDED, record.model_name, record.model_version))
            session.add_all(rows)
        return results

    def _predictions(self, ids: list[str]) -> dict[str, PredictionRecord]:
        found: dict[str, PredictionRecord] = {}
        with self.database.session() as session:
            for start in range(0, len(ids), 500):  # stay under SQLite's bound-parameter limit
                chunk = ids[start : start + 500]
                query = select(PredictionRecord).where(PredictionRecord.id.in_(chunk))
                found.update((r.id, r) for r in session.scalars(query))
        return found
