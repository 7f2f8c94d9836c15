"""The registry service: MLflow's model registry with the seed's stages, history and rollback.

Stages are shown as None/Staging/Production/Archived but stored as MLflow aliases (`staging`,
`production`) and the version tag `mloop.stage` (see `stages.py`); every change is recorded in
the platform database (`history.py`). Writers are serialized by `locking.writer_lock`. MLflow
exceptions never escape: they become NotFoundError, ValidationError or ServiceUnavailableError.

The registry holds no policy: its `PromotionGuard` (`guard.py`) may refuse a promotion and
records every change; governance provides the real one (`mloop.governance.enforce`).
"""

from __future__ import annotations

from contextlib import AbstractContextManager
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any, cast

from mloop.errors import ConflictError, NotFoundError, ValidationError
from mloop.registry.failures import mlflow_failures
from mloop.registry.guard import ALLOW_ALL, PromotionGuard, RegistryChange
from mloop.registry.history import NewTransition, TransitionLog
from mloop.registry.locking import writer_lock
from mloop.registry.records import (
    ModelSummary,
    ResolvedModel,
    Transition,
    VersionDetails,
)
from mloop.registry.refs import ModelRef, parse_model_ref
from mloop.registry.semver import check_change, tag_version
from mloop.registry.stages import STAGE_TAG, Stage, parse_stage, stage_for_alias, stage_of
from mloop.registry.tracking import configure_mlflow, register_version
from mloop.settings import Settings
from mloop.store import open_database

LINEAGE_PREFIX = "mloop."
_LIST_LIMIT = 20  # names shown in a "known ..." hint before it is cut short
_HOLDER = object()  # `_move` default: record the previous holder as the replaced version


