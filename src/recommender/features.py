"""The manager-period table: features, treatment, propensity and outcomes from the six tables.

Unit: one manager x period between two consecutive 360 waves of that manager
(``period_start`` = the wave that opens it, ``period_end`` = the next wave). Everything a feature
uses is known at ``period_start``: 360 and engagement of that wave and before, the profile, and
nudge deliveries strictly before ``period_start``. The treatment is the nudge type of the
period's first logged decision (``none`` for a control decision or a period without decisions);
outcomes are changes from ``period_start`` to ``period_end``. The last wave of each manager opens
an unfinished period (no outcome): those rows give the serving snapshot.

Reads only the six input tables; never simulation ground truth.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from recommender.constants import CONTROL, LEVELS, OUTCOMES, TRAITS

KEYS = ("org_id", "manager_id", "period_start", "period_end")
CATEGORICAL = ("org_id", "function", "level", "region")
PROFILE_NUMERIC = ("tenure_months", "team_size", *TRAITS)
STATE_NUMERIC = (
    "score_overall",
    "score_weighted",
    "model_gap",
    "self_other_gap",
    "score_change_prev",
    "engagement",
    "engagement_trend",
    "n_respondents",
    "hist_periods",
    "hist_n_nudges",
    "hist_n_control",
    "hist_opened_rate",
    "hist_acted_rate",
)
_DAYS_PER_MONTH = 30.4375


@dataclass(frozen=True)
class FeatureSpec:
    """The one feature spec a model is trained with and served by.

    names: feature order of every encoded row (axis 1 of X).
    categories: categorical feature -> its values; a value is encoded as its index (float),
        an unseen value as NaN.
    nudge_types: treatments seen in the catalogue (control excluded), sorted.
    type_competencies: org -> nudge type -> competency ids the type targets in that org.
    """

    names: tuple[str, ...]
    categories: dict[str, tuple[str, ...]]
    nudge_types: tuple[str, ...]
    type_competencies: dict[str, dict[str, tuple[str, ...]]] = field(default_factory=dict)

    @property
    def required_profile(self) -> tuple[str, ...]:
        """Fields a new manager's features must carry (the rest default to missing/zero)."""
        return (*CATEGORICAL, *PROFILE_NUMERIC)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {
            "names": list(self.names),
            "categories": {key: list(values) for key, values in self.categories.items()},
            "nudge_types": list(self.nudge_types),
            "type_competencies": {
                org: {t: list(c) for t, c in types.items()}
                for org, types in self.type_competencies.items()
            },
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> FeatureSpec:
        """Inverse of ``to_dict``."""
        return cls(
            names=tuple(data["names"]),
            categories={k: tuple(v) for k, v in data["categories"].items()},
            nudge_types=tuple(data["nudge_types"]),
            type_competencies={
                org: {t: tuple(c) for t, c in types.items()}
                for org, types in data.get("type_competencies", {}).items()
            },
        )

    def encode_frame(self, frame: pd.DataFrame) -> np.ndarray:
        """Encode feature columns of ``frame``: float64 array of shape (n, n_features)."""
        out = np.empty((len(frame), len(self.names)), dtype=np.float64)
        for j, name in enumerate(self.names):
            column = frame[name]
            if name in self.categories:
                codes = pd.Categorical(column.astype("object"), categories=self.categories[name])
                values = codes.codes.astype(np.float64)
                values[values < 0] = np.nan
                out[:, j] = values
            else:
                out[:, j] = pd.to_numeric(column, errors="coerce").to_numpy(
                    dtype=np.float64, na_value=np.nan
                )
        return out

    def encode_mapping(self, features: Mapping[str, object]) -> np.ndarray:
        """Encode one new manager's raw features: shape (n_features,).

        Required: the profile (``required_profile``). Optional state and history features default
        to missing (NaN) or, for history counts, 0. Raises ``ValueError`` naming the field.
        """
        unknown = sorted(set(features) - set(self.names))
        if unknown:
            raise ValueError(f"{unknown[0]}: unknown feature")
        row = np.full(len(self.names), np.nan, dtype=np.float64)
        for j, name in enumerate(self.names):
            if name.startswith("hist_n_") or name == "hist_periods":
                row[j] = 0.0
            if name not in features or features[name] is None:
                if name in self.required_profile:
                    raise ValueError(f"{name}: required feature is missing")
                continue
            value = features[name]
            if name in self.categories:
                allowed = self.categories[name]
                if not isinstance(value, str) or value not in allowed:
                    raise ValueError(f"{name}: {value!r} is not one of {list(allowed)}")
                row[j] = float(allowed.index(value))
                continue
            if isinstance(value, bool) or not isinstance(value, int | float | np.number):
                raise ValueError(f"{name}: must be a number, got {type(value).__name__}")
            number = float(value)
            if not np.isfinite(number):
                raise ValueError(f"{name}: must be finite")
            if name in TRAITS and not 0.0 <= number <= 100.0:
                raise ValueError(f"{name}: must be within 0-100, got {number}")
            if name == "tenure_months" and not 0.0 <= number <= 600.0:
                raise ValueError(f"{name}: must be within 0-600, got {number}")
            if name == "team_size" and not 1.0 <= number <= 500.0:
                raise ValueError(f"{name}: must be within 1-500, got {number}")
            row[j] = number
        return row


@dataclass(frozen=True)
class ManagerPeriods:
    """Output of ``build_manager_periods``.

    table: one row per manager x wave: KEYS, feature columns (spec.names), ``treatment``,
        ``propensity`` (of the received treatment under the logging policy; NaN when no decision
        was logged), ``n_decisions``, ``opened``/``acted`` of the decision, and OUTCOMES
        (NaN on the unfinished last period).
    spec: the feature spec.
    """

    table: pd.DataFrame
    spec: FeatureSpec

    def modelling_rows(self) -> pd.DataFrame:
        """Finished periods with every outcome observed."""
        mask = self.table["period_end"].notna()
        for outcome in OUTCOMES:
            mask &= self.table[outcome].notna()
        return self.table.loc[mask].reset_index(drop=True)

    def snapshot(self) -> pd.DataFrame:
        """Latest row per manager still employed at the end of the data (serving snapshot)."""
        latest = self.table.sort_values("period_start").groupby("manager_id", sort=False).tail(1)
        return latest.loc[latest["active"]].reset_index(drop=True)


def _type_competencies(
    nudges: pd.DataFrame, competencies: pd.DataFrame
) -> dict[str, dict[str, tuple[str, ...]]]:
    """org -> nudge type -> competency ids targeted by the org's own nudges of that type."""
    own = nudges.loc[nudges["competency_id"].notna(), ["org_id", "nudge_type", "competency_id"]]
    own = own.drop_duplicates().sort_values(["org_id", "nudge_type", "competency_id"])
    known = set(competencies["competency_id"].astype(str))
    out: dict[str, dict[str, tuple[str, ...]]] = {}
    for (org, nudge_type), group in own.groupby(["org_id", "nudge_type"], sort=True):
        comps = tuple(str(c) for c in group["competency_id"] if str(c) in known)
        if comps:
            out.setdefault(str(org), {})[str(nudge_type)] = comps
    return out


def _competency_scores(feedback: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Per (manager, wave, competency): mean non-self score; per (manager, wave): mean self."""
    roles = feedback["rater_role"].astype(str)
    others = feedback.loc[roles != "self"]
    comp = (
        others.groupby(["manager_id", "wave_date", "competency_id"], observed=True, sort=False)[
            "score"
        ]
        .mean()
        .rename("score")
        .reset_index()
    )
    own = feedback.loc[roles == "self"]
    self_mean = (
        own.groupby(["manager_id", "wave_date"], observed=True, sort=False)["score"]
        .mean()
        .rename("self_score")
        .reset_index()
    )
    return comp, self_mean


def _wave_table(
    comp: pd.DataFrame,
    self_mean: pd.DataFrame,
    managers: pd.DataFrame,
    competencies: pd.DataFrame,
) -> pd.DataFrame:
    """One row per (manager, wave) with overall/weighted 360, model gap, self-other gap."""
    comp = comp.merge(competencies[["competency_id", "weight"]], on="competency_id", how="left")
    comp["w_score"] = comp["weight"] * comp["score"]
    comp["w_short"] = comp["weight"] * (5.0 - comp["score"]) / 4.0
    waves = (
        comp.groupby(["manager_id", "wave_date"], observed=True, sort=False)
        .agg(
            score_overall=("score", "mean"),
            w_score=("w_score", "sum"),
            w_short=("w_short", "sum"),
            w_sum=("weight", "sum"),
        )
        .reset_index()
    )
    waves["score_weighted"] = waves["w_score"] / waves["w_sum"]
    waves["model_gap"] = waves["w_short"] / waves["w_sum"]
    waves = waves.drop(columns=["w_score", "w_short", "w_sum"])
    waves = waves.merge(self_mean, on=["manager_id", "wave_date"], how="left")
    waves["self_other_gap"] = waves["self_score"] - waves["score_overall"]
    waves = waves.drop(columns=["self_score"])
    waves = waves.merge(managers[["manager_id", "org_id"]], on="manager_id", how="inner")
    waves = waves.sort_values(["manager_id", "wave_date"], kind="stable").reset_index(drop=True)
    grouped = waves.groupby("manager_id", sort=False)
    waves["period_start"] = waves["wave_date"]
    waves["period_end"] = grouped["wave_date"].shift(-1)
    waves["score_change_prev"] = waves["score_overall"] - grouped["score_overall"].shift(1)
    waves["hist_periods"] = grouped.cumcount().astype(np.float64)
    waves["delta_360"] = grouped["score_overall"].shift(-1) - waves["score_overall"]
    return waves.drop(columns=["wave_date"])


def _type_scores(
    comp: pd.DataFrame,
    managers: pd.DataFrame,
    type_comps: dict[str, dict[str, tuple[str, ...]]],
) -> pd.DataFrame:
    """Long table (manager_id, wave_date, nudge_type, target_score): mean over targeted comps."""
    rows = [
        (org, nudge_type, comp_id)
        for org, types in type_comps.items()
        for nudge_type, comps in types.items()
        for comp_id in comps
    ]
    if not rows:
        return pd.DataFrame(columns=["manager_id", "wave_date", "nudge_type", "target_score"])
    mapping = pd.DataFrame(rows, columns=["org_id", "nudge_type", "competency_id"])
    scored = comp.merge(managers[["manager_id", "org_id"]], on="manager_id", how="inner")
    scored["org_id"] = scored["org_id"].astype(str)
    scored["competency_id"] = scored["competency_id"].astype(str)
    scored = scored.merge(mapping, on=["org_id", "competency_id"], how="inner")
    return (
        scored.groupby(["manager_id", "wave_date", "nudge_type"], observed=True, sort=False)[
            "score"
        ]
        .mean()
        .rename("target_score")
        .reset_index()
    )


def _decisions(deliveries: pd.DataFrame, nudges: pd.DataFrame) -> pd.DataFrame:
    """Deliveries with their nudge type (``none`` for control decisions), sorted by time."""
    type_of = dict(
        zip(nudges["nudge_id"].astype(str), nudges["nudge_type"].astype(str), strict=True)
    )
    out = deliveries[
        ["manager_id", "nudge_id", "delivered_at", "propensity", "opened", "acted"]
    ].copy()
    out["treatment"] = out["nudge_id"].map(type_of).fillna(CONTROL).astype("str")
    out["is_nudge"] = (out["treatment"] != CONTROL).astype(np.float64)
    out["opened_f"] = (
        out["opened"].astype("Float64").fillna(0.0).astype(np.float64) * out["is_nudge"]
    )
    out["acted_f"] = out["acted"].astype("Float64").fillna(0.0).astype(np.float64) * out["is_nudge"]
    return out.sort_values(["delivered_at", "manager_id"], kind="stable").reset_index(drop=True)


def _history(
    periods: pd.DataFrame, decisions: pd.DataFrame, nudge_types: tuple[str, ...]
) -> pd.DataFrame:
    """Nudge-history features from deliveries strictly before each ``period_start``."""
    counts = decisions[["manager_id", "delivered_at"]].copy()
    grouped = decisions.groupby("manager_id", sort=False)
    for nudge_type in (*nudge_types, CONTROL):
        indicator = (decisions["treatment"] == nudge_type).astype(np.float64)
        counts[f"hist_n_{nudge_type}"] = indicator.groupby(decisions["manager_id"]).cumsum()
    counts["hist_n_nudges"] = grouped["is_nudge"].cumsum()
    counts["cum_opened"] = grouped["opened_f"].cumsum()
    counts["cum_acted"] = grouped["acted_f"].cumsum()
    counts = counts.rename(columns={f"hist_n_{CONTROL}": "hist_n_control"})
    left = periods[["manager_id", "period_start"]].copy()
    left["_order"] = np.arange(len(left))
    left = left.sort_values("period_start", kind="stable")
    counts = counts.sort_values("delivered_at", kind="stable")
    merged = pd.merge_asof(
        left,
        counts,
        left_on="period_start",
        right_on="delivered_at",
        by="manager_id",
        direction="backward",
        allow_exact_matches=False,
    ).sort_values("_order")
    hist_cols = [c for c in counts.columns if c.startswith("hist_")]
    out = merged[hist_cols].fillna(0.0).reset_index(drop=True)
    nudged = out["hist_n_nudges"].to_numpy()
    with np.errstate(invalid="ignore", divide="ignore"):
        out["hist_opened_rate"] = np.where(
            nudged > 0, merged["cum_opened"].to_numpy() / nudged, np.nan
        )
        out["hist_acted_rate"] = np.where(
            nudged > 0, merged["cum_acted"].to_numpy() / nudged, np.nan
        )
    return out


def _period_decision(periods: pd.DataFrame, decisions: pd.DataFrame) -> pd.DataFrame:
    """First logged decision inside each period [period_start, period_end)."""
    waves = periods[["manager_id", "period_start"]].sort_values("period_start", kind="stable")
    dec = decisions.sort_values("delivered_at", kind="stable")
    assigned = pd.merge_asof(
        dec,
        waves,
        left_on="delivered_at",
        right_on="period_start",
        by="manager_id",
        direction="backward",
    )
    assigned = assigned.loc[assigned["period_start"].notna()]
    first = (
        assigned.sort_values("delivered_at", kind="stable")
        .groupby(["manager_id", "period_start"], sort=False)
        .agg(
            treatment=("treatment", "first"),
            propensity=("propensity", "first"),
            opened=("opened_f", "first"),
            acted=("acted_f", "first"),
            n_decisions=("treatment", "size"),
        )
        .reset_index()
    )
    out = periods[["manager_id", "period_start"]].merge(
        first, on=["manager_id", "period_start"], how="left"
    )
    out["treatment"] = out["treatment"].fillna(CONTROL).astype(str)
    out["n_decisions"] = out["n_decisions"].fillna(0).astype(np.int64)
    return out


def _engagement(periods: pd.DataFrame, engagement: pd.DataFrame) -> pd.DataFrame:
    """Engagement at period start (latest wave on or before), its trend and change to the end."""
    eng = engagement[["manager_id", "wave_date", "engagement", "n_respondents"]].copy()
    eng = eng.sort_values(["manager_id", "wave_date"], kind="stable")
    eng["engagement_trend"] = eng["engagement"] - eng.groupby("manager_id", sort=False)[
        "engagement"
    ].shift(1)
    eng["n_respondents"] = eng["n_respondents"].astype(np.float64)
    eng = eng.sort_values("wave_date", kind="stable")
    left = periods[["manager_id", "period_start", "period_end"]].copy()
    left["_order"] = np.arange(len(left))
    start = pd.merge_asof(
        left.sort_values("period_start", kind="stable"),
        eng.rename(columns={"wave_date": "eng_start_date"}),
        left_on="period_start",
        right_on="eng_start_date",
        by="manager_id",
        direction="backward",
    ).sort_values("_order")
    has_end = left["period_end"].notna()
    end_left = left.loc[has_end].sort_values("period_end", kind="stable")
    end = pd.merge_asof(
        end_left,
        eng[["manager_id", "wave_date", "engagement"]].rename(
            columns={"wave_date": "eng_end_date", "engagement": "engagement_end"}
        ),
        left_on="period_end",
        right_on="eng_end_date",
        by="manager_id",
        direction="backward",
    ).set_index("_order")
    out = start[["engagement", "engagement_trend", "n_respondents", "eng_start_date"]].reset_index(
        drop=True
    )
    end_value = end["engagement_end"].reindex(np.arange(len(left)))
    end_date = end["eng_end_date"].reindex(np.arange(len(left)))
    fresh = end_date.to_numpy() > out["eng_start_date"].to_numpy()
    out["delta_engagement"] = np.where(
        fresh, end_value.to_numpy(dtype=np.float64, na_value=np.nan) - out["engagement"], np.nan
    )
    return out.drop(columns=["eng_start_date"])


def _ids(frame: pd.DataFrame, columns: tuple[str, ...]) -> pd.DataFrame:
    """Copy with id/text columns as plain ``str`` dtype (missing stays missing), so keys match."""
    out = frame.copy()
    for column in columns:
        out[column] = out[column].astype("str")
    return out


def build_manager_periods(tables: Mapping[str, pd.DataFrame]) -> ManagerPeriods:
    """Build the manager-period table from the six validated tables (``Dataset.tables()``)."""
    managers = _ids(tables["managers"], ("org_id", "manager_id", "function", "level", "region"))
    competencies = _ids(tables["competencies"], ("org_id", "competency_id"))
    nudges = _ids(tables["nudges"], ("org_id", "nudge_id", "nudge_type", "competency_id"))
    feedback = _ids(tables["feedback_360"], ("manager_id", "competency_id", "rater_role"))
    engagement = _ids(tables["engagement"], ("manager_id",))
    deliveries = _ids(tables["deliveries"], ("manager_id", "nudge_id"))

    type_comps = _type_competencies(nudges, competencies)
    nudge_types = tuple(sorted({str(t) for t in nudges["nudge_type"]} - {CONTROL}))

    comp, self_mean = _competency_scores(feedback)
    periods = _wave_table(comp, self_mean, managers, competencies)

    # Targeted competency scores per nudge type (features) and the targeted outcome.
    type_scores = _type_scores(comp, managers, type_comps)
    wide = type_scores.pivot_table(
        index=["manager_id", "wave_date"], columns="nudge_type", values="target_score"
    )
    wide = wide.reindex(columns=list(nudge_types))
    wide.columns = [f"gap_{t}" for t in nudge_types]
    wide = wide.reset_index().rename(columns={"wave_date": "period_start"})
    periods = periods.merge(wide, on=["manager_id", "period_start"], how="left")
    for nudge_type in nudge_types:
        periods[f"gap_{nudge_type}"] = periods[f"gap_{nudge_type}"] - periods["score_overall"]

    decisions = _decisions(deliveries, nudges)
    decision = _period_decision(periods, decisions)
    periods = periods.merge(decision, on=["manager_id", "period_start"], how="left")

    start_target = type_scores.rename(
        columns={"wave_date": "period_start", "nudge_type": "treatment", "target_score": "t0"}
    )
    end_target = type_scores.rename(
        columns={"wave_date": "period_end", "nudge_type": "treatment", "target_score": "t1"}
    )
    periods = periods.merge(
        start_target, on=["manager_id", "period_start", "treatment"], how="left"
    )
    periods = periods.merge(end_target, on=["manager_id", "period_end", "treatment"], how="left")
    targeted = periods["t1"] - periods["t0"]
    untargeted = periods["t0"].isna() & periods["t1"].isna()
    periods["delta_360_targeted"] = np.where(untargeted, periods["delta_360"], targeted)
    periods = periods.drop(columns=["t0", "t1"])

    periods = pd.concat([periods.reset_index(drop=True), _engagement(periods, engagement)], axis=1)
    periods = pd.concat(
        [periods.reset_index(drop=True), _history(periods, decisions, nudge_types)], axis=1
    )

    profile_cols = ["manager_id", "function", "level", "region", "team_size", "tenure_months"]
    profile = managers[[*profile_cols, *TRAITS, "hire_date", "leave_date"]].rename(
        columns={"tenure_months": "tenure_at_hire"}
    )
    periods = periods.merge(profile, on="manager_id", how="left")
    months = (periods["period_start"] - periods["hire_date"]).dt.days / _DAYS_PER_MONTH
    periods["tenure_months"] = periods["tenure_at_hire"].astype(np.float64) + months.clip(lower=0)
    last_date = periods["period_start"].max()
    periods["active"] = periods["leave_date"].isna() | (periods["leave_date"] >= last_date)
    periods = periods.drop(columns=["tenure_at_hire", "hire_date", "leave_date"])
    for column in ("function", "level", "region", "org_id"):
        periods[column] = periods[column].astype(str)
    periods["team_size"] = periods["team_size"].astype(np.float64)

    hist_type_cols = [f"hist_n_{t}" for t in nudge_types]
    gap_cols = [f"gap_{t}" for t in nudge_types]
    names = (*CATEGORICAL, *PROFILE_NUMERIC, *STATE_NUMERIC, *gap_cols, *hist_type_cols)
    categories = {
        "org_id": tuple(sorted(managers["org_id"].unique())),
        "function": tuple(sorted(managers["function"].astype(str).unique())),
        "level": LEVELS,
        "region": tuple(sorted(managers["region"].astype(str).unique())),
    }
    spec = FeatureSpec(
        names=names,
        categories=categories,
        nudge_types=nudge_types,
        type_competencies=type_comps,
    )
    ordered = [
        *KEYS,
        *[n for n in names if n != "org_id"],
        "treatment",
        "propensity",
        "n_decisions",
        "opened",
        "acted",
        *OUTCOMES,
        "active",
    ]
    table = periods[ordered].sort_values(["period_start", "manager_id"], kind="stable")
    return ManagerPeriods(table=table.reset_index(drop=True), spec=spec)
