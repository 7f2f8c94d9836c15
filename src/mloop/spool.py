"""A disk spool for rows a background writer could not write because its database is away.

Without it, a writer retrying through an outage holds the rows of answered requests in memory,
and a crash before the database returns loses them. With it, a failed batch is appended to a
file (one JSON array per row, fsynced) and later batches follow it there for as long as the
outage lasts, so the order is kept; the file is written to the database, oldest rows first,
once the database answers again. Each process spools to its own file and holds an exclusive
`flock` on it; a process starting up claims the files whose owners died (their lock is free)
and writes them before its own.

Each file starts with a fixed-width header: the byte offset up to which its rows are in the
database, rewritten (and fsynced) after each chunk commits. A crash between a chunk's commit
and that rewrite writes the chunk again on replay: the one window where a row can be stored
twice, not lost. A spool that cannot be written (its disk is full) says so (`append` is
False) and the writer falls back to retrying in memory.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import logging
import os
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import orjson

from mloop.background import Outage, keep_trying

log = logging.getLogger("mloop.spool")

_HEADER = 21  # b"%020d\n": the offset of the first row not yet in the database
_OPTIONS = orjson.OPT_SERIALIZE_NUMPY | orjson.OPT_APPEND_NEWLINE


def spool_directory(home: Path, database_url: str, writer: str) -> Path:
    """`$MLOOP_HOME/spool/<database>/<writer>`: one folder per database (a digest of its URL),
    so rows spooled for one database are never written to another by a server sharing the
    home."""
    database = hashlib.sha256(database_url.encode()).hexdigest()[:16]
    return home / "spool" / database / writer


class _File:
    """One spool file, opened and locked by this process."""

    def __init__(self, path: Path, fd: int) -> None:
        self.path, self.fd = path, fd

    def committed(self) -> int:
        header = os.pread(self.fd, _HEADER, 0)
        return int(header) if len(header) == _HEADER else _HEADER

    def size(self) -> int:
        return os.fstat(self.fd).st_size

    def pending(self) -> bool:
        return self.size() > self.committed()

    def mark(self, offset: int) -> None:
        os.pwrite(self.fd, b"%020d\n" % offset, 0)
        os.fsync(self.fd)

    def close(self, unlink: bool) -> None:
        if unlink:
            self.path.unlink(missing_ok=True)
        os.close(self.fd)  # releases the lock


class Spool:
    """This process's spool file in `directory`, and the dead processes' files it claimed."""

    def __init__(self, directory: Path, *, chunk_rows: int = 5_000) -> None:
        self.directory = directory
        self.chunk_rows = chunk_rows
        self._own: _File | None = None
        self._claimed: list[_File] = []
        self._pending = False  # this process holds the files: it knows without reading them
        self.claim_orphans()

    def claim_orphans(self) -> int:
        """Lock every file no live process holds (its writer died); how many were claimed."""
        try:
            names = sorted(p for p in self.directory.glob("*.jsonl"))
        except OSError:
            return 0
        held = {f.path for f in self._claimed} | ({self._own.path} if self._own else set())
        found = 0
        for path in names:
            if path in held:
                continue
            try:
                fd = os.open(path, os.O_RDWR)
            except OSError:  # another process took and removed it
                continue
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:  # its owner is alive
                os.close(fd)
                continue
            if not path.exists():  # drained and removed by the process we raced
                os.close(fd)
                continue
            self._claimed.append(_File(path, fd))
            self._pending = True
            found += 1
        if found:
            log.warning("claimed %d spool file(s) of stopped writers in %s", found, self.directory)
        return found

    def pending(self) -> bool:
        """Rows on disk that are not in the database yet."""
        return self._pending

    def append(self, rows: Sequence[Sequence[Any]]) -> bool:
        """Append rows durably (fsync); False when the disk refuses them."""
        data = b"".join(orjson.dumps(list(row), option=_OPTIONS, default=str) for row in rows)
        start = None
        try:
            own = self._own or self._open_own()
            start = os.lseek(own.fd, 0, os.SEEK_END)
            written = 0
            while written < len(data):
                written += os.write(own.fd, data[written:])
            os.fsync(own.fd)
            self._pending = True
        except OSError as exc:
            log.error("spooling %d rows to %s failed: %s", len(rows), self.directory, exc)
            if start is not None:  # no torn line for the next append to run into
                with contextlib.suppress(OSError):
                    os.ftruncate(self._own.fd, start)
            return False
        return True

    def drain(self, write: Callable[[list[list[Any]]], None]) -> int:
        """Hand every spooled row to `write` in chunks, oldest first, marking each chunk done
        once `write` returns; an exception from `write` stops the drain (the rest stays
        spooled). The number of rows written."""
        done = 0
        for spooled in [*self._claimed, *([self._own] if self._own else [])]:
            for rows, end in _chunks(spooled, self.chunk_rows):
                write(rows)
                spooled.mark(end)
                done += len(rows)
            if spooled is self._own:
                os.ftruncate(spooled.fd, _HEADER)
                spooled.mark(_HEADER)
            else:
                self._claimed.remove(spooled)
                spooled.close(unlink=True)
        self._pending = False
        return done

    def close(self) -> None:
        """Release the files (rows not yet written stay for the next process to claim)."""
        for spooled in [*self._claimed, *([self._own] if self._own else [])]:
            spooled.close(unlink=not spooled.pending())
        self._claimed, self._own, self._pending = [], None, False

    def _open_own(self) -> _File:
        """Created under another name, locked, then renamed: no other process can claim it
        in between."""
        self.directory.mkdir(parents=True, exist_ok=True)
        path = self.directory / f"{time.time_ns()}-{os.getpid()}.jsonl"
        draft = path.with_suffix(".new")
        fd = os.open(draft, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o600)
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        own = _File(path, fd)
        own.mark(_HEADER)
        os.rename(draft, path)
        self._own = own
        return own


def _chunks(spooled: _File, size: int) -> Iterator[tuple[list[list[Any]], int]]:
    """(rows, the offset after them) from the first row not yet written; a torn last line
    (a crash mid-append, never acknowledged as spooled) is skipped."""
    offset = spooled.committed()
    with os.fdopen(os.dup(spooled.fd), "rb") as reader:
        reader.seek(offset)
        rows: list[list[Any]] = []
        for line in reader:
            if not line.endswith(b"\n"):
                break
            offset += len(line)
            rows.append(orjson.loads(line))
            if len(rows) >= size:
                yield rows, offset
                rows = []
        if rows:
            yield rows, offset


class SpooledWrites:
    """How a background writer writes a batch of rows through an outage.

    While the database answers, rows are written at once. The first transient failure sends
    the batch to the spool, and every later batch follows it there (order kept) until a
    drain succeeds: tried at most every `pause` seconds (0.2 doubling to 2), on each batch and
    on the writer's tick, so an idle server empties its spool too. `outage` says what fails
    meanwhile (`/ready`). A disk that refuses the spool falls back to `keep_trying` in memory;
    a permanent error (a row no database accepts) drops the rows and counts them (`on_lost`).
    """

    def __init__(
        self,
        spool: Spool | None,
        write: Callable[[list[Any]], None],
        *,
        what: str,
        outage: Outage,
        give_up_after: float,
        transient: Callable[[BaseException], bool],
        on_lost: Callable[[int], None],
        revive: Callable[[list[Any]], Any] = tuple,
    ) -> None:
        self.spool, self._write, self.what, self.outage = spool, write, what, outage
        self.give_up_after, self.transient, self.on_lost = give_up_after, transient, on_lost
        self.revive = revive
        self._pause, self._next_try = 0.2, 0.0

    def __call__(self, rows: list[Any]) -> bool:
        """Write `rows`, or spool them; False when they were lost (already counted)."""
        spool = self.spool
        if spool is not None and spool.pending() and not self.retry_spool():
            return spool.append(rows) or self._in_memory(rows)
        try:
            self._write(rows)
        except Exception as exc:
            if not self.outage.failed(exc, self.what, self.transient(exc)):
                self.on_lost(len(rows))
                return False
            if spool is not None and spool.append(rows):
                self._next_try = time.monotonic() + self._pause
                return True
            return self._in_memory(rows)
        self.outage.recovered(self.what)
        return True

    def retry_spool(self, now: bool = False) -> bool:
        """One attempt, when due (or `now`), to write what is spooled; True once nothing is."""
        spool = self.spool
        if spool is None or not spool.pending():
            return True
        started = time.monotonic()
        if started < self._next_try and not now:
            return False
        try:
            written = spool.drain(self._write_spooled)
        except Exception as exc:
            self.outage.failed(exc, f"{self.what} (spooled)", True)
            self._next_try, self._pause = started + self._pause, min(self._pause * 2, 2.0)
            return False
        self._pause = 0.2
        log.warning("%s: %d spooled rows written", self.what, written)
        self.outage.recovered(self.what)
        return True

    @property
    def tick(self) -> Callable[[], bool] | None:
        """What the writer's queue calls every second: the spool's drain, when there is one."""
        return self.retry_spool if self.spool is not None else None

    def close(self) -> None:
        """One last drain; what is still spooled stays on disk for the next writer."""
        if self.spool is not None:
            self.retry_spool(now=True)
            self.spool.close()

    def _write_spooled(self, rows: list[list[Any]]) -> None:
        revived = [self.revive(row) for row in rows]
        try:
            self._write(revived)
        except Exception as exc:
            if self.transient(exc):
                raise
            self.outage.failed(exc, f"{self.what} (spooled)", False)
            self.on_lost(len(rows))  # no database will take them: skipped, counted

    def _in_memory(self, rows: list[Any]) -> bool:
        if keep_trying(
            lambda: self._write(rows),
            what=self.what,
            outage=self.outage,
            give_up_after=self.give_up_after,
            transient=self.transient,
        ):
            return True
        self.on_lost(len(rows))
        return False
