"""The deployments one server routes traffic by, kept current off the request path.

`Traffic` holds one `TrafficRouter` per deployment, rebuilt when the deployment's `revision`
changes. The table is read from the platform database at startup, every
`MLOOP_DEPLOYMENT_POLL_SECONDS` by a background thread, and at once after a change made through
this server's REST routes or by its canary timer. Routing a request only reads the table
(a dict swapped whole on change): it never touches the database.

Every variant's model reference gets its runtime in the server's `ModelPool` when a revision is
loaded, so variants start loading before their first request. The canary timer runs
`CanaryDriver(...).tick_all()` every `MLOOP_CANARY_TICK_SECONDS`, judging each candidate by what
this process saw of it (`LiveCounts.window` since the last step). With several workers or
replicas each judges its own share of the traffic; the revision guard makes one write win.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from mloop.deploy.canary import CanaryDriver, Observation
from mloop.deploy.router import TrafficRouter
from mloop.deploy.service import DeploymentService
from mloop.deploy.spec import DeploymentSpec, parse_spec
from mloop.deploy.traffic_log import TrafficLog
from mloop.errors import MloopError, NotFoundError
from mloop.serving.live_counts import LiveCounts
from mloop.serving.metrics import ServingMetrics
from mloop.serving.pool import ModelPool
from mloop.serving.shadow import ShadowRunner
from mloop.settings import Settings
from mloop.store import open_database

log = logging.getLogger("mloop.serving.traffic")

USER_HEADER = "x-user-id"  # the sticky key when the body carries none


@dataclass(frozen=True)
class Route:
    """One revision of a deployment, ready to route requests."""

    name: str
    revision: int
    spec: DeploymentSpec
    router: TrafficRouter
    sticky_key: str  # body field (top level or in the row) that keeps a user on a variant
    force_header: str  # header naming a variant to force

    @classmethod
    def build(cls, name: str, revision: int, spec: DeploymentSpec) -> Route:
        ab = spec.ab
        return cls(
            name,
            revision,
            spec,
            TrafficRouter(spec),
            ab.sticky_key if ab else "user_id",
            ab.force_header if ab else "X-Variant",
        )


class Traffic:
    """The routing table, its poll thread, the canary timer, live counts and shadow calls.

    `serves_default`: the server was started without a model reference, so `/predict` answers
    from the default deployment.
    """

    def __init__(
        self,
        settings: Settings,
        pool: ModelPool,
        metrics: ServingMetrics,
        *,
        serves_default: bool = False,
        service: Any = None,
    ) -> None:
        self.settings = settings
        self.pool = pool
        self.serves_default = serves_default
        self.log = TrafficLog(open_database(settings))  # what `mloop deploy status` counts
        self.counts = LiveCounts(sink=self.log.record)
        self.shadow = ShadowRunner(metrics, self.counts)
        self._service = service
        self._routes: dict[str, Route] = {}
        self._default: str | None = None
        self._refresh_lock = threading.Lock()
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []

    @property
    def service(self) -> Any:
        if self._service is None:
            self._service = DeploymentService(self.settings)
        return self._service

    # -- the request path (no I/O) -------------------------------------------------------------

    def get(self, name: str) -> Route:
        """The route of deployment `name`; NotFoundError naming the known deployments."""
        found = self._routes.get(name)
        if found is None:
            known = ", ".join(sorted(self._routes)) or "none"
            raise NotFoundError(
                f"no deployment named '{name}' is served here",
                hint=f"deployments: {known}; create one with `mloop deploy apply SPEC.yaml`",
            )
        return found

    def default_route(self) -> Route | None:
        """The default deployment's route when `/predict` follows it, else None."""
        if not self.serves_default or self._default is None:
            return None
        return self._routes.get(self._default)

    def names(self) -> list[str]:
        return sorted(self._routes)

    # -- keeping the table current -------------------------------------------------------------

    def refresh(self) -> bool:
        """Re-read the deployments (blocking: run it off the event loop). True if any changed.

        A database that cannot be read keeps the current table (and logs why).
        """
        with self._refresh_lock:
            try:
                stored = self.service.list()
            except Exception as exc:
                log.warning("cannot read deployments, keeping the current routes: %s", exc)
                return False
            routes: dict[str, Route] = {}
            default = None
            for deployment in stored:
                current = self._routes.get(deployment.name)
                if current is not None and current.revision == deployment.revision:
                    routes[deployment.name] = current
                else:
                    built = self._build(deployment)
                    if built is None:
                        continue
                    routes[deployment.name] = built
                if deployment.is_default:
                    default = deployment.name
            changed = routes.keys() != self._routes.keys() or any(
                routes[n] is not self._routes[n] for n in routes
            )
            self._routes, self._default = routes, default
            return changed

    def _build(self, deployment: Any) -> Route | None:
        try:
            spec = parse_spec(deployment.spec, source=f"deployment '{deployment.name}'")
        except MloopError as exc:
            log.error("deployment %s is not routable: %s", deployment.name, exc.message)
            return None
        for variant in spec.variants:  # start loading every variant's model now
            try:
                self.pool.runtime(variant.model)
            except MloopError as exc:
                log.error("variant %s/%s: %s", spec.name, variant.name, exc.message)
        log.info("routing %s at revision %d", deployment.name, deployment.revision)
        return Route.build(deployment.name, deployment.revision, spec)

    def observe(self, spec: DeploymentSpec, since: datetime | None) -> Observation:
        """The canary candidate's requests, errors and p95 in this process since `since`."""
        assert spec.canary is not None
        requests, errors, p95 = self.counts.window(spec.name, spec.canary.candidate, since)
        return Observation(requests, errors, p95)

    def tick_canaries(self) -> dict[str, Any]:
        """Judge every running canary once; a decision that wrote a revision is routed at once."""
        decisions = CanaryDriver(self.service, self.observe).tick_all()
        if decisions:
            self.refresh()
        return decisions

    # -- lifespan ------------------------------------------------------------------------------

    def start(self) -> None:
        """Start the poll thread and the canary timer (after a first `refresh`)."""
        self._stop.clear()
        self._threads = [
            self._every(self.settings.deployment_poll_seconds, self.refresh, "mloop-traffic"),
            self._every(self.settings.canary_tick_seconds, self.tick_canaries, "mloop-canary"),
        ]

    def stop(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(5.0)
        self._threads = []
        self.shadow.close()
        self.log.close()

    def _every(self, seconds: float, work: Callable[[], Any], name: str) -> threading.Thread:
        def loop() -> None:
            while not self._stop.wait(seconds):
                try:
                    work()
                except Exception:  # a bad tick must not end the loop
                    log.exception("%s failed", name)

        thread = threading.Thread(target=loop, name=name, daemon=True)
        thread.start()
        return thread
