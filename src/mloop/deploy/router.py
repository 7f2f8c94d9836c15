"""The traffic router: which variant answers a request. Pure, fast, and the same everywhere.

Sticky assignment hashes the deployment name and the key with SHA-256 into a bucket in
[0, 10000): the same key lands on the same variant in every worker, after every restart, and
on every machine (Python's `hash()` is salted per process and is not used). Requests without a
key draw at random with the same weights. A forced variant (header) always wins.

The serving side builds one `TrafficRouter` per deployment revision and calls `choose` per
request; it then serves `choice.model_ref` and, when `choice.shadow_ref` is set, mirrors the
request there off the response path.
"""

from __future__ import annotations

import hashlib
import random
from bisect import bisect_right
from dataclasses import dataclass

from mloop.deploy.spec import DeploymentSpec, Policy
from mloop.errors import NotFoundError

BUCKETS = 10_000


@dataclass(frozen=True)
class Choice:
    """The variant that answers, its model reference, and the shadow target if mirrored."""

    variant: str
    model_ref: str
    shadow_ref: str | None = None
    shadow_variant: str | None = None
    forced: bool = False


def bucket(deployment: str, key: str) -> int:
    """Stable bucket of `key` in `deployment`: sha256(name NUL key) mod 10000."""
    digest = hashlib.sha256(f"{deployment}\x00{key}".encode()).digest()
    return int.from_bytes(digest[:8], "big") % BUCKETS


class TrafficRouter:
    """Chooses a variant per request for one revision of a deployment spec."""

    def __init__(self, spec: DeploymentSpec, rng: random.Random | None = None) -> None:
        self.spec = spec
        self._models = {v.name: v.model for v in spec.variants}
        self._rng = rng or random.Random()
        shares = self.shares()
        self._names = [name for name, share in shares.items() if share > 0]
        # Cumulative bucket bounds: variant i owns [bounds[i-1], bounds[i]).
        self._bounds, total = [], 0.0
        for name in self._names:
            total += shares[name]
            self._bounds.append(round(total * BUCKETS / 100))
        if self._bounds:
            self._bounds[-1] = BUCKETS
        self.shadow_share = (
            spec.shadow.share if spec.policy is Policy.SHADOW and spec.shadow else 0.0
        )

    def shares(self) -> dict[str, float]:
        """Percent of answered traffic per variant (shadow copies are not answers)."""
        spec = self.spec
        names = [v.name for v in spec.variants]
        if spec.policy is Policy.AB:
            return {v.name: float(v.weight or 0.0) for v in spec.variants}
        if spec.policy is Policy.CANARY and spec.canary:
            candidate = spec.canary.candidate
            share = spec.canary.current_percent
            return {n: share if n == candidate else 100.0 - share for n in names}
        primary = spec.primary
        return {n: 100.0 if n == primary else 0.0 for n in names}

    def choose(self, key: str | None = None, forced: str | None = None) -> Choice:
        """The variant for a request with sticky `key` (or none) and an optional forced variant.

        Raises NotFoundError when `forced` names no variant of this deployment.
        """
        if forced:
            if forced not in self._models:
                raise NotFoundError(
                    f"deployment '{self.spec.name}' has no variant '{forced}'",
                    hint=f"its variants are {', '.join(self._models)}",
                )
            return Choice(forced, self._models[forced], forced=True)
        if not self._names:  # every share is 0 (e.g. an A/B with weights 100/0 inverted)
            name = self.spec.primary
        elif len(self._names) == 1:
            name = self._names[0]
        else:
            point = bucket(self.spec.name, key) if key is not None else self._rng.randrange(BUCKETS)
            name = self._names[bisect_right(self._bounds, point)]
        return self._with_shadow(name, key)

    def _with_shadow(self, name: str, key: str | None) -> Choice:
        spec = self.spec
        if spec.policy is not Policy.SHADOW or spec.shadow is None or self.shadow_share <= 0:
            return Choice(name, self._models[name])
        candidate = spec.shadow.candidate
        if name == candidate:
            return Choice(name, self._models[name])
        # Mirror a share of requests; sticky keys mirror the same users every time.
        salt = f"{spec.name}/shadow"
        point = bucket(salt, key) if key is not None else self._rng.randrange(BUCKETS)
        if point < self.shadow_share * BUCKETS / 100:
            return Choice(name, self._models[name], self._models[candidate], candidate)
        return Choice(name, self._models[name])
