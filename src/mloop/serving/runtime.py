"""Which model this server answers with, how it got there, and how it follows its alias.

`ModelRuntime` loads the served reference in a background thread so the server answers
`/health` at once. When the primary fails it tries `settings.fallback_model_uris` in order
(the seed guide's ModelLoader) and records why each candidate failed. When every candidate
fails the runtime stays up, reports the reasons, and tries again after 1 s, 2 s, 4 s ... then every
`retry_interval` seconds.

Hot swaps: a runtime serving an alias (`churn@production`, `models:/churn@production`) follows
it. `refresh()` resolves the alias (one registry read) and, when it names another version,
loads that version, warms it up (`model.warmup`) and swaps `self.model` in one assignment.
A request takes `require()` once and uses that model to the end, so the old model drains by
itself. A version that fails to load or to warm up is never swapped in: the old one keeps
serving, the failure shows in `status()`, the log and `mloop_model_swaps_total`, and that
version is tried again only after a backoff (or when a refresh is asked for explicitly).
Pinned versions and URIs never move: `refresh()` is a no-op for them.
"""

from __future__ import annotations

import ctypes
import gc
import logging
import threading
import time
import weakref
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from mloop.errors import ConfigError, MloopError, ModelIntegrityError, ServiceUnavailableError
from mloop.model.loader import LoadedModel
from mloop.model.warmup import warm_up
from mloop.registry.records import ResolvedModel
from mloop.registry.refs import ModelRef, parse_model_ref
from mloop.registry.resolve import load_model, resolve_ref
from mloop.settings import Settings

log = logging.getLogger("mloop.serving")

RETRY_SECONDS = 30.0
FIRST_RETRY_SECONDS = 1.0  # the first retry of a failed first load; doubles up to RETRY_SECONDS
MAX_BACKOFF_SECONDS = 600.0  # a version that keeps failing is tried at most this rarely
DRAIN_SECONDS = 60.0  # how long the heap re-freeze waits for the old model to be released

LOADING = "loading"
READY = "ready"
UNAVAILABLE = "unavailable"

# What one refresh did (SwapOutcome.state) and where following stands (status()["swap"]).
PINNED = "pinned"  # not an alias: never moves
UNCHANGED = "unchanged"
SWAPPED = "swapped"
FAILED = "failed"
LOADED = "loaded"  # nothing served before; now a model is
CURRENT = "current"  # serving the version the alias names
SWAPPING = "swapping"


@dataclass(frozen=True)
class LoadFailure:
    """One candidate that could not be loaded, and why."""

    uri: str
    error: str

    def to_dict(self) -> dict[str, str]:
        return {"uri": self.uri, "error": self.error}


@dataclass(frozen=True)
class SwapOutcome:
    """What one `refresh()` did for one reference (the `POST /models/refresh` answer rows)."""

    reference: str | None
    from_version: str | None
    to_version: str | None
    state: str
    error: str | None = None

    def to_dict(self) -> dict[str, Any]:
        body: dict[str, Any] = {
            "reference": self.reference,
            "from_version": self.from_version,
            "to_version": self.to_version,
            "state": self.state,
        }
        if self.error:
            body["error"] = self.error
        return body


@dataclass(frozen=True)
class ModelEvent:
    """Told to listeners when what a runtime serves changes, or a swap fails."""

    reference: str  # the runtime's reference (or the fallback URI serving without one)
    kind: str  # LOADED, SWAPPED or FAILED
    from_version: str | None
    to_version: str | None
    error: str | None = None


@dataclass
class _Failure:
    """The latest version that could not be swapped in, and when to try it again."""

    version: str | None
    uri: str | None
    error: str
    at: str
    attempts: int
    retry_at: float

    def to_dict(self) -> dict[str, Any]:
        return {
            "version": self.version,
            "uri": self.uri,
            "error": self.error,
            "at": self.at,
            "attempts": self.attempts,
        }


