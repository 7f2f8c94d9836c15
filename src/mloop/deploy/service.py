"""DeploymentService: create, change, inspect and roll back deployments; every change audited.

Each change reads the current revision, builds the new spec, resolves its models in the
registry, and writes it guarded by the revision read (`DeploymentRecords.write`): a concurrent
change makes this one fail with ConflictError and nothing half-done. A successful change
appends `deployment.<action>` to the audit chain.

Live counts are the serving side's: it passes a `LiveCounts` (per-variant requests/errors it
has seen) to `status`; without one, status shows what every server's traffic log recorded for
this deployment recently (`traffic_log`: per deployment and variant, not per model version).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

from mloop.deploy.records import Deployment, DeploymentRecords, Revision
from mloop.deploy.router import TrafficRouter
from mloop.deploy.shifts import promoted, shifted
from mloop.deploy.spec import DeploymentSpec, Policy, check_models, parse_spec
from mloop.deploy.traffic_log import recent_counts
from mloop.errors import ConflictError, MloopError, ValidationError
from mloop.governance.audit import audit_log
from mloop.registry.service import Registry
from mloop.settings import Settings
from mloop.store import open_database

RECENT = timedelta(minutes=15)


class LiveCounts(Protocol):
    """What a server reports per variant: {variant: {"requests": n, "errors": n, ...}}."""

    def snapshot(self, deployment: str) -> dict[str, dict[str, float]]: ...


class DeploymentService:
    """The deployments of one platform database and model registry."""

    def __init__(self, settings: Settings, registry: Any = None) -> None:
        self.settings = settings
        self.records = DeploymentRecords(open_database(settings))
        self._registry = registry

    @property
    def registry(self) -> Any:
        if self._registry is None:
            self._registry = Registry(self.settings)
        return self._registry

    # ------------------------------------------------------------------------------ reads

    def get(self, name: str) -> tuple[Deployment, DeploymentSpec]:
        found = self.records.get(name)
        return found, parse_spec(found.spec, source=f"deployment '{name}'")

    def list(self) -> list[Deployment]:
        return self.records.list()

    def history(self, name: str) -> list[Revision]:
        revisions = self.records.history(name)
        if not revisions:
            self.records.get(name)  # NotFoundError with the known names
        return revisions

    def default(self) -> Deployment | None:
        """The deployment `/predict` answers from, if one is marked default."""
        return next((d for d in self.records.list() if d.is_default), None)

    def status(self, name: str, live: LiveCounts | None = None) -> dict[str, Any]:
        """Variants, their models and versions now, traffic shares, and counts."""
        found, spec = self.get(name)
        router = TrafficRouter(spec)
        shares = router.shares()
        resolved = self._resolve_soft(spec)
        counts = live.snapshot(name) if live is not None else self._recent_counts(spec)
        variants = []
        for variant in spec.variants:
            model = resolved.get(variant.name, {})
            variants.append(
                {
                    "variant": variant.name,
                    "model": variant.model,
                    "version": model.get("version"),
                    "error": model.get("error"),
                    "share": shares.get(variant.name, 0.0),
                    "shadow_share": router.shadow_share
                    if variant.name == spec.candidate and spec.policy is Policy.SHADOW
                    else 0.0,
                    "role": _role(spec, variant.name),
                    "counts": counts.get(variant.name, {}),
                }
            )
        return {
            **found.to_dict(),
            "policy": spec.policy.value,
            "counts_source": "server" if live is not None else f"traffic log, last {RECENT}",
            "canary": _canary_view(spec),
            "variants": variants,
        }

    # ----------------------------------------------------------------------------- writes

    def apply(
        self, spec: DeploymentSpec | dict[str, Any], actor: str, *, expected: int | None = None
    ) -> Deployment:
        """Create the deployment or write a new revision of it.

        `expected` is the revision the caller read; None means "whatever is current now"
        (read here, so a change made meanwhile still makes this one fail, never interleave).
        """
        if not isinstance(spec, DeploymentSpec):
            spec = parse_spec(spec)
        current = self.records.find(spec.name)
        if expected is None and current is not None:
            expected = current.revision
        elif expected is not None and current is None:
            raise ConflictError(
                f"deployment '{spec.name}' does not exist, so revision {expected} is stale",
                hint="omit the expected revision to create it",
            )
        return self._write(spec, actor, "apply", expected)

    def shift(self, name: str, to_variant: str, percent: float, actor: str) -> Deployment:
        """Give `to_variant` `percent` of the traffic; the others share the rest in proportion."""
        found, spec = self.get(name)

        new = shifted(spec, to_variant, percent)
        return self._write(
            new, actor, "shift", found.revision, note=f"{to_variant} -> {percent:g}%"
        )

    def promote(self, name: str, actor: str, variant: str | None = None) -> Deployment:
        """The candidate (or `variant`) becomes the primary and takes all the traffic."""
        found, spec = self.get(name)

        new, winner = promoted(spec, variant)
        return self._write(new, actor, "promote", found.revision, note=f"{winner} promoted")

    def rollback(self, name: str, actor: str) -> Deployment:
        """Restore the spec that was current before this one (again: the one before that)."""
        found, _ = self.get(name)
        revisions = {r.revision: r for r in self.records.history(name)}
        current = revisions.get(found.revision)
        base = current.restored_from if current and current.restored_from else found.revision
        target = next(
            (
                revisions[n]
                for n in range(base - 1, 0, -1)
                if n in revisions and revisions[n].spec is not None
            ),
            None,
        )
        if target is None:
            raise ConflictError(
                f"deployment '{name}' has no earlier revision to roll back to",
                hint=f"see mloop deploy history {name}",
            )
        spec = parse_spec(target.spec, source=f"revision {target.revision} of '{name}'")
        return self._write(
            spec,
            actor,
            "rollback",
            found.revision,
            note=f"restored revision {target.revision}",
            restored_from=target.revision,
        )

    def record_canary(
        self, spec: DeploymentSpec, expected: int, reason: str, note: str, actor: str
    ) -> Deployment:
        """Write a canary controller decision (`canary-step` or `canary-rollback`)."""
        return self._write(spec, actor, reason, expected, note=note)

    def delete(self, name: str, actor: str) -> int:
        found = self.records.get(name)
        revision = self.records.remove(name, expected=found.revision, actor=actor)
        self._audit(actor, "delete", name, revision=revision)
        return revision

    # ---------------------------------------------------------------------------- helpers

    def _write(
        self,
        spec: DeploymentSpec,
        actor: str,
        reason: str,
        expected: int | None,
        *,
        note: str | None = None,
        restored_from: int | None = None,
    ) -> Deployment:
        resolved = check_models(spec, self.registry)  # NotFoundError before anything is written
        written = self.records.write(
            spec.name,
            spec.to_json(),
            expected=expected,
            actor=actor,
            reason=reason,
            resolved=resolved,
            note=note,
            restored_from=restored_from,
            default=spec.default,
        )
        versions = {v: r["version"] for v, r in resolved.items()}
        action = reason.replace("-", "_")
        self._audit(
            actor, action, spec.name, revision=written.revision, versions=versions, note=note
        )
        return written

    def _audit(self, actor: str, action: str, name: str, **detail: Any) -> None:
        audit_log(self.settings).record(
            actor, f"deployment.{action}", f"deployment:{name}", **detail
        )

    def _resolve_soft(self, spec: DeploymentSpec) -> dict[str, dict[str, Any]]:
        """Resolve each variant now; a reference that broke since apply shows its error."""
        out: dict[str, dict[str, Any]] = {}
        for variant in spec.variants:
            try:
                model = self.registry.resolve(variant.model)
                out[variant.name] = {"name": model.name, "version": model.version}
            except MloopError as exc:
                out[variant.name] = {"error": exc.message}
        return out

    def _recent_counts(self, spec: DeploymentSpec) -> dict[str, dict[str, float]]:
        """Rows each variant answered over RECENT (every server's traffic log), 0 if none."""
        found = recent_counts(self.records.database, spec.name, datetime.now(UTC) - RECENT)
        return {v.name: found.get(v.name, {"requests": 0, "errors": 0}) for v in spec.variants}


def _canary_view(spec: DeploymentSpec) -> dict[str, Any] | None:
    if spec.canary is None:
        return None
    return {**spec.canary.model_dump(mode="json"), "percent": spec.canary.current_percent}


def _role(spec: DeploymentSpec, variant: str) -> str:
    if spec.policy is Policy.BLUE_GREEN:
        return "active" if variant == spec.primary else "idle"
    if spec.candidate == variant:
        return "candidate"
    if spec.policy in (Policy.CANARY, Policy.SHADOW, Policy.SINGLE):
        return "primary"
    return "control" if variant == spec.variants[0].name else "treatment"


def require_percent(percent: float) -> float:
    if not 0 <= percent <= 100:
        raise ValidationError(f"percent must be between 0 and 100, got {percent:g}")
    return float(percent)
