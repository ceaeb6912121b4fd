"""Fixtures for the data tests: the tiny valid export of ``tiny_export``, as CSV and Parquet."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.data.tiny_export import valid_tables, write_csv, write_parquet


@pytest.fixture
def csv_dir(tmp_path: Path) -> Path:
    """The valid tiny export written as six CSV files."""
    return write_csv(valid_tables(), tmp_path / "csv")


@pytest.fixture
def parquet_dir(tmp_path: Path) -> Path:
    """The valid tiny export written as six Parquet files with native (non-normalised) types."""
    return write_parquet(valid_tables(), tmp_path / "parquet")
