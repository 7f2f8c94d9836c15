"""Read W&B's offline run files: the `.wandb` file is a LevelDB-style log of protobuf records.

Format (wandb's datastore): a 7-byte header (`:W&B`, magic, version), then 32 KiB blocks of
chunks, each `crc32 (4) | length (2, little-endian) | type (1)` then data; FULL=1 is a whole
record, FIRST=2 / MIDDLE=3 / LAST=4 are its parts; a block's tail shorter than a chunk header
is padding.
"""

from __future__ import annotations

import json
import struct
from pathlib import Path

BLOCK = 32 * 1024
HEADER = 7
FULL, FIRST, MIDDLE, LAST = 1, 2, 3, 4


def records(path: Path) -> list:
    """The run file's records as `wandb_internal_pb2.Record` messages."""
    from wandb.proto import wandb_internal_pb2

    data = path.read_bytes()
    assert data[:4] == b":W&B", f"{path} is not a W&B run file"
    pos, parts, out = HEADER, b"", []
    while pos + HEADER <= len(data):
        room = BLOCK - pos % BLOCK
        if room < HEADER:
            pos += room
            continue
        length, kind = struct.unpack_from("<HB", data, pos + 4)
        chunk = data[pos + HEADER : pos + HEADER + length]
        pos += HEADER + length
        if kind in (FIRST, MIDDLE):
            parts += chunk
            continue
        if kind == 0 and length == 0:
            continue  # preallocated zeros
        record = wandb_internal_pb2.Record()
        record.ParseFromString(parts + chunk if kind == LAST else chunk)
        parts = b""
        out.append(record)
    return out


def offline_run(wandb_dir: Path) -> tuple[dict, dict, list[str]]:
    """(config, logged metrics, logged keys) of the one offline run under `wandb_dir`."""
    runs = sorted((wandb_dir / "wandb").glob("offline-run-*/run-*.wandb"))
    assert len(runs) == 1, f"expected one offline run under {wandb_dir}, found {runs}"
    config: dict = {}
    metrics: dict = {}
    keys: list[str] = []
    for record in records(runs[0]):
        kind = record.WhichOneof("record_type")
        if kind == "run":
            config.update({i.key: json.loads(i.value_json) for i in record.run.config.update})
        elif kind == "config":
            config.update({i.key: json.loads(i.value_json) for i in record.config.update})
        elif kind in ("history", "summary"):
            items = record.history.item if kind == "history" else record.summary.update
            for item in items:
                key = item.key or "/".join(item.nested_key)
                keys.append(key)
                value = json.loads(item.value_json)
                if isinstance(value, int | float):
                    metrics[key] = value
    return config, metrics, keys
