"""Stage history in the platform database (`stage_transitions`): written by promote/rollback.

MLflow keeps only the current aliases; this log keeps who moved what, when and why, and which
version each change replaced, which is what rollback walks back through.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import select

from mloop.registry.records import Transition
from mloop.registry.stages import Stage
from mloop.store import Database, StageTransition


@dataclass(frozen=True)
class NewTransition:
    """A stage change about to be recorded."""

    version: str
    from_stage: Stage
    to_stage: Stage
    replaced_version: str | None
    reason: str | None


def _aware(moment: datetime) -> datetime:
    """SQLite hands back naive datetimes; every time mloop writes is UTC."""
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _to_record(row: StageTransition) -> Transition:
    return Transition(
        model_name=row.model_name,
        version=row.version,
        from_stage=_stage(row.from_stage),
        to_stage=_stage(row.to_stage),
        replaced_version=row.replaced_version,
        actor=row.actor,
        reason=row.reason,
        created_at=_aware(row.created_at),
        id=row.id,
    )


def _stage(text: str) -> Stage:
    try:
        return Stage(text)
    except ValueError:  # a row written by hand or by a newer mloop: show it as None
        return Stage.NONE


class TransitionLog:
    """Reads and appends stage transitions of registered models."""

    def __init__(self, database: Database) -> None:
        self.database = database

    def record(self, model_name: str, changes: list[NewTransition], actor: str) -> list[Transition]:
        """Append `changes` in one database transaction, in order; return them as recorded."""
        now = datetime.now(UTC)
        with self.database.session() as session:
            rows = [
                StageTransition(
                    model_name=model_name,
                    version=change.version,
                    from_stage=change.from_stage.value,
                    to_stage=change.to_stage.value,
                    replaced_version=change.replaced_version,
                    actor=actor,
                    reason=change.reason,
                    created_at=now,
                )
                for change in changes
            ]
            session.add_all(rows)
            session.flush()
            return [_to_record(row) for row in rows]

    def for_model(self, model_name: str, version: str | None = None) -> list[Transition]:
        """All transitions of a model (or of one version), oldest first."""
        query = select(StageTransition).where(StageTransition.model_name == model_name)
        if version is not None:
            query = query.where(StageTransition.version == version)
        with self.database.session() as session:
            rows = session.scalars(query.order_by(StageTransition.id)).all()
            return [_to_record(row) for row in rows]

    def last_into(
        self,
        model_name: str,
        stage: Stage,
        *,
        version: str | None = None,
        before_id: int | None = None,
    ) -> Transition | None:
        """The newest transition into `stage` (of `version`, older than `before_id`), if any."""
        query = select(StageTransition).where(
            StageTransition.model_name == model_name, StageTransition.to_stage == stage.value
        )
        if version is not None:
            query = query.where(StageTransition.version == version)
        if before_id is not None:
            query = query.where(StageTransition.id < before_id)
        with self.database.session() as session:
            row = session.scalars(query.order_by(StageTransition.id.desc()).limit(1)).first()
            return _to_record(row) if row is not None else None
