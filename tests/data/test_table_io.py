"""CSV / Parquet reading and writing by extension, and streamed file hashing."""

from __future__ import annotations

import hashlib

import pandas as pd
import pytest

from mloop.data import file_sha256, generate_churn, read_table, write_table
from mloop.errors import NotFoundError, ValidationError


@pytest.mark.parametrize("name", ["t.csv", "t.parquet", "t.pq", "nested/dir/t.CSV"])
def test_round_trip(tmp_path, name):
    df = generate_churn(200, seed=5)
    path = write_table(df, tmp_path / name)
    assert path.exists()
    back = read_table(path)
    pd.testing.assert_frame_equal(back, df, check_dtype=False)
    assert back["age"].isna().sum() == df["age"].isna().sum()
    assert back["internet_service"].isna().sum() == df["internet_service"].isna().sum()


@pytest.mark.parametrize("name", ["t.xlsx", "t", "t.json"])
def test_unknown_extension_names_it_and_the_supported_ones(tmp_path, name):
    path = tmp_path / name
    path.write_text("a,b\n1,2\n")
    with pytest.raises(ValidationError) as info:
        read_table(path)
    assert repr(path.suffix or "(none)") in info.value.message
    assert ".csv" in info.value.hint and ".parquet" in info.value.hint
    with pytest.raises(ValidationError):
        write_table(pd.DataFrame({"a": [1]}), path)


def test_missing_file_is_not_found(tmp_path):
    with pytest.raises(NotFoundError, match="nope.csv"):
        read_table(tmp_path / "nope.csv")


def test_directory_empty_and_corrupt_files(tmp_path):
    folder = tmp_path / "dir.csv"
    folder.mkdir()
    with pytest.raises(ValidationError, match="is not a file"):
        read_table(folder)
    empty = tmp_path / "empty.csv"
    empty.write_text("")
    with pytest.raises(ValidationError, match="is empty"):
        read_table(empty)
    corrupt = tmp_path / "corrupt.parquet"
    corrupt.write_bytes(b"this is not parquet at all")
    with pytest.raises(ValidationError, match="cannot read parquet file"):
        read_table(corrupt)
    ragged = tmp_path / "ragged.csv"
    ragged.write_text('a,b\n1,2\n3,4,5,6\n"unterminated\n')
    with pytest.raises(ValidationError, match="cannot read csv file"):
        read_table(ragged)


def test_file_sha256_streams_and_matches_hashlib(tmp_path):
    path = tmp_path / "blob.bin"
    payload = b"mloop" * 700_000  # larger than one chunk
    path.write_bytes(payload)
    assert file_sha256(path) == hashlib.sha256(payload).hexdigest()
    assert file_sha256(path, chunk_size=7) == hashlib.sha256(payload).hexdigest()
    with pytest.raises(NotFoundError):
        file_sha256(tmp_path / "missing.bin")
