"""Load an organisation's export (six tables, CSV or Parquet) and validate it completely.

``load_dataset`` is the only way into the data for validation *and* training: it reads every
table, checks every rule of ``data/README.md`` (per-value rules declared in
``recommender.schemas``; keys, cross-table and date rules here, all vectorised), collects every
violation across all tables and either returns a fully normalised ``Dataset`` or raises
``DataValidationError`` listing all of them. Nothing half-validated is ever returned.

Row numbers in messages are 1-based data rows; for CSV the file line is shown too (header is
line 1; assumes no line breaks inside quoted values).
"""

from __future__ import annotations

import csv
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

import numpy as np
import pandas as pd
import pandera.pandas as pa
import pyarrow
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from recommender.constants import GLOBAL_ORG, TABLES
from recommender.schemas import (
    SCHEMAS,
    WEIGHT_SUM_TOLERANCE,
    ColumnKind,
    column_kind,
    key_columns,
    looks_like_personal_data,
)

MAX_LISTED_ROWS: Final = 10
"""Rows listed individually per (file, column, rule); beyond that one summary violation."""

FORMATS: Final = ("csv", "parquet")

_TYPE_MESSAGES: Final[dict[ColumnKind, str]] = {
    "string": "must be text",
    "int": "must be a whole number",
    "float": "must be a number",
    "date": "must be a date YYYY-MM-DD",
    "timestamp": "must be an ISO 8601 timestamp (UTC)",
    "bool": "must be true or false",
}
_TRUE: Final = frozenset({"true", "t", "1", "yes", "y"})
_FALSE: Final = frozenset({"false", "f", "0", "no", "n"})
_MIN_DATE: Final = pd.Timestamp("1900-01-01")
_MAX_DATE: Final = pd.Timestamp("2200-12-31")
_ONE_DAY: Final = np.timedelta64(1, "D")


@dataclass(frozen=True)
class Violation:
    """One broken rule.

    ``row`` is the 1-based data row (``None`` for file- or table-level problems). A violation
    with ``count > 1`` summarises that many rows failing the same rule in the same column;
    ``row`` is then the first of them and ``detail`` lists the first few.
    """

    file: str
    column: str | None
    row: int | None
    rule: str
    detail: str
    count: int = 1

    def line(self) -> str:
        """The violation as one readable line: file, column, row (and CSV line), message."""
        where: list[str] = []
        if self.column is not None:
            if ", " in self.column:
                where.append(f"columns ({self.column})")
            else:
                where.append(f"column '{self.column}'")
        if self.count > 1:
            where.append(f"{self.count:,} rows")
        elif self.row is not None:
            where.append(_row_label(self.file, self.row - 1))
        location = f"{self.file}: {', '.join(where)}" if where else self.file
        return f"{location}: {self.detail} [{self.rule}]"


class DataValidationError(Exception):
    """The folder does not satisfy the data contract; ``violations`` lists every problem."""

    def __init__(self, folder: Path, violations: list[Violation]) -> None:
        self.folder = folder
        self.violations = violations
        super().__init__(self.report())

    def report(self) -> str:
        """A header line with the totals, then one line per violation."""
        rows = sum(v.count for v in self.violations if v.row is not None)
        files = len({v.file for v in self.violations})
        header = (
            f"{self.folder}: {len(self.violations)} violation(s) in {files} file(s)"
            + (f", {rows:,} row(s) affected" if rows else "")
            + "; nothing was loaded"
        )
        return "\n".join([header, *(f"  {v.line()}" for v in self.violations)])


@dataclass(frozen=True, eq=False)
class Dataset:
    """The six validated tables with normalised dtypes (see ``recommender.schemas``).

    ``notes`` lists harmless findings (e.g. extra columns that were dropped).
    """

    competencies: pd.DataFrame
    managers: pd.DataFrame
    feedback_360: pd.DataFrame
    engagement: pd.DataFrame
    nudges: pd.DataFrame
    deliveries: pd.DataFrame
    folder: Path
    notes: tuple[Violation, ...] = field(default=())

    def tables(self) -> dict[str, pd.DataFrame]:
        """The tables keyed by name, in ``constants.TABLES`` order."""
        return {name: getattr(self, name) for name in TABLES}


# --------------------------------------------------------------------------------------------
# collecting violations


