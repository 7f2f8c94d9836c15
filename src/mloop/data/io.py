"""Read and write tables as CSV or Parquet, chosen by file extension, with clear errors."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pandas as pd

from mloop.errors import NotFoundError, ValidationError

CSV_EXTENSIONS = (".csv",)
PARQUET_EXTENSIONS = (".parquet", ".pq")
SUPPORTED_EXTENSIONS = CSV_EXTENSIONS + PARQUET_EXTENSIONS


def table_format(path: str | Path) -> str:
    """`csv` or `parquet` from the file extension; anything else is a ValidationError."""
    suffix = Path(path).suffix.lower()
    if suffix in CSV_EXTENSIONS:
        return "csv"
    if suffix in PARQUET_EXTENSIONS:
        return "parquet"
    raise ValidationError(
        f"unsupported table extension {suffix or '(none)'!r} of {str(path)!r}",
        hint=f"use one of {', '.join(SUPPORTED_EXTENSIONS)}",
    )


def read_table(path: str | Path) -> pd.DataFrame:
    """Load a CSV or Parquet file into a DataFrame."""
    path = Path(path)
    fmt = table_format(path)
    if not path.exists():
        raise NotFoundError(f"data file {str(path)!r} does not exist")
    if not path.is_file():
        raise ValidationError(f"data path {str(path)!r} is not a file")
    try:
        if fmt == "csv":
            return pd.read_csv(path)
        return pd.read_parquet(path)
    except pd.errors.EmptyDataError as exc:
        raise ValidationError(f"data file {str(path)!r} is empty") from exc
    except (ValueError, OSError, UnicodeDecodeError) as exc:
        # pandas ParserError and pyarrow's ArrowInvalid are ValueErrors.
        first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ValidationError(
            f"cannot read {fmt} file {str(path)!r}: {first_line}",
            hint=f"check that the file is a valid {fmt} file",
        ) from exc


def write_table(df: pd.DataFrame, path: str | Path) -> Path:
    """Write `df` as CSV or Parquet (by extension), creating parent folders; returns the path."""
    path = Path(path)
    fmt = table_format(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if fmt == "csv":
        df.to_csv(path, index=False)
    else:
        df.to_parquet(path, index=False)
    return path


def file_sha256(path: str | Path, chunk_size: int = 1 << 20) -> str:
    """Hex SHA-256 of a file, read in chunks so large files never sit in memory."""
    path = Path(path)
    if not path.is_file():
        raise NotFoundError(f"file {str(path)!r} does not exist")
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        while chunk := fh.read(chunk_size):
            digest.update(chunk)
    return digest.hexdigest()