class Registry:
    """Registered models and versions, their stages, and the history of stage changes.

    `guard` decides promotions and records changes; the default allows everything and records
    nothing (no policy, no audit): real use builds it with governance's guard.
    """

    def __init__(
        self, settings: Settings | None = None, *, guard: PromotionGuard = ALLOW_ALL
    ) -> None:
        import mlflow  # lazy: mlflow +1.2 s to import; the server starts without it

        self.settings = configure_mlflow(settings)
        self.guard = guard
        uri = self.settings.tracking_uri
        with self._mlflow("connecting"):
            self._client = mlflow.MlflowClient(tracking_uri=uri, registry_uri=uri)
        self._log: TransitionLog | None = None

    # ----------------------------------------------------------------------------- reads

    def list_models(self) -> list[ModelSummary]:
        """Every registered model with its latest version and stage holders, by name."""
        summaries = []
        for model in self._registered_models():
            versions = self._version_numbers(model.name)
            aliases = dict(model.aliases or {})
            summaries.append(
                ModelSummary(
                    name=model.name,
                    latest_version=str(max(versions)) if versions else None,
                    version_count=len(versions),
                    staging_version=_str_or_none(aliases.get(Stage.STAGING.alias)),
                    production_version=_str_or_none(aliases.get(Stage.PRODUCTION.alias)),
                    description=model.description or None,
                    last_updated=_from_millis(model.last_updated_timestamp),
                )
            )
        return sorted(summaries, key=lambda summary: summary.name)

    def get_version(self, ref: ModelRef | str) -> VersionDetails:
        """One version by `NAME/VERSION`, `NAME@ALIAS`, `models:/...` or `NAME` (the latest)."""
        version = self._lookup(ref)
        run = self._run(version.run_id)
        tags = dict(version.tags or {})
        name, number = version.name, str(version.version)
        return VersionDetails(
            name=name,
            version=number,
            stage=stage_of(version.aliases or [], tags),
            aliases=sorted(version.aliases or []),
            uri=f"models:/{name}/{number}",
            source=version.source or "",
            run_id=version.run_id or None,
            status=str(version.status),
            description=version.description or None,
            created_at=_from_millis(version.creation_timestamp),
            last_updated=_from_millis(version.last_updated_timestamp),
            tags=tags,
            metrics=dict(run.data.metrics) if run else {},
            params=dict(run.data.params) if run else {},
            lineage={
                key: value
                for key, value in (run.data.tags if run else {}).items()
                if key.startswith(LINEAGE_PREFIX)
            },
            history=self.log.for_model(name, number),
        )

    def resolve(self, ref: ModelRef | str) -> ResolvedModel:
        """Pin a reference to one version, so serving loads exactly what the alias held now."""
        version = self._lookup(ref)
        number = str(version.version)
        return ResolvedModel(version.name, number, f"models:/{version.name}/{number}")

    def history(self, name: str) -> list[Transition]:
        """Every recorded stage change of model `name`, oldest first."""
        self._model(name)
        return self.log.for_model(name)

    # ---------------------------------------------------------------------------- writes

    def promote(
        self,
        name: str,
        version: str | int,
        stage: Stage | str,
        *,
        actor: str = "local",
        reason: str | None = None,
        approval: int | str | None = None,
    ) -> Transition:
        """Move `version` into `stage`; the version that held Staging/Production is Archived.

        Raises ConflictError when the version already is in `stage` or is not READY, and when
        the guard refuses it (a policy requiring an approved request `approval`, failing gates).
        """
        stage = parse_stage(stage)
        number = _version_number(version)
        self._version(name, number)  # unknown model or version: 404 before any policy check
        ref = f"{name}/{number}"
        self.guard.check(name, number, stage, approval, lambda: self.get_version(ref))
        with writer_lock(self.settings.home):
            current = self._version(name, number)
            if str(current.status) != "READY":
                raise ConflictError(
                    f"version {number} of '{name}' is {current.status}, not READY: "
                    "only a successfully registered version can change stage"
                )
            from_stage = stage_of(current.aliases or [], current.tags or {})
            if from_stage is stage:
                raise ConflictError(
                    f"version {number} of '{name}' is already in {stage.value}",
                    hint=f"see `mloop models show {name}/{number}`",
                )
            moved = self._move(name, number, from_stage, stage, actor, reason)
        self.guard.record(
            RegistryChange(
                actor,
                "model.promote",
                f"{name}/{number}",
                {
                    "stage": stage.value,
                    "from_stage": from_stage.value,
                    "archived": moved.archived_version,
                    "approval": approval,
                    "reason": reason,
                },
            )
        )
        return moved

    def rollback(
        self,
        name: str,
        *,
        stage: Stage | str = Stage.PRODUCTION,
        actor: str = "local",
        reason: str | None = None,
    ) -> Transition:
        """Give `stage` back to the version its current holder replaced; archive the holder.

        Repeated rollbacks walk further back through the recorded history. Raises ConflictError
        when nothing holds the stage, when there is nothing earlier to return to, or when the
        current holder got the stage outside mloop (no recorded promotion to trust).
        """
        stage = parse_stage(stage)
        if not stage.exclusive:
            raise ValidationError(
                f"cannot roll back {stage.value}: only Staging and Production have a single "
                "holder to roll back"
            )
        with writer_lock(self.settings.home):
            model = self._model(name)
            holder = _str_or_none(dict(model.aliases or {}).get(stage.alias))
            if holder is None:
                raise ConflictError(
                    f"no version of '{name}' is in {stage.value}: nothing to roll back",
                    hint=f"see `mloop models history {name}`",
                )
            entry = self.log.last_into(name, stage)
            if entry is None or entry.version != holder:
                raise ConflictError(
                    f"version {holder} of '{name}' holds {stage.value} (alias '{stage.alias}'), "
                    "but mloop recorded no promotion that gave it to that version: the alias was "
                    "set outside mloop, so there is no history to roll back along",
                    hint=f"promote the version you want: mloop models promote {name} VERSION "
                    f"--stage {stage.value}",
                )
            target = entry.replaced_version
            if target is None:
                raise ConflictError(
                    f"nothing to roll back to: version {holder} of '{name}' is the first "
                    f"version mloop recorded in {stage.value}",
                    hint=f"see `mloop models history {name}`",
                )
            restored = self._find_version(name, target)
            if restored is None:
                raise ConflictError(
                    f"cannot roll back '{name}' to version {target}: that version was deleted "
                    "from the registry",
                    hint=f"promote another version: mloop models promote {name} VERSION "
                    f"--stage {stage.value}",
                )
            earlier = self.log.last_into(name, stage, version=target, before_id=entry.id)
            from_stage = stage_of(restored.aliases or [], restored.tags or {})
            back = self._move(
                name,
                target,
                from_stage,
                stage,
                actor,
                reason or f"rollback from version {holder}",
                replaced=earlier.replaced_version if earlier else None,
                archive_reason=f"rolled back: version {target} restored to {stage.value}",
            )
        self.guard.record(
            RegistryChange(
                actor,
                "model.rollback",
                f"{name}/{target}",
                {"stage": stage.value, "archived": holder, "reason": reason},
            )
        )
        return back

    def register(
        self,
        model_uri: str,
        name: str,
        *,
        run_id: str,
        change: str = "minor",
        actor: str = "local",
    ) -> str:
        """Register a logged model as a new version of `name`; return the version number.

        The version gets `mloop.stage`, `mloop.run_id` and the semver, change type and content
        hash tags (`semver.py`, bumped by `change`); the guard records `model.register`.
        """
        change = check_change(change)
        with self._mlflow(f"registering {model_uri} as '{name}'"):
            version = register_version(
                model_uri, name, {STAGE_TAG: Stage.NONE.value, "mloop.run_id": run_id}
            )
            tags = tag_version(self._client, name, version, model_uri, change)
        self.guard.record(
            RegistryChange(actor, "model.register", f"{name}/{version}", {"run_id": run_id, **tags})
        )
        return version

    def set_alias(
        self, name: str, alias: str, version: str | int, *, actor: str | None = None
    ) -> None:
        """Point a non-stage alias (`candidate`) at a version; stages move through `promote`.

        With `actor` the guard records the change (`model.alias`, audited under governance).
        """
        stage = stage_for_alias(alias)
        if stage is not None:
            raise ValidationError(
                f"alias '{alias}' is the {stage.value} stage: it moves through promote",
                hint=f"mloop models promote {name} {version} --stage {stage.value}",
            )
        number = _version_number(version)
        self._version(name, number)
        with self._mlflow(f"setting alias '{alias}' of '{name}' to version {number}"):
            self._client.set_registered_model_alias(name, alias, number)
        if actor is not None:
            target = f"{name}/{number}"
            self.guard.record(RegistryChange(actor, "model.alias", target, {"alias": alias}))

    def set_tags(self, name: str, version: str | int, tags: dict[str, str]) -> None:
        """Set tags on a version; `mloop.stage` is the registry's own and changes by promote."""
        if STAGE_TAG in tags:
            raise ValidationError(f"the {STAGE_TAG} tag changes through promote, not set_tags")
        number = _version_number(version)
        self._version(name, number)
        with self._mlflow(f"tagging version {number} of '{name}'"):
            for key, value in tags.items():
                self._client.set_model_version_tag(name, number, key, value)

    @property
    def log(self) -> TransitionLog:
        """The stage history in the platform database, opened (and migrated) on first use."""
        if self._log is None:
            self._log = TransitionLog(open_database(self.settings))
        return self._log

    # -------------------------------------------------------------------------- internals

    def _move(
        self,
        name: str,
        number: str,
        from_stage: Stage,
        stage: Stage,
        actor: str,
        reason: str | None,
        *,
        replaced: str | None | object = _HOLDER,
        archive_reason: str | None = None,
    ) -> Transition:
        """Point aliases and tags at the new stage holder, archive the old one, record both.

        Promotions record as replaced_version the version that held the stage before; rollback
        passes `replaced` explicitly. Caller holds the writer lock.
        """
        model = self._model(name)
        aliases = {alias: str(v) for alias, v in (model.aliases or {}).items()}
        previous = aliases.get(stage.alias) if stage.alias else None
        if previous == number:  # held both stage aliases (set outside mloop): it keeps this one
            previous = None
        with self._mlflow(f"moving version {number} of '{name}' to {stage.value}"):
            if stage.alias:
                self._client.set_registered_model_alias(name, stage.alias, number)
            for other in (Stage.STAGING, Stage.PRODUCTION):
                if other is not stage and aliases.get(other.alias) == number:
                    self._client.delete_registered_model_alias(name, other.alias)
            self._client.set_model_version_tag(name, number, STAGE_TAG, stage.value)
            if previous is not None:
                for other in (Stage.STAGING, Stage.PRODUCTION):
                    if other is not stage and aliases.get(other.alias) == previous:
                        self._client.delete_registered_model_alias(name, other.alias)
                self._client.set_model_version_tag(name, previous, STAGE_TAG, Stage.ARCHIVED.value)
        replaced_version = previous if replaced is _HOLDER else cast("str | None", replaced)
        changes = [NewTransition(number, from_stage, stage, replaced_version, reason)]
        if previous is not None:
            changes.append(
                NewTransition(
                    previous,
                    stage,
                    Stage.ARCHIVED,
                    None,
                    archive_reason or f"replaced by version {number} in {stage.value}",
                )
            )
        recorded = self.log.record(name, changes, actor)
        return replace(recorded[0], archived_version=previous)

    def _lookup(self, ref: ModelRef | str) -> Any:
        """The MLflow ModelVersion a reference points at, with clear NotFound errors."""
        name, alias, number = _parse_ref(ref)
        if alias is not None:
            model = self._model(name)
            aliases = {a: str(v) for a, v in (model.aliases or {}).items()}
            if alias not in aliases:
                known = ", ".join(f"{a} (version {v})" for a, v in sorted(aliases.items()))
                raise NotFoundError(
                    f"alias '{alias}' of model '{name}' not found: "
                    + (f"its aliases are {known}" if known else "it has no aliases"),
                    hint=_alias_hint(name, alias),
                )
            number = aliases[alias]
        elif number is None:
            self._model(name)
            versions = self._version_numbers(name)
            if not versions:
                raise NotFoundError(f"registered model '{name}' has no versions")
            number = str(max(versions))
        return self._version(name, number)

    def _registered_models(self) -> list[Any]:
        models: list[Any] = []
        token = None
        with self._mlflow("listing registered models"):
            while True:
                page = self._client.search_registered_models(max_results=1000, page_token=token)
                models.extend(page)
                token = page.token
                if not token:
                    return models

    def _model(self, name: str) -> Any:
        """The RegisteredModel `name`, or NotFoundError listing the models that exist."""
        try:
            with self._mlflow(f"reading registered model '{name}'"):
                return self._client.get_registered_model(name)
        except NotFoundError:
            pass
        known = [model.name for model in self._registered_models()]
        raise NotFoundError(
            f"registered model '{name}' not found",
            hint=f"known models: {_short_list(known)} (see `mloop models list`)"
            if known
            else "no models are registered yet: train one with `mloop train` "
            "(see `mloop models list`)",
        )

    def _version_numbers(self, name: str) -> list[int]:
        versions: list[int] = []
        token = None
        with self._mlflow(f"listing versions of '{name}'"):
            while True:
                page = self._client.search_model_versions(
                    f"name={_quote(name)}", max_results=10000, page_token=token
                )
                versions.extend(int(v.version) for v in page)
                token = page.token
                if not token:
                    return sorted(versions)

    def _find_version(self, name: str, number: str) -> Any | None:
        try:
            with self._mlflow(f"reading version {number} of '{name}'"):
                return self._client.get_model_version(name, number)
        except NotFoundError:
            return None

    def _version(self, name: str, number: str) -> Any:
        """The ModelVersion, or NotFoundError naming the versions that exist."""
        found = self._find_version(name, number)
        if found is not None:
            return found
        self._model(name)
        versions = self._version_numbers(name)
        raise NotFoundError(
            f"version {number} of model '{name}' not found: "
            + (
                f"its versions are {_short_list([str(v) for v in versions])}"
                if versions
                else "it has no versions"
            ),
            hint=f"see `mloop models show {name}`",
        )

    def _run(self, run_id: str | None) -> Any | None:
        """The version's run, or None when it has none or it was deleted."""
        if not run_id:
            return None
        try:
            with self._mlflow(f"reading run {run_id}"):
                return self._client.get_run(run_id)
        except NotFoundError:
            return None

    def _mlflow(self, doing: str) -> AbstractContextManager[None]:
        """Translate MLflow (and transport) exceptions raised while `doing` into MloopErrors."""
        return mlflow_failures(self.settings.tracking_uri, doing)