def _row_label(file: str, position: int) -> str:
    """``row 17 (line 18)`` for CSV, ``row 17`` for Parquet; position is 0-based."""
    if file.endswith(".csv"):
        return f"row {position + 1} (line {position + 2})"
    return f"row {position + 1}"


def _show(value: Any) -> str:
    """A short, readable rendering of a cell value for a message."""
    if value is None or (not isinstance(value, str) and bool(pd.isna(value))):
        return "empty"
    if isinstance(value, pd.Timestamp):
        text = value.isoformat() if value != value.normalize() else value.date().isoformat()
        return text
    if isinstance(value, str):
        return repr(value if len(value) <= 40 else value[:37] + "...")
    if isinstance(value, (bool, np.bool_)):
        return str(bool(value)).lower()
    if isinstance(value, (float, np.floating)):
        return repr(float(value))
    if isinstance(value, (int, np.integer)):
        return str(int(value))
    return repr(value)[:40]


Describe = Callable[[np.ndarray], list[str]]
"""Given (at most MAX_LISTED_ROWS) 0-based row positions, the per-row suffix of the message."""


def _got(values: pd.Series | np.ndarray) -> Describe:
    def describe(rows: np.ndarray) -> list[str]:
        picked = values.iloc[rows] if isinstance(values, pd.Series) else values[rows]
        return [f"got {_show(v)}" for v in picked]

    return describe


def _got_at(values: pd.Series) -> Describe:
    """Like ``_got`` for values indexed by row position (e.g. pandera failure cases)."""
    first = values.groupby(level=0).first()

    def describe(rows: np.ndarray) -> list[str]:
        return [f"got {_show(first.loc[int(p)])}" for p in rows]

    return describe


def _nothing(rows: np.ndarray) -> list[str]:
    return ["" for _ in rows]


class _Collector:
    def __init__(self) -> None:
        self.violations: list[Violation] = []
        self.notes: list[Violation] = []

    def add(self, file: str, column: str | None, rule: str, detail: str) -> None:
        self.violations.append(Violation(file, column, None, rule, detail))

    def add_rows(
        self,
        file: str,
        column: str | None,
        rule: str,
        message: str,
        rows: np.ndarray,
        describe: Describe,
    ) -> None:
        """Record rule failures on ``rows`` (0-based positions, any order)."""
        if len(rows) == 0:
            return
        rows = np.sort(np.asarray(rows, dtype=np.int64))
        shown = rows[:MAX_LISTED_ROWS]
        suffixes = describe(shown)
        if len(rows) <= MAX_LISTED_ROWS:
            for position, suffix in zip(shown, suffixes, strict=True):
                detail = f"{message}, {suffix}" if suffix else message
                self.violations.append(Violation(file, column, int(position) + 1, rule, detail))
            return
        examples = "; ".join(
            f"{_row_label(file, int(p))} {s}".rstrip() for p, s in zip(shown, suffixes, strict=True)
        )
        detail = f"{message}: {examples}; and {len(rows) - len(shown):,} more"
        self.violations.append(
            Violation(file, column, int(rows[0]) + 1, rule, detail, count=len(rows))
        )

    def add_mask(
        self,
        file: str,
        column: str | None,
        rule: str,
        message: str,
        mask: np.ndarray | pd.Series,
        describe: Describe,
    ) -> None:
        self.add_rows(file, column, rule, message, np.flatnonzero(np.asarray(mask)), describe)


# --------------------------------------------------------------------------------------------
# reading files


def _locate(folder: Path, table: str, out: _Collector) -> Path | None:
    found = [folder / f"{table}.{fmt}" for fmt in FORMATS if (folder / f"{table}.{fmt}").exists()]
    if not found:
        out.add(
            f"{table}.*",
            None,
            "missing_file",
            f"table '{table}' not found: expected {table}.csv or {table}.parquet in {folder}",
        )
        return None
    if len(found) > 1:
        out.add(
            f"{table}.*",
            None,
            "ambiguous_file",
            f"both {found[0].name} and {found[1].name} exist; keep exactly one",
        )
        return None
    if not found[0].is_file():
        out.add(found[0].name, None, "unreadable_file", "is not a regular file")
        return None
    return found[0]


def _ragged_line(path: Path, n_columns: int) -> int | None:
    """First file line whose field count differs from the header's (slow; error path only)."""
    try:
        with path.open(newline="", encoding="utf-8-sig", errors="replace") as handle:
            reader = csv.reader(handle)
            for fields in reader:
                if len(fields) != n_columns and fields:
                    return reader.line_num
    except (OSError, csv.Error):
        return None
    return None


