"""Contracts of the six input tables: one pandera schema per table, declared once.

Each schema describes a table *after* loading (see ``recommender.data.load_dataset``): the column
dtypes are the normalised ones (same for CSV and Parquet input), the column checks are the
per-value rules of ``data/README.md`` and ``DataFrameSchema.unique`` is the table's key.
Each column carries ``metadata={"kind": ...}`` telling the loader how to parse raw values:

- ``string``: pandas ``str`` dtype; empty or blank cells are missing.
- ``int``: ``int64`` (``Int64`` when nullable); whole numbers only.
- ``float``: ``float64``.
- ``date``: ``datetime64[ns]`` at midnight (ISO ``YYYY-MM-DD``).
- ``timestamp``: tz-naive ``datetime64[ns]`` in UTC (ISO 8601; naive input is taken as UTC).
- ``bool``: nullable ``boolean`` (``true``/``false``, ``1``/``0``, ``yes``/``no`` in CSV).

Rules that span rows or tables (keys, referential integrity, dates in order, control rows,
competency weights per org) are checked by the loader, vectorised, on top of these schemas.
"""

from __future__ import annotations

import re
from typing import Final, Literal

import pandas as pd
import pandera.pandas as pa

from recommender.constants import CONTEXTS, CONTROL, LEVELS, RATER_ROLES, TABLES, TRAITS

ColumnKind = Literal["string", "int", "float", "date", "timestamp", "bool"]

WEIGHT_SUM_TOLERANCE: Final = 0.01
"""Competency weights of one organisation must sum to 1 within this tolerance."""

CONTEXT_SEPARATOR: Final = ";"
"""Separator of the tags in ``nudges.contexts``."""

_DTYPES: Final[dict[ColumnKind, str]] = {
    "string": "str",
    "int": "int64",
    "float": "float64",
    "date": "datetime64[ns]",
    "timestamp": "datetime64[ns]",
    "bool": "boolean",
}


def _column(
    kind: ColumnKind,
    *checks: pa.Check,
    nullable: bool = False,
    description: str = "",
) -> pa.Column:
    dtype = "Int64" if kind == "int" and nullable else _DTYPES[kind]
    return pa.Column(
        dtype,
        checks=list(checks),
        nullable=nullable,
        description=description,
        metadata={"kind": kind},
    )


def _between(low: float, high: float, *, include_low: bool = True) -> pa.Check:
    error = (
        f"must be between {low:g} and {high:g}"
        if include_low
        else f"must be > {low:g} and <= {high:g}"
    )
    return pa.Check.in_range(low, high, include_min=include_low, name="range", error=error)


def _at_least(low: float) -> pa.Check:
    return pa.Check.ge(low, name="range", error=f"must be >= {low:g}")


def _one_of(values: tuple[str, ...]) -> pa.Check:
    return pa.Check.isin(
        list(values), name="allowed_values", error=f"must be one of {', '.join(values)}"
    )


def _tags_ok(series: pd.Series) -> pd.Series:
    """True per row when every ``;``-separated tag is a known context (series: strings)."""
    tags = series.str.split(CONTEXT_SEPARATOR).explode().str.strip()
    return tags.isin(CONTEXTS).groupby(level=0).all()


_CONTEXT_TAGS = pa.Check(
    _tags_ok,
    name="allowed_values",
    error=f"must be '{CONTEXT_SEPARATOR}'-separated tags from {', '.join(CONTEXTS)}",
)
_NOT_CONTROL = pa.Check.notin(
    [CONTROL], name="allowed_values", error=f"must not be '{CONTROL}' (the control label)"
)

_ID = "pseudonymous id"

COMPETENCIES: Final = pa.DataFrameSchema(
    {
        "org_id": _column("string", description="organisation the competency model belongs to"),
        "competency_id": _column("string", description="competency id, unique across orgs"),
        "name": _column("string", description="short label of the competency"),
        "weight": _column(
            "float",
            _between(0, 1, include_low=False),
            description="importance in the org's model; sums to 1 per org",
        ),
    },
    unique=["competency_id"],
    name="competencies",
)

MANAGERS: Final = pa.DataFrameSchema(
    {
        "org_id": _column("string", description="organisation"),
        "manager_id": _column("string", description=_ID),
        "function": _column("string", description="e.g. sales, engineering"),
        "level": _column("string", _one_of(LEVELS), description="management level"),
        "tenure_months": _column("int", _between(0, 600), description="months in management"),
        "team_size": _column("int", _between(1, 500), description="direct reports"),
        "region": _column("string", description="e.g. emea, americas, apac"),
        **{
            trait: _column("float", _between(0, 100), description="Big Five score, 0-100")
            for trait in TRAITS
        },
        "hire_date": _column("date", description="first day in the data"),
        "leave_date": _column("date", nullable=True, description="last day; empty if employed"),
    },
    unique=["manager_id"],
    name="managers",
)

