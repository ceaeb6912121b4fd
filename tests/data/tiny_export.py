"""A tiny, hand-written valid export (2 orgs) and helpers to write it as CSV or Parquet.

Imported by name from the tests of this folder (unique module name: no clash with other
``conftest`` modules).

``valid_tables()`` returns the tables exactly as they would appear in CSV: every cell a string,
``""`` for empty. Tests mutate a fresh copy to make one thing wrong.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pandas as pd

Tables = dict[str, pd.DataFrame]

_TRAITS = {
    "openness": "55.0",
    "conscientiousness": "61.5",
    "extraversion": "40.0",
    "agreeableness": "70.0",
    "neuroticism": "35.5",
}


def _frame(columns: list[str], rows: list[tuple[str, ...]]) -> pd.DataFrame:
    return pd.DataFrame(rows, columns=columns, dtype=object)


def valid_tables() -> Tables:
    """Org ``o-a`` (managers m1, m2) and ``o-b`` (m3, who left), one global nudge."""
    competencies = _frame(
        ["org_id", "competency_id", "name", "weight"],
        [
            ("o-a", "a-c1", "Coaching", "0.5"),
            ("o-a", "a-c2", "Recognition", "0.5"),
            ("o-b", "b-c1", "Delegation", "0.6"),
            ("o-b", "b-c2", "Feedback", "0.4"),
        ],
    )
    manager_cols = ["org_id", "manager_id", "function", "level", "tenure_months", "team_size"]
    manager_cols += ["region", *_TRAITS, "hire_date", "leave_date"]
    traits = tuple(_TRAITS.values())
    managers = _frame(
        manager_cols,
        [
            ("o-a", "m1", "sales", "first_line", "12", "6", "emea", *traits, "2023-01-01", ""),
            ("o-a", "m2", "engineering", "middle", "40", "9", "apac", *traits, "2023-02-01", ""),
            (
                "o-b",
                "m3",
                "finance",
                "senior",
                "100",
                "4",
                "emea",
                *traits,
                "2023-01-01",
                "2023-12-31",
            ),
        ],
    )
    feedback_rows = [
        (m, wave, c, role, score, "3")
        for m, comps in (("m1", ("a-c1", "a-c2")), ("m2", ("a-c1", "a-c2")), ("m3", ("b-c1",)))
        for wave in ("2023-03-01", "2023-09-01")
        for c in comps
        for role, score in (("self", "4.0"), ("direct_report", "3.25"))
    ]
    feedback = _frame(
        ["manager_id", "wave_date", "competency_id", "rater_role", "score", "n_raters"],
        feedback_rows,
    )
    engagement = _frame(
        ["manager_id", "wave_date", "engagement", "n_respondents"],
        [
            ("m1", "2023-03-01", "72.5", "5"),
            ("m1", "2023-09-01", "75.0", "6"),
            ("m2", "2023-03-01", "60.0", "8"),
            ("m3", "2023-03-01", "81.0", "4"),
        ],
    )
    nudges = _frame(
        ["nudge_id", "org_id", "nudge_type", "competency_id", "contexts", "text"],
        [
            ("a-n1", "o-a", "recognition", "a-c2", "before_1on1;team_meeting", "Name one win."),
            ("b-n1", "o-b", "coaching", "b-c1", "before_1on1", "Ask before you tell."),
            ("g-n1", "global", "feedback", "", "before_feedback_conversation", "Be specific."),
        ],
    )
    deliveries = _frame(
        [
            "delivery_id",
            "manager_id",
            "nudge_id",
            "delivered_at",
            "policy",
            "propensity",
            "opened",
            "acted",
            "rating",
        ],
        [
            ("d1", "m1", "a-n1", "2023-03-02T09:00:00Z", "uniform-v1", "0.5", "true", "true", "4"),
            ("d2", "m2", "", "2023-03-02T09:00:00Z", "uniform-v1", "0.5", "", "", ""),
            (
                "d3",
                "m3",
                "g-n1",
                "2023-03-03T10:30:00Z",
                "uniform-v1",
                "0.25",
                "false",
                "false",
                "",
            ),
            (
                "d4",
                "m3",
                "b-n1",
                "2023-12-31T18:00:00Z",
                "uniform-v1",
                "0.25",
                "true",
                "false",
                "5",
            ),
            ("d5", "m1", "g-n1", "2023-09-02T08:15:00Z", "uniform-v1", "0.5", "true", "false", ""),
        ],
    )
    return {
        "competencies": competencies,
        "managers": managers,
        "feedback_360": feedback,
        "engagement": engagement,
        "nudges": nudges,
        "deliveries": deliveries,
    }


def write_csv(tables: Tables, folder: Path) -> Path:
    """Write every table as ``<table>.csv`` (empty string = empty cell)."""
    folder.mkdir(parents=True, exist_ok=True)
    for name, frame in tables.items():
        frame.to_csv(folder / f"{name}.csv", index=False)
    return folder


def _none_if_empty(frame: pd.DataFrame, column: str) -> pd.Series:
    return frame[column].map(lambda v: None if v == "" else v)


def to_typed(tables: Tables) -> Tables:
    """The same tables with native types, deliberately not the loader's output dtypes:
    dates as ``datetime.date`` (Parquet date32), ints as int32, timestamps tz-aware UTC,
    nullable booleans and ints, so loading must normalise them.
    """
    typed: Tables = {}
    floats = {"weight", "score", "engagement", "propensity", "openness", "conscientiousness"}
    floats |= {"extraversion", "agreeableness", "neuroticism"}
    ints = {"tenure_months", "team_size", "n_raters", "n_respondents"}
    for name, frame in tables.items():
        out = pd.DataFrame(index=frame.index)
        for column in frame.columns:
            values = _none_if_empty(frame, column)
            if column in floats:
                out[column] = values.astype("float64")
            elif column in ints:
                out[column] = values.astype("int32")
            elif column in ("hire_date", "leave_date", "wave_date"):
                out[column] = pd.Series(
                    [dt.date.fromisoformat(v) if isinstance(v, str) else None for v in values],
                    index=frame.index,
                    dtype=object,
                )
            elif column == "delivered_at":
                out[column] = pd.to_datetime(values, utc=True)
            elif column in ("opened", "acted"):
                out[column] = values.map({"true": True, "false": False}).astype("boolean")
            elif column == "rating":
                out[column] = pd.array(
                    [int(v) if isinstance(v, str) else None for v in values], dtype="Int64"
                )
            else:
                out[column] = values.astype("str")
        typed[name] = out
    return typed


def write_parquet(tables: Tables, folder: Path) -> Path:
    """Write every table as ``<table>.parquet`` with native types (see ``to_typed``)."""
    folder.mkdir(parents=True, exist_ok=True)
    for name, frame in to_typed(tables).items():
        frame.to_parquet(folder / f"{name}.parquet", index=False)
    return folder