def _read_csv(path: Path, out: _Collector) -> pd.DataFrame | None:
    try:
        with path.open(newline="", encoding="utf-8-sig") as handle:
            header = next(csv.reader(handle), None)
    except (OSError, UnicodeDecodeError, csv.Error) as error:
        out.add(path.name, None, "unreadable_file", f"cannot read the CSV header: {error}")
        return None
    if not header:
        out.add(path.name, None, "empty_table", "file is empty (no header, no rows)")
        return None
    types = {name: pyarrow.string() for name in header}
    convert = pacsv.ConvertOptions(
        column_types=types,
        null_values=[""],
        strings_can_be_null=True,
        quoted_strings_can_be_null=True,
    )
    table = None
    last_error: Exception | None = None
    for newlines_in_values in (False, True):
        try:
            table = pacsv.read_csv(
                path,
                parse_options=pacsv.ParseOptions(newlines_in_values=newlines_in_values),
                convert_options=convert,
            )
            break
        except (pyarrow.ArrowException, OSError) as error:
            last_error = error
    if table is None:
        detail = f"cannot parse CSV: {last_error}"
        if "Expected" in str(last_error):
            line = _ragged_line(path, len(header))
            if line is not None:
                detail += f" (first bad line: {line})"
        out.add(path.name, None, "unreadable_file", detail)
        return None
    return table.to_pandas()


def _read_parquet(path: Path, out: _Collector) -> pd.DataFrame | None:
    try:
        table = pq.read_table(path)
    except (pyarrow.ArrowException, OSError, ValueError) as error:
        out.add(path.name, None, "unreadable_file", f"cannot read Parquet: {error}")
        return None
    try:
        # dates as datetime64, not millions of datetime.date objects
        frame = table.to_pandas(date_as_object=False)
    except (pyarrow.ArrowException, ValueError, OverflowError):  # e.g. dates beyond year 2262
        frame = table.to_pandas()
    # Parquet written from pandas may carry a non-default index; rows are positional here.
    return frame.reset_index(drop=True)


# --------------------------------------------------------------------------------------------
# parsing columns: raw values (strings from CSV, anything from Parquet) -> normalised dtypes


def _blank_to_na(text: pd.Series) -> pd.Series:
    return text.where(text.str.strip() != "")


def _as_text(series: pd.Series) -> pd.Series:
    """Any series as pandas ``str`` dtype with missing and blank values as NA."""
    if series.dtype != "str":
        missing = series.isna().to_numpy()
        series = series.astype("str")
        series[missing] = np.nan
    return _blank_to_na(series)


def _is_textual(series: pd.Series) -> bool:
    dtype = series.dtype
    return (
        isinstance(dtype, (pd.StringDtype, pd.CategoricalDtype))
        or pd.api.types.is_object_dtype(dtype)
        or pd.api.types.is_string_dtype(dtype)
    )


def _to_float(series: pd.Series) -> pd.Series:
    if pd.api.types.is_bool_dtype(series.dtype):
        return pd.Series(np.nan, index=series.index)  # every non-null bool is a type error
    if pd.api.types.is_numeric_dtype(series.dtype):
        values = series.to_numpy(dtype="float64", na_value=np.nan)
        return pd.Series(values, index=series.index)
    if _is_textual(series):
        return pd.to_numeric(series, errors="coerce").astype("float64")
    return pd.Series(np.nan, index=series.index)  # e.g. a timestamp column: all bad


