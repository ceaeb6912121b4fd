"""Turn the world's raw arrays into the contract tables, with the loader's normalised dtypes.

ids/text/categories -> ``str``; dates -> ``datetime64[ns]`` at midnight; ``delivered_at`` ->
tz-naive ``datetime64[ns]`` in UTC; opened/acted -> ``boolean``; rating -> ``Int64``;
counts -> int64; scores -> float64.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from recommender.constants import CONTROL, LEVELS, RATER_ROLES, TABLES, TRAITS
from recommender.simulation.catalogue import NUDGE_TYPES, Catalogue
from recommender.simulation.config import Calendar
from recommender.simulation.managers import FUNCTIONS, REGIONS, Population

if TYPE_CHECKING:
    from recommender.simulation.world import _Log


def build_tables(
    population: Population, catalogue: Catalogue, log: _Log
) -> dict[str, pd.DataFrame]:
    """All six tables, keyed and ordered by ``constants.TABLES``."""
    ids = pd.Index(population.manager_id, dtype="str")
    tables = {
        "competencies": catalogue.competencies.copy(),
        "managers": _managers(population, catalogue),
        "feedback_360": _feedback(log, ids, catalogue),
        "engagement": _engagement(log, ids),
        "nudges": catalogue.nudges.copy(),
        "deliveries": _deliveries(log, ids, catalogue),
    }
    return {name: tables[name] for name in TABLES}


def build_ground_truth(population: Population, calendar: Calendar, log: _Log) -> pd.DataFrame:
    """Long ground truth: manager x period x arm (``none`` and the org's nudge types)."""
    ids = pd.Index(population.manager_id, dtype="str")
    parts = _concat(
        log.truth,
        ["manager", "period", "arm"],
        ["delta_360", "delta_360_targeted", "delta_engagement"],
    )
    period = parts["period"]
    return pd.DataFrame(
        {
            "manager_id": _labels(parts["manager"], ids),
            "period_start": _dates(calendar.waves_360[period]),
            "period_end": _dates(calendar.waves_360[period + 1]),
            "nudge_type": _labels(parts["arm"], pd.Index([CONTROL, *NUDGE_TYPES], dtype="str")),
            "delta_360": parts["delta_360"],
            "delta_360_targeted": parts["delta_360_targeted"],
            "delta_engagement": parts["delta_engagement"],
        }
    )


def _managers(population: Population, catalogue: Catalogue) -> pd.DataFrame:
    frame = pd.DataFrame(
        {
            "org_id": _labels(population.org, pd.Index(catalogue.org_ids, dtype="str")),
            "manager_id": _labels(np.arange(population.size), pd.Index(population.manager_id)),
            "function": _labels(population.function, pd.Index(FUNCTIONS, dtype="str")),
            "level": _labels(population.level, pd.Index(LEVELS, dtype="str")),
            "tenure_months": population.tenure_at_hire.astype(np.int64),
            "team_size": population.team_size.astype(np.int64),
            "region": _labels(population.region, pd.Index(REGIONS, dtype="str")),
            **{trait: population.traits[:, i].astype(np.float64) for i, trait in enumerate(TRAITS)},
            "hire_date": _dates(population.hire_day),
            "leave_date": _dates(population.leave_day),
        }
    )
    return frame


def _feedback(log: _Log, ids: pd.Index, catalogue: Catalogue) -> pd.DataFrame:
    parts = _concat(log.feedback, ["manager", "competency", "role", "n_raters"], ["score"], ["day"])
    comp_ids = pd.Index(catalogue.competencies["competency_id"], dtype="str")
    return pd.DataFrame(
        {
            "manager_id": _labels(parts["manager"], ids),
            "wave_date": _dates(parts["day"]),
            "competency_id": _labels(parts["competency"], comp_ids),
            "rater_role": _labels(parts["role"], pd.Index(RATER_ROLES, dtype="str")),
            "score": parts["score"],
            "n_raters": parts["n_raters"],
        }
    )


def _engagement(log: _Log, ids: pd.Index) -> pd.DataFrame:
    parts = _concat(log.engagement, ["manager", "n_respondents"], ["engagement"], ["day"])
    frame = pd.DataFrame(
        {
            "manager_id": _labels(parts["manager"], ids),
            "wave_date": _dates(parts["day"]),
            "engagement": parts["engagement"],
            "n_respondents": parts["n_respondents"],
        }
    )
    return frame.sort_values(["wave_date"], kind="stable", ignore_index=True)


def _deliveries(log: _Log, ids: pd.Index, catalogue: Catalogue) -> pd.DataFrame:
    parts = _concat(
        log.deliveries,
        ["serial", "manager", "nudge", "policy", "opened", "acted", "rating"],
        ["propensity"],
        ["at"],
    )
    serial = parts["serial"]
    delivery_id = pc.binary_join_element_wise(
        "d", pc.utf8_lpad(pa.array(serial).cast(pa.string()), 9, "0"), ""
    )
    nudge_ids = pd.Index(catalogue.nudges["nudge_id"], dtype="str")
    opened, acted, rating = parts["opened"], parts["acted"], parts["rating"]
    return pd.DataFrame(
        {
            "delivery_id": pd.Series(delivery_id, dtype="str"),
            "manager_id": _labels(parts["manager"], ids),
            "nudge_id": _labels(parts["nudge"], nudge_ids),
            "delivered_at": parts["at"].astype("datetime64[ns]"),
            "policy": _labels(parts["policy"], pd.Index(log.policies, dtype="str")),
            "propensity": parts["propensity"],
            "opened": pd.arrays.BooleanArray(opened == 1, opened < 0),
            "acted": pd.arrays.BooleanArray(acted == 1, acted < 0),
            "rating": pd.arrays.IntegerArray(np.maximum(rating, 0).astype(np.int64), rating < 0),
        }
    )


def _concat(
    chunks: list[dict[str, np.ndarray]],
    ints: list[str],
    floats: list[str],
    days: list[str] | None = None,
) -> dict[str, np.ndarray]:
    """Concatenate per-wave arrays column by column (empty-safe)."""
    out: dict[str, np.ndarray] = {}
    for name in ints:
        out[name] = np.concatenate([c[name] for c in chunks] or [np.zeros(0)]).astype(np.int64)
    for name in floats:
        out[name] = np.concatenate([c[name] for c in chunks] or [np.zeros(0)]).astype(np.float64)
    for name in days or []:
        out[name] = np.concatenate(
            [c[name] for c in chunks] or [np.zeros(0, dtype="datetime64[D]")]
        )
    return out


def _labels(codes: np.ndarray, labels: pd.Index) -> pd.Series:
    """``str`` column from integer codes into ``labels``; code -1 becomes missing.

    Decoded in Arrow (no Python string objects per row), which keeps 10M-row tables cheap.
    """
    indices = pa.array(codes.astype(np.int32), mask=codes < 0)
    dictionary = pa.array(labels.to_numpy(dtype=object), type=pa.string())
    decoded = pa.DictionaryArray.from_arrays(indices, dictionary).dictionary_decode()
    return pd.Series(decoded, dtype="str")


def _dates(days: np.ndarray) -> np.ndarray:
    return days.astype("datetime64[D]").astype("datetime64[ns]")