FEEDBACK_360: Final = pa.DataFrameSchema(
    {
        "manager_id": _column("string", description="who was rated"),
        "wave_date": _column("date", description="survey wave close date"),
        "competency_id": _column("string", description="what was rated"),
        "rater_role": _column("string", _one_of(RATER_ROLES), description="who rated"),
        "score": _column("float", _between(1, 5), description="mean score of the raters, 1-5"),
        "n_raters": _column("int", _at_least(1), description="raters who answered"),
    },
    unique=["manager_id", "wave_date", "competency_id", "rater_role"],
    name="feedback_360",
)

ENGAGEMENT: Final = pa.DataFrameSchema(
    {
        "manager_id": _column("string", description="whose team"),
        "wave_date": _column("date", description="survey close date"),
        "engagement": _column("float", _between(0, 100), description="team engagement, 0-100"),
        "n_respondents": _column("int", _at_least(1), description="team members who answered"),
    },
    unique=["manager_id", "wave_date"],
    name="engagement",
)

NUDGES: Final = pa.DataFrameSchema(
    {
        "nudge_id": _column("string", description="nudge id"),
        "org_id": _column("string", description="owning org, or 'global'"),
        "nudge_type": _column("string", _NOT_CONTROL, description="behaviour family (treatment)"),
        "competency_id": _column(
            "string", nullable=True, description="competency built; empty for global nudges"
        ),
        "contexts": _column("string", _CONTEXT_TAGS, description="where in the flow of work"),
        "text": _column("string", description="prompt shown to the manager"),
    },
    unique=["nudge_id"],
    name="nudges",
)

DELIVERIES: Final = pa.DataFrameSchema(
    {
        "delivery_id": _column("string", description="event id"),
        "manager_id": _column("string", description="recipient"),
        "nudge_id": _column("string", nullable=True, description="empty for a control decision"),
        "delivered_at": _column("timestamp", description="when it was decided/sent, UTC"),
        "policy": _column("string", description="name/version of the logging policy"),
        "propensity": _column(
            "float",
            _between(0, 1, include_low=False),
            description="probability the logging policy had of choosing this row's arm",
        ),
        "opened": _column("bool", nullable=True, description="empty for control rows"),
        "acted": _column("bool", nullable=True, description="true only if opened"),
        "rating": _column("int", _between(1, 5), nullable=True, description="usefulness, 1-5"),
    },
    unique=["delivery_id"],
    name="deliveries",
)

SCHEMAS: Final[dict[str, pa.DataFrameSchema]] = dict(
    zip(TABLES, (COMPETENCIES, MANAGERS, FEEDBACK_360, ENGAGEMENT, NUDGES, DELIVERIES), strict=True)
)
"""Schema per table name, in ``constants.TABLES`` order."""


def column_kind(schema: pa.DataFrameSchema, column: str) -> ColumnKind:
    """How the loader parses ``column`` of ``schema`` (see the module docstring)."""
    kind: ColumnKind = schema.columns[column].metadata["kind"]
    return kind


def key_columns(schema: pa.DataFrameSchema) -> tuple[str, ...]:
    """The table's key: the columns that together identify a row."""
    return tuple(schema.unique or ())


_PERSONAL_EXACT: Final = frozenset(
    {"name", "names", "fullname", "firstname", "lastname", "surname", "givenname", "familyname"}
)
_PERSONAL_PATTERN: Final = re.compile(
    r"(^|_)(full|first|last|given|family|middle|display|user|employee|manager|person|rater|"
    r"report|sur)_?name(s)?($|_)"
    r"|e_?mail|phone|mobile|comment|free_?text|address|birth|ssn|national_id|passport"
)


def looks_like_personal_data(column: str) -> bool:
    """True if a column name suggests personal data or free text about a person.

    Such columns are refused even when they are not part of the contract (privacy).
    Declared contract columns (e.g. ``competencies.name``) are never passed here.
    """
    normalised = re.sub(r"[^a-z0-9]+", "_", column.strip().lower()).strip("_")
    return normalised.replace("_", "") in _PERSONAL_EXACT or bool(
        _PERSONAL_PATTERN.search(normalised)
    )
