"""What the registry asks before a stage change and tells after any change: the guard.

The registry holds no policy. `Registry` takes a `PromotionGuard`: `check` may refuse a
promotion (raise ConflictError) and `record` receives every change the registry made
(registration, promotion, rollback) for the audit trail. Governance, a layer above, provides
the real guard (`mloop.governance.enforce.GovernanceGuard`); the default allows everything and
records nothing, for tools and tests that run without a policy.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from mloop.registry.records import VersionDetails
from mloop.registry.stages import Stage


@dataclass(frozen=True)
class RegistryChange:
    """One change the registry made: who, what (`model.promote`...), on which `NAME/VERSION`."""

    actor: str
    action: str
    target: str
    detail: dict[str, Any] = field(default_factory=dict)


class ChangeRecorder(Protocol):
    """Receives the registry's changes (the audit trail)."""

    def record(self, change: RegistryChange) -> None: ...


class PromotionGuard(ChangeRecorder, Protocol):
    """Decides whether a promotion may happen, and records the changes that did."""

    def check(
        self,
        name: str,
        version: str,
        stage: Stage,
        approval: int | str | None,
        details: Callable[[], VersionDetails],
    ) -> None:
        """Raise (ConflictError) unless `version` of `name` may move into `stage`.

        `details()` returns the version's VersionDetails; call it only when needed (gates).
        """
        ...


class AllowAll:
    """The guard of an ungoverned registry: every promotion is allowed, nothing is recorded."""

    def check(
        self,
        name: str,
        version: str,
        stage: Stage,
        approval: int | str | None,
        details: Callable[[], VersionDetails],
    ) -> None:
        return None

    def record(self, change: RegistryChange) -> None:
        return None


ALLOW_ALL = AllowAll()