def _parse_ref(ref: ModelRef | str) -> tuple[str, str | None, str | None]:
    """(name, alias, version); a bare NAME or NAME/latest means the latest version."""
    if isinstance(ref, ModelRef):
        return ref.name, ref.alias, ref.version
    text = str(ref).strip()
    body = text.removeprefix("models:/")
    if body.endswith("/latest"):
        body = body[: -len("/latest")]
    if body and "@" not in body and "/" not in body:
        return body, None, None
    parsed = parse_model_ref(text)
    return parsed.name, parsed.alias, parsed.version


def _version_number(version: str | int) -> str:
    text = str(version).strip()
    if not (text.isascii() and text.isdigit()) or int(text) < 1:
        raise ValidationError(f"version must be a positive whole number, got {version!r}")
    return str(int(text))


def _quote(value: str) -> str:
    """A string literal for MLflow's filter syntax."""
    return f'"{value}"' if "'" in value else f"'{value}'"


def _short_list(items: list[str]) -> str:
    if len(items) <= _LIST_LIMIT:
        return ", ".join(items)
    return ", ".join(items[:_LIST_LIMIT]) + f", ... ({len(items) - _LIST_LIMIT} more)"


def _str_or_none(value: object) -> str | None:
    return None if value is None else str(value)


def _from_millis(value: int | None) -> datetime | None:
    return datetime.fromtimestamp(value / 1000, tz=UTC) if value else None


def _alias_hint(name: str, alias: str) -> str:
    """The command that creates a missing alias: promote for a stage's, `models alias` else."""
    stage = stage_for_alias(alias)
    if stage is not None:
        return f"promote a version: mloop models promote {name} VERSION --stage {stage.value}"
    return f"point it at a version: mloop models alias {name} VERSION {alias}"