def _to_datetime(series: pd.Series, kind: ColumnKind) -> pd.Series:
    """Dates/timestamps as tz-naive UTC ``datetime64[ns]``; unparseable or absurd -> NaT."""
    if isinstance(series.dtype, pd.DatetimeTZDtype):
        parsed = series.dt.tz_convert("UTC").dt.tz_localize(None)
    elif pd.api.types.is_datetime64_dtype(series.dtype):
        parsed = series
    elif _is_textual(series):
        # Few distinct values in big tables (survey waves): parse each distinct value once.
        codes, uniques = pd.factorize(series)
        if len(uniques) == 0:
            return pd.Series(pd.NaT, index=series.index, dtype="datetime64[ns]")
        uniques_text = pd.Index(uniques).astype("str")
        parsed_uniques = pd.to_datetime(uniques_text, format="ISO8601", errors="coerce", utc=True)
        if kind == "date":
            strict = pd.to_datetime(uniques_text, format="%Y-%m-%d", errors="coerce")
            timestamp_like = uniques_text.str.contains(r"\d[T ]\d", regex=True)
            parsed_uniques = parsed_uniques.where(
                np.asarray(timestamp_like, dtype=bool) | strict.notna()
            )
        naive = pd.DatetimeIndex(parsed_uniques).tz_convert(None)
        naive = naive.where((naive >= _MIN_DATE) & (naive <= _MAX_DATE))
        taken = naive.as_unit("ns").take(codes, allow_fill=True, fill_value=pd.NaT)
        parsed = pd.Series(taken, index=series.index)
    else:
        return pd.Series(pd.NaT, index=series.index, dtype="datetime64[ns]")
    parsed = parsed.where((parsed >= _MIN_DATE) & (parsed <= _MAX_DATE))
    if kind == "date":
        parsed = parsed.dt.normalize()
    return parsed.astype("datetime64[ns]")


def _to_bool(series: pd.Series) -> pd.Series:
    if pd.api.types.is_bool_dtype(series.dtype):
        return series.astype("boolean")
    if pd.api.types.is_numeric_dtype(series.dtype):
        numbers = _to_float(series)
        mapped = numbers.map({1.0: True, 0.0: False})
        return mapped.astype("boolean")
    if not _is_textual(series):
        return pd.Series(pd.NA, index=series.index, dtype="boolean")
    text = series.astype("str").str.strip().str.lower()
    mapping = dict.fromkeys(_TRUE, True) | dict.fromkeys(_FALSE, False)
    return text.map(mapping).astype("boolean")


def _parse(series: pd.Series, kind: ColumnKind) -> tuple[pd.Series, np.ndarray]:
    """Parse one raw column. Returns (values in the validation dtype, bad-value mask).

    Validation dtypes equal the final ones except ints, kept nullable ``Int64`` until every
    check has passed. The mask marks non-missing raw values that could not be parsed (they
    become NA and are reported as type errors, not as missing).
    """
    if _is_textual(series):
        series = _as_text(series)  # blank cells count as missing, not as bad values
    present = series.notna().to_numpy()
    if kind == "string":
        return series, np.zeros(len(series), dtype=bool)
    if kind in ("int", "float"):
        parsed = _to_float(series)
        values = parsed.to_numpy()
        finite = np.isfinite(values)
        if kind == "float":
            bad = present & np.isnan(values)
            return parsed, bad
        whole = finite & (np.floor(values) == values) & (np.abs(values) < 2**53)
        bad = present & ~whole
        ints = pd.array(np.where(whole, values, 0).astype("int64"), dtype="Int64")
        ints[~whole] = pd.NA
        return pd.Series(ints, index=series.index), bad
    if kind in ("date", "timestamp"):
        parsed = _to_datetime(series, kind)
        return parsed, present & parsed.isna().to_numpy()
    parsed = _to_bool(series)
    return parsed, present & parsed.isna().to_numpy()


# --------------------------------------------------------------------------------------------
# per-table checks


@dataclass
class _Table:
    """A table after parsing: contract columns that were present, in validation dtypes."""

    name: str
    file: str
    frame: pd.DataFrame

    def has(self, *columns: str) -> bool:
        return all(column in self.frame.columns for column in columns)


def _check_columns(
    name: str, file: str, raw: pd.DataFrame, out: _Collector
) -> tuple[list[str], bool]:
    """Column-level rules. Returns (contract columns present, usable)."""
    schema = SCHEMAS[name]
    columns = [str(c) for c in raw.columns]
    duplicated = sorted({c for c in columns if columns.count(c) > 1})
    for column in duplicated:
        out.add(file, column, "duplicate_column", "column appears more than once in the header")
    if duplicated:
        return [], False
    extra = [c for c in columns if c not in schema.columns]
    for column in extra:
        if looks_like_personal_data(column):
            out.add(
                file,
                column,
                "personal_data",
                "looks like personal data or free text about a person; remove the column "
                "(only pseudonymous ids are accepted)",
            )
        else:
            out.notes.append(
                Violation(file, column, None, "extra_column", "not in the contract; ignored")
            )
    lowered = {c.strip().lower(): c for c in extra}
    present = []
    for column in schema.columns:
        if column in columns:
            present.append(column)
            continue
        hint = lowered.get(column)
        detail = f"required column '{column}' is missing"
        if hint is not None:
            detail += f" (found '{hint}'; names are case-sensitive)"
        out.add(file, column, "missing_column", detail)
    return present, True


