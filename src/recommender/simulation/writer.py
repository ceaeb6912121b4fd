"""Write a simulated organisation to a folder, atomically."""

from __future__ import annotations

import os
import shutil
import uuid
from pathlib import Path
from typing import TYPE_CHECKING, Final, Literal

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from recommender.constants import TABLES

if TYPE_CHECKING:
    from recommender.simulation.simulate import SimulatedOrganisation

TRUTH_DIR: Final = "truth"
TRUTH_FILE: Final = "ground_truth.parquet"
DATE_COLUMNS: Final = frozenset(
    {"wave_date", "hire_date", "leave_date", "period_start", "period_end"}
)
TIMESTAMP_COLUMNS: Final = frozenset({"delivered_at"})
_FORMATS: Final = ("parquet", "csv")


def write_simulation(
    result: SimulatedOrganisation,
    out_dir: Path,
    fmt: Literal["parquet", "csv"] = "parquet",
) -> list[Path]:
    """Write ``<out>/<table>.<fmt>`` for the six tables and ``<out>/truth/ground_truth.parquet``.

    Atomic: everything is written to a temporary folder next to ``out_dir`` which then replaces
    it, so a crash never leaves a half-written folder. An existing ``out_dir`` is replaced; files
    in it that are not simulation outputs (e.g. a README) are carried over. Returns the paths
    written, tables first. Byte-identical for identical results.
    """
    if fmt not in _FORMATS:
        raise ValueError(f"fmt: must be 'parquet' or 'csv', got {fmt!r}")
    out = Path(out_dir).absolute()
    if out.exists() and not out.is_dir():
        raise FileExistsError(f"out_dir: {out} exists and is not a folder")
    out.parent.mkdir(parents=True, exist_ok=True)
    relative = [Path(f"{name}.{fmt}") for name in TABLES] + [Path(TRUTH_DIR) / TRUTH_FILE]
    tmp = out.parent / f".{out.name}.{uuid.uuid4().hex}.tmp"
    tmp.mkdir()  # honours the umask, unlike tempfile.mkdtemp
    try:
        for name in TABLES:
            _write_frame(result.tables[name], tmp / f"{name}.{fmt}", fmt)
        (tmp / TRUTH_DIR).mkdir()
        _write_frame(result.ground_truth, tmp / TRUTH_DIR / TRUTH_FILE, "parquet")
        if out.exists():
            _carry_over(out, tmp)
        _replace_folder(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return [out / path for path in relative]


def _carry_over(old: Path, new: Path) -> None:
    """Copy entries of ``old`` that are not simulation outputs into ``new``."""
    ours = {f"{name}.{ext}" for name in TABLES for ext in _FORMATS} | {TRUTH_DIR}
    for entry in sorted(old.iterdir()):
        if entry.name in ours:
            continue
        if entry.is_dir():
            shutil.copytree(entry, new / entry.name, symlinks=True)
        else:
            shutil.copy2(entry, new / entry.name, follow_symlinks=False)


def _replace_folder(tmp: Path, out: Path) -> None:
    """Move ``tmp`` to ``out``; an existing ``out`` is swapped out first and restored on error."""
    if not out.exists():
        os.rename(tmp, out)
        return
    backup = out.parent / f".{out.name}.{uuid.uuid4().hex}.old"
    os.rename(out, backup)
    try:
        os.rename(tmp, out)
    except BaseException:
        os.rename(backup, out)
        raise
    shutil.rmtree(backup, ignore_errors=True)


def _write_frame(frame: pd.DataFrame, path: Path, fmt: str) -> None:
    if fmt == "parquet":
        pq.write_table(_to_arrow(frame), path, compression="zstd")
    else:
        _to_csv_frame(frame).to_csv(path, index=False, lineterminator="\n")


def _to_arrow(frame: pd.DataFrame) -> pa.Table:
    """Arrow table with contract types: dates as date32, timestamps in UTC, plain strings."""
    arrays: list[pa.Array] = []
    for name in frame.columns:
        column = frame[name]
        if name in DATE_COLUMNS:
            array = pa.array(column.to_numpy(dtype="datetime64[D]"), type=pa.date32())
        elif name in TIMESTAMP_COLUMNS:
            values = column.to_numpy(dtype="datetime64[ms]")
            array = pa.array(values, type=pa.timestamp("ms")).cast(pa.timestamp("ms", tz="UTC"))
        elif pd.api.types.is_string_dtype(column.dtype):
            array = pa.array(column.array).cast(pa.string())  # Arrow-backed: no copy to objects
        else:
            array = pa.array(column, from_pandas=True)
        arrays.append(array)
    return pa.Table.from_arrays(arrays, names=[str(c) for c in frame.columns])


def _to_csv_frame(frame: pd.DataFrame) -> pd.DataFrame:
    """Copy with dates as ``YYYY-MM-DD`` and timestamps as ``YYYY-MM-DDTHH:MM:SSZ``."""
    out = frame.copy()
    for name in frame.columns:
        if name in DATE_COLUMNS:
            text = np.datetime_as_string(frame[name].to_numpy(dtype="datetime64[D]"), unit="D")
            out[name] = np.where(text == "NaT", "", text)
        elif name in TIMESTAMP_COLUMNS:
            values = frame[name].to_numpy(dtype="datetime64[s]")
            text = np.char.add(np.datetime_as_string(values, unit="s"), "Z")
            out[name] = np.where(np.isnat(values), "", text)
    return out
