"""Where batch scoring writes: one part file per chunk plus a manifest, then the final output.

Each chunk's predictions (and rejects) are written to a temporary file and renamed into place,
and only then recorded in `_manifest.json` (also replaced atomically). An interrupted run thus
leaves whole parts and a manifest naming exactly those; a rerun skips them.

OUTPUT ending in `.csv` or `.parquet` is one file, assembled from the parts at the end (one part
in memory at a time) next to `<stem>.rejects.csv`; the parts folder `<OUTPUT>.parts` is then
removed. Any other OUTPUT is a folder of Parquet parts (a dataset pandas, Spark and DuckDB read
as one table) with `_rejects.csv` and the manifest kept in it: named with a leading `_`, which
Parquet dataset readers (pyarrow, Spark, DuckDB's hive reading) skip, so the folder still
reads as one table when rows were rejected.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from mloop.errors import ConflictError

MANIFEST = "_manifest.json"
REJECTS = "_rejects.csv"  # of a folder OUTPUT


class BatchOutput:
    """The parts folder of one run and its manifest of finished chunks."""

    def __init__(self, output: str | Path, identity: dict[str, Any], *, restart: bool) -> None:
        self.output = Path(output)
        suffix = self.output.suffix.lower()
        self.single = suffix in (".csv", ".parquet")
        self.format = "csv" if suffix == ".csv" else "parquet"
        if self.single:
            self.parts = self.output.with_name(self.output.name + ".parts")
            self.rejects_path = self.output.with_name(self.output.stem + ".rejects.csv")
        else:
            self.parts = self.output
            self.rejects_path = self.output / REJECTS
        self.identity = identity
        self.done: dict[str, dict[str, Any]] = {}
        self.finished = False  # a folder OUTPUT whose rejects were merged by `finish`
        self._prepare(restart)

    def _prepare(self, restart: bool) -> None:
        manifest = self.parts / MANIFEST
        if restart:
            if self.single:
                shutil.rmtree(self.parts, ignore_errors=True)
                self.output.unlink(missing_ok=True)
                self.rejects_path.unlink(missing_ok=True)
            elif self.parts.exists():
                shutil.rmtree(self.parts)
        elif self.single and self.output.exists() and not self.parts.exists():
            raise ConflictError(
                f"output {str(self.output)!r} already exists",
                hint="pass --restart to score again and replace it",
            )
        elif (
            not self.single
            and self.parts.exists()
            and any(self.parts.iterdir())
            and not manifest.exists()
        ):
            raise ConflictError(
                f"output folder {str(self.parts)!r} is not empty and holds no manifest",
                hint="choose an empty or new folder, or pass --restart to clear it",
            )
        if manifest.exists():
            saved = json.loads(manifest.read_text())
            if saved.get("identity") != self.identity:
                changed = sorted(
                    k
                    for k in set(saved.get("identity", {})) | set(self.identity)
                    if saved.get("identity", {}).get(k) != self.identity.get(k)
                )
                was = saved.get("identity", {}).get("model_uri", "?")
                if saved.get("finished"):
                    raise ConflictError(
                        f"{str(self.parts)!r} holds a finished run of model {was} with a "
                        f"different {', '.join(changed)}",
                        hint="choose another OUTPUT, or pass --restart to replace it",
                    )
                raise ConflictError(
                    f"{str(self.parts)!r} holds an unfinished run of model {was} with a "
                    f"different {', '.join(changed)}",
                    hint="pass --restart to discard it, or rerun with the same model and input",
                )
            self.done = saved.get("done", {})
            self.finished = bool(saved.get("finished"))
        self.parts.mkdir(parents=True, exist_ok=True)

    @property
    def finished_rows(self) -> int:
        return sum(entry["rows"] for entry in self.done.values())

    def is_done(self, key: str) -> bool:
        return key in self.done

    def write(self, key: str, predictions: pa.Table, rejects: pa.Table | None) -> None:
        """Write one chunk's parts, then record the chunk as done."""
        name = key.replace(":", "-")
        part = self.parts / f"part-{name}.{self.format}"
        _atomic_table(predictions, part, self.format, header=not self.single)
        entry: dict[str, Any] = {
            "rows": predictions.num_rows + (rejects.num_rows if rejects is not None else 0),
            "scored": predictions.num_rows,
            "rejected": rejects.num_rows if rejects is not None else 0,
            "part": part.name,
        }
        if rejects is not None and rejects.num_rows:
            rejects_part = self.parts / f"_rejects-{name}.csv"
            _atomic_table(rejects, rejects_part, "csv", header=True)
            entry["rejects_part"] = rejects_part.name
        self.done[key] = entry
        self._save()

    def _save(self) -> None:
        manifest = self.parts / MANIFEST
        temporary = manifest.with_suffix(".tmp")
        record = {"identity": self.identity, "done": self.done, "finished": self.finished}
        temporary.write_text(json.dumps(record))
        os.replace(temporary, manifest)

    def finish(self, order: list[str]) -> tuple[Path, Path | None]:
        """Assemble the final output (and rejects file) from the parts in chunk `order`.

        A folder OUTPUT keeps its manifest, marked finished once its rejects parts are merged
        into `_rejects.csv`: a rerun then skips every chunk and merges nothing again.
        """
        if self.finished:
            return self.output, self.rejects_path if self.rejects_path.exists() else None
        entries = [self.done[key] for key in order if key in self.done]
        rejects = [self.parts / e["rejects_part"] for e in entries if "rejects_part" in e]
        rejects_path = self.rejects_path if rejects else None
        if rejects:
            _concat_csv(rejects, self.rejects_path, with_headers=True)
            if not self.single:
                for path in rejects:
                    path.unlink()
        if not self.single:
            self.finished = True
            self._save()
            return self.output, rejects_path
        parts = [self.parts / e["part"] for e in entries]
        temporary = self.output.with_name(self.output.name + ".tmp")
        if self.format == "csv":
            _concat_csv(parts, temporary, with_headers=False, header=self._header(parts))
        else:
            _concat_parquet(parts, temporary)
        os.replace(temporary, self.output)
        shutil.rmtree(self.parts, ignore_errors=True)
        return self.output, rejects_path

    def _header(self, parts: list[Path]) -> bytes:
        columns = self.identity.get("columns") or []
        del parts
        return (",".join(f'"{c}"' for c in columns) + "\n").encode()


def _atomic_table(table: pa.Table, path: Path, fmt: str, *, header: bool) -> None:
    temporary = path.with_name(path.name + ".tmp")
    if fmt == "csv":
        pacsv.write_csv(table, temporary, pacsv.WriteOptions(include_header=header))
    else:
        pq.write_table(table, temporary)
    os.replace(temporary, path)


def _concat_csv(
    parts: list[Path], target: Path, *, with_headers: bool, header: bytes | None = None
) -> None:
    """Byte-copy CSV parts into one file; headers of later parts are dropped."""
    target.parent.mkdir(parents=True, exist_ok=True)
    with target.open("wb") as out:
        if header is not None:
            out.write(header)
        for index, part in enumerate(parts):
            with part.open("rb") as handle:
                if with_headers and index > 0:
                    handle.readline()
                shutil.copyfileobj(handle, out, 1 << 20)


def _concat_parquet(parts: list[Path], target: Path) -> None:
    writer: pq.ParquetWriter | None = None
    try:
        for part in parts:
            table = pq.read_table(part)
            if writer is None:
                writer = pq.ParquetWriter(target, table.schema)
            writer.write_table(table.cast(writer.schema))
    finally:
        if writer is not None:
            writer.close()
    if writer is None:
        pq.write_table(pa.table({}), target)