def _check_values(table: _Table, bad: dict[str, np.ndarray], out: _Collector) -> None:
    """Per-value rules declared in the pandera schema (nullability, ranges, vocabularies)."""
    schema = SCHEMAS[table.name]
    present = list(table.frame.columns)
    if not present:
        return
    checking = schema.select_columns(present).update_columns(
        {column: {"dtype": None} for column in present}
    )
    checking.unique = None
    try:
        checking.validate(table.frame, lazy=True)
        return
    except pa.errors.SchemaErrors as error:
        failures = error.failure_cases
    rules = {
        (column, check.error): check.name
        for column in present
        for check in schema.columns[column].checks
    }
    for (column, check), group in failures.groupby(["column", "check"], sort=False):
        rows = group["index"].to_numpy(dtype=np.int64)
        values = pd.Series(group["failure_case"].to_numpy(dtype=object), index=rows)
        column = str(column)
        if check == "not_nullable":
            # values that failed to parse were reported as type errors already
            keep = ~bad[column][rows]
            rows = rows[keep]
            rule, message = "not_null", "must not be empty"
        else:
            rule = rules.get((column, check), "schema")
            message = str(check)
        out.add_rows(table.file, column, rule, message, rows, _got_at(values))


def _check_key(table: _Table, out: _Collector) -> None:
    key = list(key_columns(SCHEMAS[table.name]))
    if not table.has(*key):
        return
    keys = table.frame[key]
    complete = keys.notna().all(axis=1).to_numpy()
    repeated = keys.duplicated(keep="first").to_numpy() & complete
    if not repeated.any():
        return
    involved = np.flatnonzero(keys.duplicated(keep=False).to_numpy() & complete)
    group = keys.iloc[involved].groupby(key, sort=False, dropna=False).ngroup().to_numpy()
    first = pd.Series(involved).groupby(group).transform("min").to_numpy()
    first_of = dict(zip(involved.tolist(), first.tolist(), strict=True))

    def describe(rows: np.ndarray) -> list[str]:
        texts = []
        for position in rows:
            values = ", ".join(f"{column}={_show(keys.iloc[position][column])}" for column in key)
            texts.append(f"({values}) repeats {_row_label(table.file, first_of[int(position)])}")
        return texts

    out.add_mask(
        table.file,
        ", ".join(key),
        "duplicate_key",
        "duplicate key",
        repeated,
        describe,
    )


def _check_rows(table: _Table, bad: dict[str, np.ndarray], out: _Collector) -> None:
    """Rules between columns of one row, and per-org competency weights."""
    frame, file = table.frame, table.file
    if table.name == "competencies" and table.has("org_id", "weight"):
        sums = frame.groupby("org_id", sort=True)["weight"].sum(min_count=1)
        for org, total in sums.items():
            if pd.notna(total) and abs(total - 1.0) > WEIGHT_SUM_TOLERANCE:
                out.add(
                    file,
                    "weight",
                    "weights_sum",
                    f"weights of org {_show(org)} sum to {total:.4g}; "
                    f"must sum to 1 (±{WEIGHT_SUM_TOLERANCE})",
                )
    if table.name == "managers" and table.has("hire_date", "leave_date"):
        hire, leave = frame["hire_date"], frame["leave_date"]
        out.add_mask(
            file,
            "leave_date",
            "date_order",
            "must be on or after hire_date",
            (leave < hire).to_numpy(),
            lambda r: [f"got {_show(leave.iloc[p])} < hire_date {_show(hire.iloc[p])}" for p in r],
        )
    if table.name == "nudges" and table.has("org_id", "competency_id"):
        is_global = (frame["org_id"] == GLOBAL_ORG).to_numpy()
        competency = frame["competency_id"]
        has_competency = competency.notna().to_numpy()
        out.add_mask(
            file,
            "competency_id",
            "global_competency",
            f"must be empty for a '{GLOBAL_ORG}' nudge (competencies belong to one org)",
            is_global & has_competency,
            _got(competency),
        )
        out.add_mask(
            file,
            "competency_id",
            "not_null",
            "must not be empty for an organisation's own nudge",
            ~is_global & ~has_competency & frame["org_id"].notna().to_numpy(),
            _nothing,
        )
    if table.name == "deliveries" and table.has("nudge_id"):
        control = frame["nudge_id"].isna().to_numpy()
        for column in ("opened", "acted", "rating"):
            if not table.has(column):
                continue
            values = frame[column]
            filled = values.notna().to_numpy()
            out.add_mask(
                file,
                column,
                "control_row",
                "must be empty in a control row (empty nudge_id)",
                control & filled,
                _got(values),
            )
            if column != "rating":
                out.add_mask(
                    file,
                    column,
                    "not_null",
                    "must not be empty when a nudge was sent",
                    ~control & ~filled & ~bad[column],
                    _nothing,
                )
    if table.name == "deliveries" and table.has("opened", "acted"):
        acted = frame["acted"].fillna(False).to_numpy(dtype=bool)
        opened = frame["opened"].fillna(False).to_numpy(dtype=bool)
        opened_values = frame["opened"]
        out.add_mask(
            file,
            "acted",
            "acted_without_opened",
            "may be true only if opened is true",
            acted & ~opened & opened_values.notna().to_numpy(),
            lambda r: [f"got true with opened {_show(opened_values.iloc[p])}" for p in r],
        )


