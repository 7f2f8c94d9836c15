"""What each worker process costs and which build it runs: `process_*` per worker, and
`mloop_build_info`.

prometheus_client's own process collector reports only the process that answers the scrape,
and in multiprocess mode (`PROMETHEUS_MULTIPROC_DIR`, several workers) it is not collected at
all. `WorkerProcessCollector` reads `/proc` for every live worker instead: the workers are the
pids that own files in the multiprocess folder (`counter_<pid>.db`, ...) and share this
process's parent (the supervisor), plus this one. Each
sample carries a `pid` label, so `sum(process_resident_memory_bytes)` is the server's memory
whichever worker answers. On systems without `/proc` it reports nothing.

`mloop_build_info{version, git_sha} 1`: the git sha is read once per process (`git_sha()`).
"""

from __future__ import annotations

import os
import re
import subprocess
from collections.abc import Callable, Iterable, Iterator
from functools import lru_cache
from pathlib import Path

from prometheus_client import ProcessCollector
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from mloop import __version__

BUILD_SHA_FILE = "GIT_SHA"  # written into the package at build time (the image build)
UNKNOWN = "unknown"
_DB_FILE = re.compile(r"_(\d+)\.db$")
_SHA = re.compile(r"^[0-9a-f]{7,64}$")


def worker_pids(folder: str | None, *, parent: int | None = None) -> list[int]:
    """This process and every live process with metric files in the multiprocess `folder`
    whose parent is `parent` (default: this process's parent, as the workers of one uvicorn
    or gunicorn supervisor are), so a stale file of a reused pid names no stranger."""
    own = os.getpid()
    parent = os.getppid() if parent is None else parent
    pids = set()
    if folder:
        try:
            names = os.listdir(folder)
        except OSError:
            names = []
        for name in names:
            match = _DB_FILE.search(name)
            if match:
                pids.add(int(match.group(1)))
    pids.discard(own)
    return sorted({own, *(pid for pid in pids if _parent_of(pid) == parent)})


def _parent_of(pid: int) -> int | None:
    """The parent pid from /proc/PID/stat (None when the process is gone or unreadable)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text(encoding="ascii", errors="replace")
    except OSError:
        return None
    fields = stat.rsplit(")", 1)[-1].split()  # the command name may hold spaces
    try:
        return int(fields[1])  # state, ppid, ...
    except (IndexError, ValueError):
        return None


class WorkerProcessCollector(Collector):
    """`process_resident_memory_bytes`, `process_cpu_seconds_total`, `process_open_fds`, ...
    for each pid `pids()` names, labelled `pid`."""

    def __init__(self, pids: Callable[[], Iterable[int]]) -> None:
        self._pids = pids

    def collect(self) -> Iterator[Metric]:
        families: dict[str, Metric] = {}
        for pid in self._pids():
            one = ProcessCollector(registry=None, pid=lambda pid=pid: pid)
            for family in one.collect():
                merged = families.get(family.name)
                if merged is None:
                    merged = families[family.name] = Metric(
                        family.name, family.documentation, family.type
                    )
                for sample in family.samples:
                    labels = {**sample.labels, "pid": str(pid)}
                    merged.add_sample(sample.name, labels, sample.value)
        yield from families.values()


class BuildInfoCollector(Collector):
    """`mloop_build_info{version, git_sha} 1`."""

    def collect(self) -> Iterator[Metric]:
        family = GaugeMetricFamily(
            "mloop_build_info",
            "mloop's version and the git commit it was built from (always 1).",
            labels=["version", "git_sha"],
        )
        family.add_metric([__version__, git_sha()], 1.0)
        yield family


@lru_cache(maxsize=1)
def git_sha() -> str:
    """The commit this mloop was built from: the package's `GIT_SHA` file (written at build
    time), else `git rev-parse HEAD` when running from a checkout, else "unknown". Once per
    process: a scrape never starts a subprocess."""
    package = Path(__file__).resolve().parent.parent
    baked = package / BUILD_SHA_FILE
    if baked.is_file():
        text = baked.read_text(encoding="utf-8").strip().lower()
        return text if _SHA.match(text) else UNKNOWN
    if not any((parent / ".git").exists() for parent in package.parents):
        return UNKNOWN
    try:
        done = subprocess.run(
            ["git", "-C", str(package), "rev-parse", "HEAD"],
            capture_output=True,
            text=True,
            timeout=5,
            check=False,
        )
    except (OSError, subprocess.SubprocessError):
        return UNKNOWN
    text = done.stdout.strip().lower()
    return text if done.returncode == 0 and _SHA.match(text) else UNKNOWN
