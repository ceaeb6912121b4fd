"""Privacy-safe exploration of an organisation's export (the data-exploration notebook's engine).

Every function returns an *aggregate*: a table over groups of managers, never individual rows.
All group counts and statistics go through :func:`group_summary`, which wraps
``evaluation_metrics.segment_table``: a group holding fewer than ``constants.MIN_GROUP_SIZE``
distinct managers is blanked (numbers NaN, display ``"<5"``), plus complementary suppression so a
blanked group cannot be recovered by differencing from published totals. Plots draw only what
those tables show. Nothing here reads simulation ground truth, and the nudge catalogue's free
text (``nudges.text``) is never used.

Units used throughout:
- *decision*: one manager x period (between two 360 waves of that manager, as built by
  ``features.build_manager_periods``) in which the logging policy logged a decision; its
  treatment is the nudge type chosen (``none`` = the control arm) and its propensity the
  logged probability of that choice.
- *delivery*: one row of the ``deliveries`` table (a sent nudge, or a control decision).
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Final

import numpy as np
import pandas as pd

from recommender.constants import CONTROL, MIN_GROUP_SIZE, OUTCOMES, TRAITS
from recommender.data import Dataset
from recommender.evaluation_metrics import segment_table, trait_bands
from recommender.features import build_manager_periods
from recommender.ope import single_action_policy, weight_diagnostics

if TYPE_CHECKING:
    from matplotlib.figure import Figure

DATA_DIR_ENV: Final = "NUDGE_DATA_DIR"
"""Environment variable naming the export folder the notebook explores."""

SAMPLE_DIR: Final = Path("data") / "sample"
"""The committed sample export, relative to the repository root."""

STRUCTURAL_MISSING: Final[dict[tuple[str, str], str]] = {
    ("managers", "leave_date"): "still employed",
    ("nudges", "competency_id"): "global nudge",
    ("deliveries", "nudge_id"): "control decision",
    ("deliveries", "opened"): "control decision",
    ("deliveries", "acted"): "control decision",
    ("deliveries", "rating"): "control decision or not rated",
}
"""Columns the data contract allows to be empty, with the reason."""

TEAM_SIZE_BINS: Final = (1, 3, 5, 8, 12, 20, 30, 60, 501)
TENURE_BINS: Final = (0, 6, 12, 24, 48, 96, 180, 601)
TRAIT_BINS: Final = tuple(range(0, 101, 10))
PROPENSITY_BINS: Final = (0.0, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 1.0)
RESPONDENT_BINS: Final = (1, 2, 3, 5, 8, 12, 20, 30, 60, 501)
SINGLE_RATER_ROLES: Final = ("self", "manager")
"""Rater roles with one rater by design (no anonymity threshold applies)."""
SUPPRESSED: Final = "—"
"""Display value of a blanked cell."""

# --------------------------------------------------------------------------- data folder


def resolve_data_dir(
    data_dir: str | os.PathLike[str] | None = None, start: Path | None = None
) -> Path:
    """The export folder to explore.

    Order: ``data_dir`` if given; else the ``NUDGE_DATA_DIR`` environment variable; else the
    repository's ``data/sample``, found by walking up from ``start`` (default: the current
    directory, which in Jupyter is the notebook's folder) and finally from this package's
    location (editable install). Raises FileNotFoundError if the folder does not exist.
    """
    if data_dir is None:
        data_dir = os.environ.get(DATA_DIR_ENV) or None
    if data_dir is not None:
        folder = Path(data_dir).expanduser().resolve()
        if not folder.is_dir():
            raise FileNotFoundError(f"data folder {folder} does not exist")
        return folder
    here = (start or Path.cwd()).resolve()
    package = Path(__file__).resolve().parent
    for base in (here, package):
        for candidate in (base, *base.parents):
            if (candidate / SAMPLE_DIR).is_dir():
                return candidate / SAMPLE_DIR
    raise FileNotFoundError(
        f"no {SAMPLE_DIR} found above {here}; pass the folder or set {DATA_DIR_ENV}"
    )


# --------------------------------------------------------------------------- suppression


def group_summary(
    frame: pd.DataFrame,
    by: Sequence[str] = (),
    value_columns: Sequence[str] = (),
    unit_col: str = "manager_id",
    min_group: int = MIN_GROUP_SIZE,
    confidence: float = 0.95,
) -> pd.DataFrame:
    """Per-group row count, distinct managers and means with intervals, small groups suppressed.

    frame: one row per observation (manager, manager x wave, decision, delivery, ...) with the
    ``by`` columns, numeric ``value_columns`` and ``unit_col`` (pseudonymous manager id).
    ``by=()`` summarises the whole frame as one group (column ``group`` = ``"all"``).
    Returns ``segment_table``'s columns (``n_units`` = distinct managers, ``n_units_display``,
    ``<col>_mean``/``_ci_low``/``_ci_high`` with intervals clustered by manager,
    ``suppressed``) plus ``n_rows``; every number of a suppressed group is NaN.
    """
    by = list(by)
    data = frame
    if not by:
        data = frame.assign(group="all")
        by = ["group"]
    columns = [*by, "n_rows", "n_units", "n_units_display", "suppressed"]
    for col in value_columns:
        columns += [f"{col}_mean", f"{col}_ci_low", f"{col}_ci_high"]
    if data.empty:
        return pd.DataFrame(columns=columns)
    table = segment_table(
        data, by, list(value_columns), unit_col=unit_col, min_group=min_group, confidence=confidence
    )
    sizes = data.groupby(by, dropna=False, sort=True, observed=True).size().to_numpy()
    table.insert(len(by), "n_rows", np.where(table["suppressed"], np.nan, sizes.astype(float)))
    return table.reset_index(drop=True)


def _blank(stats: pd.DataFrame, suppressed: np.ndarray, keep: Sequence[str]) -> pd.DataFrame:
    """Set every column of ``stats`` except ``keep`` to NaN where ``suppressed``."""
    out = stats.copy()
    for col in out.columns:
        if col not in keep:
            out[col] = out[col].astype(float).where(~suppressed, np.nan)
    out["suppressed"] = suppressed
    return out


def format_summary(
    table: pd.DataFrame,
    value_columns: Sequence[str] = (),
    percent: Sequence[str] = (),
    digits: int = 2,
) -> pd.DataFrame:
    """A readable view of a :func:`group_summary` table: ``mean [low, high]`` strings.

    Keeps the group columns, shows ``managers`` (``"<5"``/``"suppressed"`` when blanked) and
    ``rows``; ``percent`` columns (shares 0-1) are shown as percentages with the interval
    clipped to [0, 100]; a ``share`` column (from :func:`category_counts`) too. Blanked cells
    read ``"—"``.
    """
    stat_cols = {"n_rows", "n_units", "n_units_display", "suppressed"}
    for col in value_columns:
        stat_cols |= {f"{col}_mean", f"{col}_ci_low", f"{col}_ci_high"}
    group_cols = [c for c in table.columns if c not in stat_cols]
    out = table[group_cols].copy()
    for col in group_cols:
        if pd.api.types.is_datetime64_any_dtype(out[col]):
            out[col] = out[col].dt.strftime("%Y-%m-%d")
    out["managers"] = table["n_units_display"].astype(str)
    out["rows"] = [SUPPRESSED if pd.isna(v) else f"{int(v):,}" for v in table["n_rows"]]
    if "share" in group_cols:
        out = out.drop(columns="share")
        out["share"] = [SUPPRESSED if pd.isna(v) else f"{100 * v:.1f}%" for v in table["share"]]
    for col in value_columns:
        scale, unit, nd = (100.0, "%", 1) if col in percent else (1.0, "", digits)
        cells = []
        for m, lo, hi in zip(
            table[f"{col}_mean"], table[f"{col}_ci_low"], table[f"{col}_ci_high"], strict=True
        ):
            if pd.isna(m):
                cells.append(SUPPRESSED)
            elif pd.isna(lo) or pd.isna(hi):
                cells.append(f"{m * scale:.{nd}f}{unit}")
            else:
                if col in percent:
                    lo, hi = max(lo, 0.0), min(hi, 1.0)
                cells.append(f"{m * scale:.{nd}f}{unit} [{lo * scale:.{nd}f}, {hi * scale:.{nd}f}]")
        out[col] = cells
    return out.reset_index(drop=True)


def control_first(
    table: pd.DataFrame, column: str = "treatment", within: Sequence[str] = ()
) -> pd.DataFrame:
    """Rows of ``table`` with the control arm first (inside each ``within`` group, e.g.
    ``org_id``), the nudge types after it in their existing order."""
    key = (table[column] != CONTROL).to_numpy()
    ordered = table.assign(_not_control=key).sort_values([*within, "_not_control"], kind="stable")
    return ordered.drop(columns="_not_control").reset_index(drop=True)


def category_counts(
    frame: pd.DataFrame,
    column: str,
    by: Sequence[str] = (),
    unit_col: str = "manager_id",
    min_group: int = MIN_GROUP_SIZE,
) -> pd.DataFrame:
    """Rows and distinct managers per value of ``column`` (within each ``by`` group).

    Returns the ``by`` columns, ``column``, ``n_rows``, ``n_units``, ``n_units_display``,
    ``share`` (of the ``by`` group's rows, 0-1) and ``suppressed``.
    """
    table = group_summary(frame, [*by, column], (), unit_col, min_group)
    if by and not table.empty:
        totals = frame.groupby(list(by), dropna=False, sort=True, observed=True).size()
        table = table.merge(totals.rename("_total").reset_index(), on=list(by), how="left")
        table["share"] = table["n_rows"] / table.pop("_total").astype(float)
    else:
        table["share"] = table["n_rows"].astype(float) / max(len(frame), 1)
    return table


def value_distribution(
    frame: pd.DataFrame,
    column: str,
    bins: Sequence[float] | None = None,
    by: Sequence[str] = (),
    unit_col: str = "manager_id",
    min_group: int = MIN_GROUP_SIZE,
) -> pd.DataFrame:
    """Histogram table of a numeric column, bins over fewer than ``min_group`` managers blanked.

    bins: increasing edges; bins are ``[e0, e1), ..., [e_{k-1}, e_k]`` (last one closed) and
    values outside ``[e0, e_k]`` raise ValueError. ``None``: one bin per distinct value (for
    small integer counts such as ``n_raters``). Missing values are left out. Empty bins are
    not listed.
    Returns the ``by`` columns, ``bin`` (ordered label), ``left`` (bin start or the value),
    ``n_rows``, ``n_units``, ``n_units_display``, ``share`` (of the ``by`` group's non-missing
    rows, 0-1) and ``suppressed``.
    """
    data = frame.loc[frame[column].notna(), [*by, column, unit_col]].copy()
    values = data[column].to_numpy(dtype=float)
    if bins is None:
        distinct = np.unique(values)
        data["left"] = values
        labels = [f"{v:g}" for v in distinct]
        data["bin"] = pd.Categorical([f"{v:g}" for v in values], categories=labels, ordered=True)
    else:
        edges = np.asarray(bins, dtype=float)
        if edges.ndim != 1 or edges.shape[0] < 2 or not np.all(np.diff(edges) > 0):
            raise ValueError(f"bins must be strictly increasing with >= 2 edges, got {bins}")
        if np.any((values < edges[0]) | (values > edges[-1])):
            raise ValueError(f"{column} has values outside the bins [{edges[0]}, {edges[-1]}]")
        codes = np.clip(np.searchsorted(edges, values, side="right") - 1, 0, edges.shape[0] - 2)
        labels = [
            f"[{edges[i]:g}, {edges[i + 1]:g}{']' if i == edges.shape[0] - 2 else ')'}"
            for i in range(edges.shape[0] - 1)
        ]
        data["bin"] = pd.Categorical.from_codes(codes, categories=labels, ordered=True)
        data["left"] = edges[codes]
    table = category_counts(data, "bin", by, unit_col, min_group)
    if table.empty:
        return table.assign(left=pd.Series(dtype=float))
    lefts = data.groupby("bin", observed=True)["left"].first()
    table.insert(len(by) + 1, "left", table["bin"].map(lefts).astype(float).to_numpy())
    return table


def numeric_profile(
    frame: pd.DataFrame,
    columns: Sequence[str],
    by: Sequence[str] = (),
    unit_col: str = "manager_id",
    min_group: int = MIN_GROUP_SIZE,
) -> pd.DataFrame:
    """Mean and quantiles (p10, p25, median, p75, p90) of numeric columns per group.

    No minimum or maximum (those are single managers' values). Returns the ``by`` columns,
    ``variable``, ``n_units``, ``mean``, ``p10``, ``p25``, ``median``, ``p75``, ``p90`` and
    ``suppressed``; groups with fewer than ``min_group`` managers are blanked.
    """
    long = (
        frame[[*by, unit_col, *columns]]
        .melt(id_vars=[*by, unit_col], value_vars=list(columns), var_name="variable")
        .dropna(subset=["value"])
    )
    keys = [*by, "variable"]
    if long.empty:
        return pd.DataFrame(columns=[*keys, "n_units", "mean", "p10", "p25", "median", "p75"])
    long["value"] = long["value"].astype(float)
    grouped = long.groupby(keys, sort=True, observed=True)
    stats = grouped["value"].agg(
        mean="mean",
        p10=lambda v: v.quantile(0.10),
        p25=lambda v: v.quantile(0.25),
        median="median",
        p75=lambda v: v.quantile(0.75),
        p90=lambda v: v.quantile(0.90),
    )
    stats.insert(0, "n_units", grouped[unit_col].nunique().astype(float))
    stats = stats.reset_index()
    mask = group_summary(long, keys, (), unit_col, min_group)["suppressed"].to_numpy(dtype=bool)
    return _blank(stats, mask, keys)


# --------------------------------------------------------------------------- data quality


def table_overview(dataset: Dataset) -> pd.DataFrame:
    """One row per table: rows, columns, distinct managers (if it has ``manager_id``),
    empty cells and their share of all cells."""
    rows = []
    for name, table in dataset.tables().items():
        cells = table.size
        missing = int(table.isna().sum().sum())
        rows.append(
            {
                "table": name,
                "rows": len(table),
                "columns": table.shape[1],
                "managers": table["manager_id"].nunique() if "manager_id" in table else np.nan,
                "empty_cells": missing,
                "empty_share": missing / cells if cells else np.nan,
            }
        )
    return pd.DataFrame(rows)


def missing_values(dataset: Dataset) -> pd.DataFrame:
    """Every column with empty cells: count, share of rows and whether the contract expects it.

    Returns columns table, column, n_missing, share_missing (0-1), reason (``"unexpected"``
    for columns the contract requires; validation makes that impossible on a loaded export).
    """
    rows = []
    for name, table in dataset.tables().items():
        counts = table.isna().sum()
        for column, n in counts[counts > 0].items():
            rows.append(
                {
                    "table": name,
                    "column": column,
                    "n_missing": int(n),
                    "share_missing": n / len(table),
                    "reason": STRUCTURAL_MISSING.get((name, str(column)), "unexpected"),
                }
            )
    return pd.DataFrame(rows, columns=["table", "column", "n_missing", "share_missing", "reason"])


def _employed(managers: pd.DataFrame, dates: Sequence[pd.Timestamp]) -> pd.DataFrame:
    """Manager x date pairs (columns org_id, manager_id, wave_date) with the manager employed."""
    if len(dates) == 0:
        return pd.DataFrame(columns=["org_id", "manager_id", "wave_date"])
    base = managers[["org_id", "manager_id", "hire_date", "leave_date"]]
    cross = base.merge(pd.DataFrame({"wave_date": list(dates)}), how="cross")
    on = (cross["hire_date"] <= cross["wave_date"]) & (
        cross["leave_date"].isna() | (cross["leave_date"] >= cross["wave_date"])
    )
    return cross.loc[on, ["org_id", "manager_id", "wave_date"]].reset_index(drop=True)


def _has_rows(pairs: pd.DataFrame, table: pd.DataFrame) -> np.ndarray:
    """Bool per row of ``pairs``: does ``table`` have a row for that (manager_id, wave_date)."""
    seen = pd.MultiIndex.from_frame(table[["manager_id", "wave_date"]].drop_duplicates())
    return np.asarray(pd.MultiIndex.from_frame(pairs[["manager_id", "wave_date"]]).isin(seen))


def wave_coverage(dataset: Dataset, min_group: int = MIN_GROUP_SIZE) -> pd.DataFrame:
    """Per survey and wave: managers employed on the wave date and the share with data.

    Returns a :func:`group_summary` table by (``survey``, ``wave_date``) with ``n_units`` =
    managers employed that day and ``covered_*`` = share (0-1) of them with at least one row
    in that survey (``feedback_360`` or ``engagement``) for that wave. Gaps mix non-response
    with managers not yet (or no longer) rated, e.g. recent joiners.
    """
    parts = []
    for survey in ("feedback_360", "engagement"):
        table = getattr(dataset, survey)
        waves = sorted(pd.to_datetime(table["wave_date"].unique()))
        pairs = _employed(dataset.managers, waves)
        pairs["covered"] = _has_rows(pairs, table).astype(float)
        pairs["survey"] = survey
        parts.append(pairs)
    frame = pd.concat(parts, ignore_index=True)
    return group_summary(frame, ["survey", "wave_date"], ["covered"], min_group=min_group)


def rater_response(
    dataset: Dataset,
    by: Sequence[str] = ("rater_role",),
    min_raters: int = 3,
    min_group: int = MIN_GROUP_SIZE,
) -> pd.DataFrame:
    """360 non-response and rater counts per rater role (optionally also per ``wave_date``).

    Unit: employed manager x 360 wave x rater role. Value columns: ``responded`` (0/1: the role
    has at least one row), ``n_raters`` (raters in the role, max over competencies; missing if
    no row) and ``few_raters`` (0/1: fewer than ``min_raters`` raters among responding peers
    or direct reports; missing for the single-rater roles ``self`` and ``manager``).
    Returns a :func:`group_summary` table by ``by``.
    """
    feedback = dataset.feedback_360
    waves = sorted(pd.to_datetime(feedback["wave_date"].unique()))
    pairs = _employed(dataset.managers, waves)
    roles = pd.DataFrame({"rater_role": sorted(feedback["rater_role"].astype(str).unique())})
    frame = pairs.merge(roles, how="cross")
    raters = rater_counts(dataset)
    frame = frame.merge(raters, on=["manager_id", "wave_date", "rater_role"], how="left")
    frame["n_raters"] = frame["n_raters"].astype(float)
    frame["responded"] = frame["n_raters"].notna().astype(float)
    multi = frame["n_raters"].notna() & ~frame["rater_role"].isin(SINGLE_RATER_ROLES)
    frame["few_raters"] = np.where(multi, (frame["n_raters"] < min_raters).astype(float), np.nan)
    return group_summary(
        frame, list(by), ["responded", "n_raters", "few_raters"], min_group=min_group
    )


def rater_counts(dataset: Dataset) -> pd.DataFrame:
    """Raters per manager x wave x role (max over competencies): manager_id, wave_date,
    rater_role, n_raters. Input for :func:`value_distribution` (not for display)."""
    feedback = dataset.feedback_360
    return (
        feedback.assign(rater_role=feedback["rater_role"].astype(str))
        .groupby(["manager_id", "wave_date", "rater_role"], observed=True)["n_raters"]
        .max()
        .reset_index()
    )


def engagement_response(
    dataset: Dataset, by: Sequence[str] = (), min_group: int = MIN_GROUP_SIZE
) -> pd.DataFrame:
    """Engagement respondents per manager x wave, summarised per group.

    Value columns: ``n_respondents``, ``response_rate`` (n_respondents / team_size, capped at
    1; team size is the one in ``managers``) and ``few_respondents`` (0/1: fewer than
    ``MIN_GROUP_SIZE`` respondents, i.e. a team score resting on very few people).
    ``by`` may use ``wave_date`` or any ``managers`` column (e.g. ``org_id``).
    """
    frame = engagement_frame(dataset)
    return group_summary(
        frame,
        list(by),
        ["n_respondents", "response_rate", "few_respondents"],
        min_group=min_group,
    )


def engagement_frame(dataset: Dataset) -> pd.DataFrame:
    """Engagement rows joined to the manager profile, with ``response_rate`` and
    ``few_respondents`` (input for the summaries, not for display)."""
    eng = dataset.engagement.merge(
        dataset.managers[["manager_id", "org_id", "team_size"]], on="manager_id", how="left"
    )
    eng["n_respondents"] = eng["n_respondents"].astype(float)
    eng["response_rate"] = (eng["n_respondents"] / eng["team_size"]).clip(upper=1.0)
    eng["few_respondents"] = (eng["n_respondents"] < MIN_GROUP_SIZE).astype(float)
    return eng


def date_ranges(dataset: Dataset) -> pd.DataFrame:
    """First and last date and distinct dates of the survey waves and of the delivery log."""
    rows = []
    for table, column in (
        ("feedback_360", "wave_date"),
        ("engagement", "wave_date"),
        ("deliveries", "delivered_at"),
    ):
        values = getattr(dataset, table)[column]
        rows.append(
            {
                "table": table,
                "column": column,
                "first": values.min().date() if len(values) else None,
                "last": values.max().date() if len(values) else None,
                "distinct_days": values.dt.normalize().nunique(),
            }
        )
    return pd.DataFrame(rows)


# --------------------------------------------------------------------------- managers


def trait_frame(managers: pd.DataFrame, by: Sequence[str] = ()) -> pd.DataFrame:
    """Managers' Big Five traits in long form: ``by`` columns, manager_id, trait, score and
    ``band`` (low/mid/high, ``evaluation_metrics.trait_bands``). Input for the summaries."""
    long = managers.melt(
        id_vars=[*by, "manager_id"], value_vars=list(TRAITS), var_name="trait", value_name="score"
    )
    long["trait"] = pd.Categorical(long["trait"], categories=list(TRAITS), ordered=True)
    long["band"] = trait_bands(long["score"].to_numpy(dtype=float))
    return long


# --------------------------------------------------------------------------- nudges


def catalogue_overview(dataset: Dataset) -> pd.DataFrame:
    """Catalogue entries per owner (org or ``global``) x nudge type (never the nudge text)."""
    nudges = dataset.nudges
    counts = nudges.groupby(["org_id", "nudge_type"], observed=True).size()
    return counts.unstack(fill_value=0).astype(int)


def decision_table(dataset: Dataset) -> pd.DataFrame:
    """One row per decision (manager x period with a logged decision); not for display.

    Columns: org_id, manager_id, period_start, period_end, level, team_size, tenure_months,
    score_overall (observed 360, 1-5, at period start), engagement (0-100, at period start),
    treatment (nudge type or ``none``), is_control (0/1), propensity (of the received arm),
    n_deliveries (delivery rows logged in the period), n_sent (nudges sent: 0 for control)
    and the OUTCOMES (NaN while the next wave is not observed).
    """
    periods = build_manager_periods(dataset.tables()).table
    decided = periods.loc[periods["n_decisions"] > 0].copy()
    decided["is_control"] = (decided["treatment"] == CONTROL).astype(float)
    decided["n_deliveries"] = decided["n_decisions"].astype(float)
    decided["n_sent"] = np.where(decided["is_control"] > 0, 0.0, decided["n_deliveries"])
    columns = [
        "org_id",
        "manager_id",
        "period_start",
        "period_end",
        "level",
        "team_size",
        "tenure_months",
        "score_overall",
        "engagement",
        "treatment",
        "is_control",
        "propensity",
        "n_deliveries",
        "n_sent",
        *OUTCOMES,
    ]
    return decided[columns].reset_index(drop=True)


def delivery_table(dataset: Dataset, sent_only: bool = True) -> pd.DataFrame:
    """Delivery rows with org and nudge type; not for display.

    Columns: org_id, manager_id, month (``YYYY-MM`` of delivery, UTC), treatment,
    opened, acted (0/1 floats, NaN for control rows), acted_if_opened (acted among opened,
    NaN otherwise), rated (0/1), rating (1-5 or NaN). ``sent_only`` drops control rows.
    """
    d = dataset.deliveries
    nudges, managers = dataset.nudges, dataset.managers
    type_of = pd.Series(nudges["nudge_type"].astype(str).to_numpy(), index=nudges["nudge_id"])
    org_of = pd.Series(managers["org_id"].astype(str).to_numpy(), index=managers["manager_id"])
    out = pd.DataFrame(
        {
            "org_id": d["manager_id"].map(org_of).astype(str),
            "manager_id": d["manager_id"].astype(str),
            "month": d["delivered_at"].dt.strftime("%Y-%m"),
            "treatment": d["nudge_id"].astype(object).map(type_of).fillna(CONTROL).astype(str),
            "opened": d["opened"].astype("Float64").to_numpy(dtype=float, na_value=np.nan),
            "acted": d["acted"].astype("Float64").to_numpy(dtype=float, na_value=np.nan),
            "rating": d["rating"].astype("Float64").to_numpy(dtype=float, na_value=np.nan),
        }
    )
    out["acted_if_opened"] = out["acted"].where(out["opened"] == 1.0)
    out["rated"] = np.where(out["treatment"] == CONTROL, np.nan, out["rating"].notna())
    if sent_only:
        out = out.loc[out["treatment"] != CONTROL]
    return out.reset_index(drop=True)


def propensity_overlap(
    decisions: pd.DataFrame,
    threshold: float = 0.05,
    min_ess_fraction: float = 0.1,
    min_group: int = MIN_GROUP_SIZE,
) -> pd.DataFrame:
    """Overlap diagnostics of the logged propensities, one row per treatment (control first).

    decisions: :func:`decision_table` output (treatment, propensity, manager_id).
    Columns: treatment, n_decisions, n_units (managers), share_of_decisions, p_min, p05,
    p_median (logged propensity of the received arm), share_below (share of the arm's
    decisions with propensity < ``threshold``), max_weight (1 / p_min), ess (Kish effective
    sample size of the IPS weights of "always this arm", ``ope.weight_diagnostics``), ess_fraction
    (ess / all decisions), low_overlap (ess_fraction < ``min_ess_fraction``), suppressed.
    Arms with fewer than ``min_group`` managers are blanked.
    """
    data = decisions.loc[decisions["propensity"].notna()]
    arms = sorted(data["treatment"].unique(), key=lambda t: (t != CONTROL, t))
    columns = [
        "treatment",
        "n_decisions",
        "n_units",
        "share_of_decisions",
        "p_min",
        "p05",
        "p_median",
        "share_below",
        "max_weight",
        "ess",
        "ess_fraction",
        "low_overlap",
    ]
    if data.empty:
        return pd.DataFrame(columns=[*columns, "suppressed"])
    codes = pd.Categorical(data["treatment"], categories=arms).codes.astype(np.int64)
    prop = data["propensity"].to_numpy(dtype=float)
    n, k = len(data), len(arms)
    rows = []
    for a, arm in enumerate(arms):
        p = prop[codes == a]
        diag = weight_diagnostics(
            codes, prop, single_action_policy(a, n, k), min_ess_fraction=min_ess_fraction
        )
        rows.append(
            {
                "treatment": arm,
                "n_decisions": float(p.size),
                "n_units": float(data.loc[codes == a, "manager_id"].nunique()),
                "share_of_decisions": p.size / n,
                "p_min": float(p.min()),
                "p05": float(np.quantile(p, 0.05)),
                "p_median": float(np.median(p)),
                "share_below": float(np.mean(p < threshold)),
                "max_weight": float(1.0 / p.min()),
                "ess": diag.ess,
                "ess_fraction": diag.ess_fraction,
                "low_overlap": float(diag.low_overlap),
            }
        )
    stats = pd.DataFrame(rows, columns=columns)
    summary = group_summary(data, ["treatment"], (), min_group=min_group)
    suppressed = summary.set_index("treatment").loc[arms, "suppressed"].to_numpy(dtype=bool)
    out = _blank(stats, suppressed, ["treatment"])
    out["low_overlap"] = out["low_overlap"].map({1.0: True, 0.0: False})
    return out


# --------------------------------------------------------------------------- plots


def _new_figure(width: float, height: float) -> Figure:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def _facets(table: pd.DataFrame, facet: str | None) -> list[tuple[str, pd.DataFrame]]:
    if facet is None:
        return [("", table)]
    keys = table[facet].drop_duplicates().tolist()
    if isinstance(table[facet].dtype, pd.CategoricalDtype):
        keys = [c for c in table[facet].cat.categories if c in set(keys)]
    return [(str(key), table.loc[table[facet] == key]) for key in keys]


def _bin_axis(table: pd.DataFrame) -> list[str]:
    """Bin labels shared by every panel: the table's bin categories from the first to the last
    one that occurs (so panels line up and empty bins inside the range keep their slot)."""
    present = set(table["bin"].astype(str))
    if isinstance(table["bin"].dtype, pd.CategoricalDtype):
        labels = [str(c) for c in table["bin"].cat.categories]
    else:
        labels = sorted(present)
    used = [i for i, label in enumerate(labels) if label in present]
    return labels[used[0] : used[-1] + 1] if used else []


def plot_distribution(
    table: pd.DataFrame,
    facet: str | None = None,
    value: str = "share",
    title: str = "",
    xlabel: str = "",
    ncols: int = 3,
    reference: float | None = None,
) -> Figure:
    """Bar chart of a :func:`value_distribution` table, one panel per ``facet`` value.

    Bars are the table's bins in order on one axis shared by all panels (unequal widths
    shown as equal slots); suppressed bins are not drawn and each panel notes how many were
    hidden. ``value``: ``share``
    (0-1 of the panel's rows) or ``n_rows``. ``reference``: optional bin edge marked with a
    dashed line (e.g. a propensity threshold), drawn before the first bin starting at it.
    """
    panels = _facets(table, facet)
    ncols = max(1, min(ncols, len(panels)))
    nrows = int(np.ceil(len(panels) / ncols))
    fig = _new_figure(3.6 * ncols, 2.8 * nrows)
    axes = fig.subplots(nrows, ncols, squeeze=False)
    labels = _bin_axis(table)
    position = {label: i for i, label in enumerate(labels)}
    lefts = table.groupby(table["bin"].astype(str), sort=False)["left"].first()
    x_ref = None
    if reference is not None:
        at = [position[b] for b in labels if b in lefts.index and lefts[b] >= reference]
        x_ref = min(at) - 0.5 if at else None
    for ax, (name, sub) in zip(axes.flat, panels, strict=False):
        heights = sub[value].to_numpy(dtype=float)
        shown = ~np.isnan(heights)
        x = np.array([position[str(b)] for b in sub["bin"]], dtype=float)
        ax.bar(x[shown], heights[shown], color="tab:blue")
        ax.set_xticks(np.arange(len(labels)), labels, rotation=60, ha="right", fontsize=7)
        ax.set_xlim(-0.6, len(labels) - 0.4)
        if x_ref is not None:
            ax.axvline(x_ref, color="tab:red", linestyle="--", linewidth=1)
        hidden = int((~shown).sum())
        ax.set_title(name + (f" ({hidden} bins hidden: <5 managers)" if hidden else ""), fontsize=9)
        ax.set_ylabel("share of rows" if value == "share" else value, fontsize=8)
        ax.set_xlabel(xlabel, fontsize=8)
        ax.grid(axis="y", alpha=0.3)
    for ax in list(axes.flat)[len(panels) :]:
        ax.set_visible(False)
    if title:
        fig.suptitle(title)
    return fig


def plot_counts(
    table: pd.DataFrame,
    label: str,
    value: str = "n_rows",
    facet: str | None = None,
    title: str = "",
    xlabel: str = "",
) -> Figure:
    """Horizontal bars of ``value`` per ``label`` (a :func:`group_summary`-style table), one
    panel per ``facet`` value; suppressed groups are left out (noted in the panel title)."""
    panels = _facets(table, facet)
    fig = _new_figure(4.2 * len(panels), 0.6 + 0.32 * max(len(p) for _, p in panels))
    axes = fig.subplots(1, len(panels), squeeze=False)[0]
    for ax, (name, sub) in zip(axes, panels, strict=True):
        values = sub[value].to_numpy(dtype=float)
        shown = ~np.isnan(values)
        labels = sub[label].astype(str).to_numpy()[shown]
        y = np.arange(shown.sum())
        ax.barh(y, values[shown], color="tab:blue")
        ax.set_yticks(y, labels, fontsize=8)
        ax.invert_yaxis()
        hidden = int((~shown).sum())
        ax.set_title(name + (f" ({hidden} hidden: <5 managers)" if hidden else ""), fontsize=9)
        ax.set_xlabel(xlabel or value, fontsize=8)
        ax.grid(axis="x", alpha=0.3)
    if title:
        fig.suptitle(title)
    return fig


def plot_group_means(
    table: pd.DataFrame,
    label: str,
    value_columns: Sequence[str],
    titles: Mapping[str, str] | None = None,
    reference_label: str | None = None,
    title: str = "",
) -> Figure:
    """Mean with interval per group (rows of a :func:`group_summary` table), one panel per
    value column. Suppressed groups are left out. ``reference_label``: a group whose mean is
    drawn as a dashed vertical line (e.g. the control arm)."""
    titles = dict(titles or {})
    shown = table.loc[~table["suppressed"].astype(bool)]
    fig = _new_figure(3.8 * len(value_columns), 0.8 + 0.32 * max(len(shown), 1))
    axes = fig.subplots(1, len(value_columns), squeeze=False, sharey=True)[0]
    labels = shown[label].astype(str).to_numpy()
    y = np.arange(len(labels))
    for ax, col in zip(axes, value_columns, strict=True):
        mean = shown[f"{col}_mean"].to_numpy(dtype=float)
        low = shown[f"{col}_ci_low"].to_numpy(dtype=float)
        high = shown[f"{col}_ci_high"].to_numpy(dtype=float)
        err = np.nan_to_num(np.vstack([mean - low, high - mean]), nan=0.0).clip(min=0)
        ax.errorbar(mean, y, xerr=err, fmt="o", capsize=3, color="tab:blue")
        if reference_label is not None and reference_label in set(labels):
            ref = mean[labels == reference_label][0]
            if np.isfinite(ref):
                ax.axvline(ref, color="grey", linestyle="--", linewidth=1)
        ax.set_yticks(y, labels, fontsize=8)
        ax.set_title(titles.get(col, col), fontsize=9)
        ax.grid(axis="x", alpha=0.3)
    axes[0].invert_yaxis()
    if title:
        fig.suptitle(title)
    return fig