def _load_table(folder: Path, name: str, out: _Collector) -> _Table | None:
    path = _locate(folder, name, out)
    if path is None:
        return None
    raw = _read_csv(path, out) if path.suffix == ".csv" else _read_parquet(path, out)
    if raw is None:
        return None
    present, usable = _check_columns(name, path.name, raw, out)
    if not usable:
        return None
    if len(raw) == 0:
        out.add(path.name, None, "empty_table", "has a header but no rows")
        return None
    schema = SCHEMAS[name]
    parsed: dict[str, pd.Series] = {}
    bad: dict[str, np.ndarray] = {}
    for column in present:
        kind = column_kind(schema, column)
        raw_column = raw[column]
        parsed[column], bad[column] = _parse(raw_column, kind)
        out.add_mask(path.name, column, "type", _TYPE_MESSAGES[kind], bad[column], _got(raw_column))
    del raw
    table = _Table(name, path.name, pd.DataFrame(parsed))
    _check_values(table, bad, out)
    _check_key(table, out)
    _check_rows(table, bad, out)
    return table


# --------------------------------------------------------------------------------------------
# cross-table checks


def _positions(values: pd.Series, keys: pd.Series) -> np.ndarray:
    """Row position in ``keys`` of each value (first match), -1 where absent or NA. Shape (n,)."""
    first = (keys.notna() & ~keys.duplicated()).to_numpy()
    lookup = pd.Index(keys[first])
    original = np.append(np.flatnonzero(first), -1)  # index -1 (not found) maps to -1
    codes, uniques = pd.factorize(values)  # NA -> code -1
    found = np.append(lookup.get_indexer(pd.Index(uniques)), -1)
    return np.asarray(original[found[codes]], dtype=np.int64)


def _references(
    child: _Table,
    column: str,
    parent: _Table,
    parent_column: str,
    out: _Collector,
) -> np.ndarray:
    """Check ``child.column`` values exist in ``parent.parent_column``; return positions."""
    values = child.frame[column]
    position = _positions(values, parent.frame[parent_column])
    missing = values.notna().to_numpy() & (position < 0)
    out.add_mask(
        child.file,
        column,
        "foreign_key",
        f"must exist in {parent.name}.{parent_column}",
        missing,
        _got(values),
    )
    return position


@dataclass
class _Orgs:
    """Integer codes of org ids shared by all tables (-1 for NA/unknown), for fast compares."""

    index: pd.Index

    def code(self, values: pd.Series) -> np.ndarray:
        return np.asarray(self.index.get_indexer(pd.Index(values)), dtype=np.int64)


def _within_employment(
    child: _Table,
    column: str,
    manager_pos: np.ndarray,
    managers: _Table,
    out: _Collector,
) -> None:
    """``child.column`` (a date, or a timestamp on the leave day) within the manager's stay."""
    if not managers.has("hire_date", "leave_date") or not child.has(column):
        return
    known = manager_pos >= 0
    safe = np.maximum(manager_pos, 0)
    when = child.frame[column].to_numpy()
    hire = managers.frame["hire_date"].to_numpy()[safe]
    leave = managers.frame["leave_date"].to_numpy()[safe]
    manager_ids = child.frame["manager_id"]

    def describe(other: np.ndarray, verb: str) -> Describe:
        return lambda rows: [
            f"got {_show(pd.Timestamp(when[p]))} for manager {_show(manager_ids.iloc[p])} "
            f"{verb} {_show(pd.Timestamp(other[p]))}"
            for p in rows
        ]

    out.add_mask(
        child.file,
        column,
        "outside_employment",
        "must be on or after the manager's hire_date",
        known & (when < hire),
        describe(hire, "hired"),
    )
    out.add_mask(
        child.file,
        column,
        "outside_employment",
        "must be on or before the manager's leave_date",
        known & (when >= leave + _ONE_DAY),  # NaT (still employed) compares False
        describe(leave, "who left"),
    )