class ModelRuntime:
    """Holds the served model; loads it (with fallbacks) off the request path; follows aliases."""

    def __init__(
        self,
        reference: str | None,
        settings: Settings,
        *,
        retry_interval: float = RETRY_SECONDS,
        loader: Callable[[str, Settings], LoadedModel] = load_model,
        use_fallbacks: bool = True,
        resolver: Callable[[ModelRef], ResolvedModel] | None = None,
        clock: Callable[[], float] = time.monotonic,
        freeze_heap: bool = False,
        on_refused: Callable[[ModelIntegrityError], None] | None = None,
    ) -> None:
        fallbacks = list(settings.fallback_model_uris) if use_fallbacks else []
        candidates = ([reference] if reference else []) + fallbacks
        if not candidates:
            raise ConfigError(
                "no model to serve",
                hint="pass a MODEL_REF (churn@production) or set MLOOP_FALLBACK_MODEL_URIS",
            )
        self.reference = reference
        self.candidates = candidates
        self.settings = settings
        self.retry_interval = retry_interval
        # on_refused: told each version refused for changed files (the audit; mloop.governance)
        self.on_refused = on_refused
        self._loader = loader if on_refused is None else _telling(loader, on_refused)
        self._resolver = resolver or self._resolve
        self._clock = clock
        # `gc.freeze()` after each load (`_freeze_heap`): a serving process's choice (mloop
        # serve), since it changes the whole interpreter; off for apps built in tests.
        self.freeze_heap = freeze_heap
        self._lock = threading.Lock()
        self._load_lock = threading.Lock()  # one load (first, retry or swap) at a time
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._settled = threading.Event()
        self.state = LOADING
        self.model: LoadedModel | None = None
        self.failures: list[LoadFailure] = []
        self.attempts = 0
        self.warm_up_error: str | None = None
        # Following the alias: called with a ModelEvent from the loading thread.
        self.listeners: list[Callable[[ModelEvent], None]] = []
        self.followed = _alias_of(reference)
        self._swap_state = CURRENT if self.followed else PINNED
        self._last_swap: dict[str, Any] | None = None
        self._failure: _Failure | None = None
        self._reclaimer: threading.Thread | None = None

    # -- what the server asks ------------------------------------------------------------------

    @property
    def ready(self) -> bool:
        return self.model is not None

    @property
    def follows(self) -> bool:
        """True when the reference is an alias this runtime follows (hot swaps)."""
        return self.followed is not None

    @property
    def model_name(self) -> str | None:
        """The registered model name of the reference (None for URIs and folders)."""
        try:
            return parse_model_ref(self.reference).name if self.reference else None
        except MloopError:
            return None

    @property
    def fallback_used(self) -> str | None:
        """The URI serving instead of the primary reference, if a fallback took over."""
        if self.model is None or not self.reference:
            return None
        return None if self.model.source == self.reference else self.model.source

    @property
    def reason(self) -> str | None:
        """Why the runtime is not ready (None when it is)."""
        if self.model is not None:
            return None
        if self.state == LOADING and not self.failures:
            return f"loading {self.candidates[0]}"
        failures = "; ".join(f"{f.uri}: {f.error}" for f in self.failures)
        return f"no model could be loaded ({failures}); retrying every {self.retry_interval:g}s"

    def require(self) -> LoadedModel:
        """The served model, or ServiceUnavailableError with the reason."""
        model = self.model
        if model is None:
            raise ServiceUnavailableError(
                f"model not loaded: {self.reason}", hint="GET /ready reports the loading state"
            )
        return model

    def status(self) -> dict[str, Any]:
        """State, reason and the failures behind it (for /ready and /model/info)."""
        return {
            "state": self.state,
            "reason": self.reason,
            "failures": [f.to_dict() for f in self.failures],
            "attempts": self.attempts,
            "swap": self.swap_status(),
        }

    def swap_status(self) -> dict[str, Any]:
        """Following the alias: state (current, swapping, failed, pinned), last swap, failure."""
        model = self.model
        with self._lock:
            failure = self._failure
            body: dict[str, Any] = {
                "state": self._swap_state,
                "follows": str(self.followed) if self.followed else None,
                "serving_version": model.version if model is not None else None,
                "last_swap": dict(self._last_swap) if self._last_swap else None,
                "last_failure": failure.to_dict() if failure else None,
            }
        if self.warm_up_error:
            body["warm_up_error"] = self.warm_up_error
        return body

    # -- loading -------------------------------------------------------------------------------

    def load_once(self) -> bool:
        """Try every candidate in order; keep the first that loads. True when a model serves."""
        with self._load_lock:
            return self._load_candidates()

    def _load_candidates(self) -> bool:
        failures: list[LoadFailure] = []
        for uri in self.candidates:
            try:
                model = self._loader(uri, self.settings)
            except MloopError as exc:
                failures.append(LoadFailure(uri, exc.message))
                log.warning("cannot load model %s: %s", uri, exc.message)
                continue
            except Exception as exc:  # a loader bug must not kill the server
                failures.append(LoadFailure(uri, f"{type(exc).__name__}: {exc}"))
                log.exception("unexpected error loading model %s", uri)
                continue
            model.source = uri
            self._first_warm_up(model)
            with self._lock:
                self.model, self.failures, self.state = model, failures, READY
                self.attempts += 1
            log.info("serving %s version %s from %s", model.name, model.version, uri)
            self._notify(ModelEvent(self.reference or uri, LOADED, None, model.version))
            if self.freeze_heap:
                _freeze_heap()
            return True
        with self._lock:
            self.failures, self.state = failures, UNAVAILABLE
            self.attempts += 1
        return False

    def _first_warm_up(self, model: LoadedModel) -> None:
        """Warm up the first model too; with nothing else to serve a failure is only reported."""
        try:
            warm_up(model)
        except Exception as exc:
            self.warm_up_error = f"{type(exc).__name__}: {_message(exc)}"
            log.warning("model %s warm-up failed (serving it anyway): %s", model.uri, exc)
        else:
            self.warm_up_error = None

    def start(self) -> None:
        """Load in a background thread; retry every `retry_interval` until a model serves."""
        if self._thread is not None:
            return
        self._thread = threading.Thread(target=self._run, name="mloop-model-loader", daemon=True)
        self._thread.start()

    def wait_until_settled(self, timeout: float | None = None) -> bool:
        """Block until the first load attempt finished (ready or unavailable)."""
        if self._thread is None:
            return self.state != LOADING
        self._settled.wait(timeout)
        return self.state != LOADING

    def stop(self, timeout: float = 5.0) -> None:
        """Stop retrying; a load in progress finishes in its (daemon) thread."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)

    def _run(self) -> None:
        # A failed first load is tried again at once and then less and less often (1 s, 2 s,
        # 4 s ... up to `retry_interval`): a passing fault (a registry restart, a file still
        # being written) costs seconds of unavailability, not a whole interval.
        wait = min(FIRST_RETRY_SECONDS, self.retry_interval)
        while not self._stop.is_set():
            loaded = self.load_once()
            self._settled.set()
            if loaded or self._stop.wait(wait):
                return
            wait = min(wait * 2, self.retry_interval)

    # -- following the alias -------------------------------------------------------------------

    def refresh(self, *, force: bool = False) -> SwapOutcome:
        """Serve the version the alias names now: load, warm up and swap when it moved.

        Thread-safe and blocking (call it off the event loop). A version that failed is tried
        again only once its backoff passed, unless `force` (an explicit refresh). Never raises:
        failures are reported in the outcome, `status()`, the log and the listeners.
        """
        before = self.model
        if self.followed is None:
            version = before.version if before is not None else None
            return SwapOutcome(self.reference, version, version, PINNED)
        with self._load_lock:
            outcome = self._refresh(force)
        if outcome.state == UNCHANGED and before is not None and self.model is not before:
            # another refresh swapped while this one waited: say what changed since the call
            outcome = SwapOutcome(self.reference, before.version, outcome.to_version, SWAPPED)
        return outcome

    def _refresh(self, force: bool) -> SwapOutcome:
        current = self.model
        if current is None:  # nothing serves yet: this is a load attempt like the retries
            loaded = self._load_candidates()
            version = self.model.version if self.model is not None else None
            return SwapOutcome(self.reference, None, version, LOADED if loaded else UNAVAILABLE)
        assert self.followed is not None
        try:
            resolved = self._resolver(self.followed)
        except Exception as exc:  # alias deleted, registry down: keep serving what we have
            error = _message(exc)
            self._record_failure(None, None, error, counted=False)
            return SwapOutcome(self.reference, current.version, None, FAILED, error)
        if resolved.uri == current.uri:
            with self._lock:
                self._swap_state = CURRENT
            return SwapOutcome(self.reference, current.version, current.version, UNCHANGED)
        failure = self._failure
        if (
            not force
            and failure is not None
            and failure.uri == resolved.uri
            and self._clock() < failure.retry_at
        ):
            return SwapOutcome(
                self.reference, current.version, resolved.version, FAILED, failure.error
            )
        with self._lock:
            self._swap_state = SWAPPING
        try:
            model = self._loader(resolved.uri, self.settings)
            model.source, model.alias = self.reference or resolved.uri, resolved.alias
            warm_up(model)
        except Exception as exc:
            error = _message(exc)
            self._record_failure(resolved.version, resolved.uri, error, counted=True)
            log.warning(
                "hot swap of %s to version %s failed; version %s keeps serving: %s",
                self.reference,
                resolved.version,
                current.version,
                error,
            )
            self._notify(
                ModelEvent(self.reference or "", FAILED, current.version, resolved.version, error)
            )
            return SwapOutcome(self.reference, current.version, resolved.version, FAILED, error)
        with self._lock:
            self.model = model  # the swap: requests from now on take the new model
            self.state, self.failures = READY, []
            self._swap_state = CURRENT
            self._last_swap = {
                "from_version": current.version,
                "to_version": model.version,
                "at": _now(),
            }
        log.info(
            "hot swap: %s now serves version %s (was %s)",
            self.reference,
            model.version,
            current.version,
        )
        self._notify(ModelEvent(self.reference or "", SWAPPED, current.version, model.version))
        self._reclaim(current)
        return SwapOutcome(self.reference, current.version, model.version, SWAPPED)

    def _record_failure(self, version: str | None, uri: str | None, error: str, *, counted: bool):
        """Remember the failed version; back off exponentially while the same one keeps failing."""
        with self._lock:
            previous = self._failure
            same = previous is not None and previous.uri == uri and previous.error == error
            attempts = previous.attempts + 1 if previous is not None and previous.uri == uri else 1
            base = self.settings.model_poll_seconds or self.retry_interval
            backoff = min(base * 2 ** (attempts - 1), MAX_BACKOFF_SECONDS)
            self._failure = _Failure(version, uri, error, _now(), attempts, self._clock() + backoff)
            self._swap_state = FAILED
        if not counted and not same:
            log.warning("cannot follow %s: %s", self.reference, error)

    def _notify(self, event: ModelEvent) -> None:
        for listener in list(self.listeners):
            try:
                listener(event)
            except Exception:
                log.exception("model event listener failed")

    def _resolve(self, ref: ModelRef) -> ResolvedModel:
        """The version `ref`'s alias names now, read from this runtime's registry."""
        return resolve_ref(ref, self.settings)

    def _reclaim(self, old: LoadedModel) -> None:
        """Let the swapped-out model be freed once drained, then collect (and re-freeze the heap
        when this runtime freezes it)."""
        gone = weakref.ref(old)
        del old
        self._reclaimer = threading.Thread(
            target=_refreeze_after,
            args=(gone, self._stop, self.freeze_heap),
            name="mloop-model-reclaim",
            daemon=True,
        )
        self._reclaimer.start()

    def wait_reclaimed(self, timeout: float | None = None) -> None:
        """Block until the last swap's heap re-freeze ran (tests)."""
        if self._reclaimer is not None:
            self._reclaimer.join(timeout)


