"""Example data (synthetic churn) and table readers/writers for CSV and Parquet."""

from mloop.data.churn import generate_churn
from mloop.data.io import SUPPORTED_EXTENSIONS, file_sha256, read_table, write_table

__all__ = ["SUPPORTED_EXTENSIONS", "file_sha256", "generate_churn", "read_table", "write_table"]