def _check_org_models(competencies: _Table, managers: _Table, out: _Collector) -> None:
    if not (competencies.has("org_id") and managers.has("org_id")):
        return
    orgs = managers.frame["org_id"]
    has_model = orgs.isin(competencies.frame["org_id"].dropna()).to_numpy()
    out.add_mask(
        managers.file,
        "org_id",
        "org_without_competencies",
        "org has no competencies in the competencies table",
        orgs.notna().to_numpy() & ~has_model,
        _got(orgs),
    )


def _check_same_org(
    child: _Table,
    column: str,
    mine: np.ndarray,
    theirs: np.ndarray,
    mismatch: np.ndarray,
    their_orgs: pd.Series,
    my_orgs: pd.Series,
    owner: str,
    out: _Collector,
) -> None:
    """Report rows whose referenced entity (org ``theirs``) is not of the owner's org ``mine``.

    mine, theirs: arrays of shape (n,) with row positions into ``my_orgs`` / ``their_orgs``.
    """
    values = child.frame[column]
    out.add_mask(
        child.file,
        column,
        "same_org",
        f"must belong to the {owner}'s org",
        mismatch,
        lambda rows: [
            f"got {_show(values.iloc[p])} of org {_show(their_orgs.iloc[theirs[p]])}, "
            f"{owner} in org {_show(my_orgs.iloc[mine[p]])}"
            for p in rows
        ],
    )


def _check_references(tables: dict[str, _Table | None], out: _Collector) -> None:
    """Referential integrity, org membership and employment dates across tables.

    A check is skipped when a table or column it needs is unusable: that was reported already.
    """
    competencies, managers, nudges = tables["competencies"], tables["managers"], tables["nudges"]
    feedback, deliveries = tables["feedback_360"], tables["deliveries"]
    org_columns = [
        t.frame["org_id"] for t in (competencies, managers, nudges) if t and t.has("org_id")
    ]
    orgs = _Orgs(
        pd.Index(pd.concat(org_columns).dropna().unique()) if org_columns else pd.Index([])
    )

    if competencies is not None and managers is not None:
        _check_org_models(competencies, managers, out)

    manager_pos: dict[str, np.ndarray] = {}
    if managers is not None and managers.has("manager_id"):
        for name, when in (
            ("feedback_360", "wave_date"),
            ("engagement", "wave_date"),
            ("deliveries", "delivered_at"),
        ):
            child = tables[name]
            if child is not None and child.has("manager_id"):
                manager_pos[name] = _references(child, "manager_id", managers, "manager_id", out)
                _within_employment(child, when, manager_pos[name], managers, out)

    if (
        feedback is not None
        and competencies is not None
        and feedback.has("competency_id")
        and competencies.has("competency_id")
    ):
        comp_pos = _references(feedback, "competency_id", competencies, "competency_id", out)
        if (
            "feedback_360" in manager_pos
            and managers is not None
            and managers.has("org_id")
            and competencies.has("org_id")
        ):
            mgr_pos = manager_pos["feedback_360"]
            theirs = orgs.code(competencies.frame["org_id"])[np.maximum(comp_pos, 0)]
            mine = orgs.code(managers.frame["org_id"])[np.maximum(mgr_pos, 0)]
            _check_same_org(
                feedback,
                "competency_id",
                mgr_pos,
                comp_pos,
                (comp_pos >= 0) & (mgr_pos >= 0) & (theirs != mine) & (theirs >= 0) & (mine >= 0),
                competencies.frame["org_id"],
                managers.frame["org_id"],
                "manager",
                out,
            )

    if nudges is not None and nudges.has("org_id"):
        _check_nudge_references(nudges, competencies, managers, orgs, out)

    if (
        deliveries is not None
        and nudges is not None
        and deliveries.has("nudge_id")
        and nudges.has("nudge_id")
    ):
        nudge_pos = _references(deliveries, "nudge_id", nudges, "nudge_id", out)
        if (
            "deliveries" in manager_pos
            and managers is not None
            and managers.has("org_id")
            and nudges.has("org_id")
        ):
            mgr_pos = manager_pos["deliveries"]
            safe = np.maximum(nudge_pos, 0)
            nudge_orgs = nudges.frame["org_id"]
            theirs = orgs.code(nudge_orgs)[safe]
            is_global = (nudge_orgs == GLOBAL_ORG).to_numpy()[safe]
            mine = orgs.code(managers.frame["org_id"])[np.maximum(mgr_pos, 0)]
            _check_same_org(
                deliveries,
                "nudge_id",
                mgr_pos,
                nudge_pos,
                (nudge_pos >= 0)
                & (mgr_pos >= 0)
                & ~is_global
                & (theirs != mine)
                & (theirs >= 0)
                & (mine >= 0),
                nudge_orgs,
                managers.frame["org_id"],
                "manager",
                out,
            )