def _telling(
    loader: Callable[[str, Settings], LoadedModel],
    on_refused: Callable[[ModelIntegrityError], None],
) -> Callable[[str, Settings], LoadedModel]:
    """`loader`, telling `on_refused` of each integrity refusal before it propagates."""

    def load(uri: str, settings: Settings) -> LoadedModel:
        try:
            return loader(uri, settings)
        except ModelIntegrityError as exc:
            on_refused(exc)
            raise

    return load


def _alias_of(reference: str | None) -> ModelRef | None:
    """The registered alias `reference` names, or None (versions, URIs, folders never move)."""
    if not reference:
        return None
    try:
        ref = parse_model_ref(reference)
    except MloopError:
        return None
    return ref if ref.alias else None


def _freeze_heap() -> None:
    """Move the objects alive now (libraries, the model) out of the cyclic GC's reach.

    Without this, every full collection walks the whole heap of MLflow, pandas and
    scikit-learn objects: pauses of tens of milliseconds that stall the event loop and
    showed up as the p99 latency under load. Objects created later are collected as usual.
    `gc.unfreeze()` first: a model swapped out since the last freeze sits in the permanent
    generation, where a reference cycle in it would never be collected.
    """
    gc.unfreeze()
    gc.collect()
    gc.freeze()


def _refreeze_after(gone: weakref.ref, stop: threading.Event, freeze: bool = True) -> None:
    """Wait until the old model is released (its requests drained), then re-freeze the heap
    (`freeze` False: only collect, so a reference cycle in it goes now, not at some later
    full collection; the GC's settings are left alone).

    A model still held after DRAIN_SECONDS (or one kept alive by a reference cycle, which
    only the unfreeze + collect below can break) is refrozen with the rest; the next swap
    unfreezes it again, so at most one old model is ever held in the permanent generation.
    """
    deadline = time.monotonic() + DRAIN_SECONDS
    while gone() is not None and time.monotonic() < deadline:
        if stop.wait(0.05):
            return
    if freeze:
        _freeze_heap()
    else:
        gc.collect()
    release_free_memory()