def _check_nudge_references(
    nudges: _Table,
    competencies: _Table | None,
    managers: _Table | None,
    orgs: _Orgs,
    out: _Collector,
) -> None:
    nudge_orgs = nudges.frame["org_id"]
    is_global = (nudge_orgs == GLOBAL_ORG).to_numpy()
    if managers is not None and managers.has("org_id"):
        known = nudge_orgs.isin(managers.frame["org_id"].dropna()).to_numpy()
        out.add_mask(
            nudges.file,
            "org_id",
            "foreign_key",
            f"must be an org in managers.org_id or '{GLOBAL_ORG}'",
            nudge_orgs.notna().to_numpy() & ~known & ~is_global,
            _got(nudge_orgs),
        )
    if competencies is None or not (
        nudges.has("competency_id") and competencies.has("competency_id")
    ):
        return
    # global nudges must have no competency (reported in _check_rows); check the others
    own = _Table(
        nudges.name,
        nudges.file,
        pd.DataFrame({"competency_id": nudges.frame["competency_id"].where(~is_global)}),
    )
    comp_pos = _references(own, "competency_id", competencies, "competency_id", out)
    if competencies.has("org_id"):
        theirs = orgs.code(competencies.frame["org_id"])[np.maximum(comp_pos, 0)]
        mine = orgs.code(nudge_orgs)
        _check_same_org(
            own,
            "competency_id",
            np.arange(len(nudge_orgs)),
            comp_pos,
            (comp_pos >= 0) & (theirs != mine) & (theirs >= 0) & (mine >= 0),
            competencies.frame["org_id"],
            nudge_orgs,
            "nudge",
            out,
        )


# --------------------------------------------------------------------------------------------
# entry point


def _finalise(table: _Table) -> pd.DataFrame:
    """Final dtypes (required ints to int64), contract column order, fresh RangeIndex."""
    schema = SCHEMAS[table.name]
    frame = table.frame
    for column, spec in schema.columns.items():
        if str(spec.dtype) == "int64":
            frame[column] = frame[column].astype("int64")
    return frame[list(schema.columns)].reset_index(drop=True)


def load_dataset(folder: Path) -> Dataset:
    """Read and validate the six tables in ``folder`` (each ``<table>.csv`` or ``.parquet``).

    Raises ``DataValidationError`` listing every violation across all tables; otherwise
    returns every table with the normalised dtypes of ``recommender.schemas``. Extra
    non-personal columns are dropped and listed in ``Dataset.notes``.
    """
    folder = Path(folder)
    out = _Collector()
    if not folder.exists():
        out.add(str(folder), None, "missing_folder", "folder does not exist")
        raise DataValidationError(folder, out.violations)
    if not folder.is_dir():
        out.add(str(folder), None, "not_a_folder", "is not a folder")
        raise DataValidationError(folder, out.violations)
    tables = {name: _load_table(folder, name, out) for name in TABLES}
    _check_references(tables, out)
    if out.violations:
        raise DataValidationError(folder, out.violations)
    frames = {name: _finalise(table) for name, table in _require_all(tables)}
    return Dataset(**frames, folder=folder, notes=tuple(out.notes))


def _require_all(tables: dict[str, _Table | None]) -> Iterable[tuple[str, _Table]]:
    for name, table in tables.items():
        if table is None:  # pragma: no cover - a missing table always adds a violation
            raise AssertionError(f"table {name} missing without a violation")
        yield name, table