def release_free_memory() -> bool:
    """Give the C heap's free pages back to the system (glibc `malloc_trim(0)`; False where
    there is no glibc).

    A swapped-out model frees its arrays, but glibc keeps the freed pages inside its arenas,
    so each hot swap left the worker's resident memory about 10 MB higher (the 30-minute soak:
    +13% after 5 swaps; in one process: 403 MB -> 419 MB over 6 swaps, and 384 MB flat with
    the trim). Called once the old model is gone.
    """
    libc = _libc()
    if libc is None or not hasattr(libc, "malloc_trim"):
        return False
    libc.malloc_trim(0)
    return True


_LIBC: list[Any] = []


def _libc() -> Any:
    """The C library this process runs on (its symbols, as the interpreter sees them)."""
    if not _LIBC:
        try:
            _LIBC.append(ctypes.CDLL(None))
        except (OSError, TypeError):  # no dlopen(NULL) here (Windows)
            _LIBC.append(None)
    return _LIBC[0]


def _now() -> str:
    return datetime.now(UTC).isoformat()


def _message(exc: BaseException) -> str:
    if isinstance(exc, MloopError):
        return exc.message
    text = str(exc).strip()
    return f"{type(exc).__name__}: {text.splitlines()[0] if text else ''}".rstrip(": ")
