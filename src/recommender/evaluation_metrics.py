"""Evaluation metrics beyond policy value: effect error, oracle-normalised value, uplift
(Qini) curves, calibration by decile, and privacy-safe segment tables.

Pure functions over numpy arrays / pandas frames. Metrics that need the simulation's ground
truth (``pehe``, ``true_policy_value``, ``oracle_policy_value``) are only meaningful on
simulated data; everything else works on logged data.

Privacy: :func:`segment_table` and :func:`calibration_by_decile` blank every aggregate over
fewer than ``constants.MIN_GROUP_SIZE`` distinct managers, and apply complementary
suppression so a blanked group cannot be recovered by differencing from totals.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from statistics import NormalDist

import numpy as np
import pandas as pd

from recommender.constants import MIN_GROUP_SIZE
from recommender.ope import (
    _as_1d_float,
    _as_mask,
    _as_matrix,
    _as_probs,
    _check_bootstrap_args,
    bootstrap_means,
    percentile_interval,
)

# --------------------------------------------------------------------------- effect error


@dataclass(frozen=True)
class PEHEResult:
    """Precision in estimating heterogeneous effects (root mean squared effect error).

    per_type: array of shape (n_types,), RMSE of the predicted effect of each type, in the
        outcome's units. mean: mean of ``per_type``.
    per_type_ci: array of shape (n_types, 2) bootstrap percentile interval, or None.
    mean_ci: (low, high) bootstrap interval of ``mean``, or None.
    """

    per_type: np.ndarray
    mean: float
    per_type_ci: np.ndarray | None = None
    mean_ci: tuple[float, float] | None = None

    def to_dict(self, type_names: Sequence[str] | None = None) -> dict[str, float]:
        """Flat metrics ``{"pehe_mean": .., "pehe_<type>": ..}`` (MLflow-friendly)."""
        names = (
            list(type_names)
            if type_names is not None
            else [str(i) for i in range(self.per_type.shape[0])]
        )
        if len(names) != self.per_type.shape[0]:
            raise ValueError(f"type_names must have {self.per_type.shape[0]} entries")
        out = {"pehe_mean": self.mean}
        out.update({f"pehe_{name}": float(v) for name, v in zip(names, self.per_type, strict=True)})
        if self.mean_ci is not None:
            out["pehe_mean_ci_low"], out["pehe_mean_ci_high"] = self.mean_ci
        return out


def pehe(
    effect_pred: np.ndarray,
    effect_true: np.ndarray,
    n_bootstrap: int = 0,
    confidence: float = 0.95,
    random_state: int | None = 0,
) -> PEHEResult:
    """Per-type RMSE between predicted and true individual effects.

    effect_pred, effect_true: arrays of shape (n,) or (n, n_types), effect of each type vs
    control for each unit (for the uplift model's (n, n_types, n_outcomes) output, call once
    per outcome). n_bootstrap > 0 adds bootstrap percentile intervals over units.
    """
    pred = np.asarray(effect_pred, dtype=float)
    true = np.asarray(effect_true, dtype=float)
    if pred.ndim == 1:
        pred = pred[:, None]
    if true.ndim == 1:
        true = true[:, None]
    if pred.ndim != 2 or pred.shape[0] == 0:
        raise ValueError(f"effect_pred must be of shape (n,) or (n, n_types), got {pred.shape}")
    if true.shape != pred.shape:
        raise ValueError(f"effect_true must have shape {pred.shape}, got {true.shape}")
    if not np.all(np.isfinite(pred)):
        raise ValueError("effect_pred contains NaN or infinite values")
    if not np.all(np.isfinite(true)):
        raise ValueError("effect_true contains NaN or infinite values")
    _check_bootstrap_args(n_bootstrap, confidence)
    sq = (pred - true) ** 2
    per_type = np.sqrt(sq.mean(axis=0))
    if n_bootstrap == 0:
        return PEHEResult(per_type, float(per_type.mean()))
    boot = np.sqrt(bootstrap_means(sq, n_bootstrap, random_state))
    per_type_ci = np.array(
        [percentile_interval(boot[:, j], confidence) for j in range(sq.shape[1])]
    )
    mean_ci = percentile_interval(boot.mean(axis=1), confidence)
    return PEHEResult(per_type, float(per_type.mean()), per_type_ci, mean_ci)


# --------------------------------------------------------------------------- true value


def true_policy_value(true_outcome: np.ndarray, target_probs: np.ndarray) -> float:
    """True value of a policy on simulated data: ``mean_i sum_a pi(a|x_i) mu(x_i, a)``.

    true_outcome: array of shape (n, n_actions), true expected outcome of every action for
    every unit (from the simulation's ground truth). target_probs: (n, n_actions), rows sum 1.
    """
    mu = np.asarray(true_outcome, dtype=float)
    if mu.ndim != 2 or mu.shape[0] == 0:
        raise ValueError(f"true_outcome must be 2-D (n, n_actions), got shape {mu.shape}")
    mu = _as_matrix("true_outcome", mu, mu.shape[0])
    pi = _as_probs("target_probs", target_probs, mu.shape[0], mu.shape[1])
    return float(np.einsum("ij,ij->i", pi, mu).mean())


def oracle_policy_value(true_outcome: np.ndarray, mask: np.ndarray | None = None) -> float:
    """Value of the oracle taking each unit's best eligible action: ``mean_i max_a mu(x_i, a)``."""
    mu = np.asarray(true_outcome, dtype=float)
    if mu.ndim != 2 or mu.shape[0] == 0:
        raise ValueError(f"true_outcome must be 2-D (n, n_actions), got shape {mu.shape}")
    mu = _as_matrix("true_outcome", mu, mu.shape[0])
    m = _as_mask(mask, *mu.shape)
    return float(np.where(m, mu, -np.inf).max(axis=1).mean())


def normalised_policy_value(v_policy: float, v_random: float, v_oracle: float) -> float:
    """``(v_policy - v_random) / (v_oracle - v_random)``: 0 = random, 1 = oracle.

    Returns NaN with a RuntimeWarning when the oracle is no better than random (every action
    equally good, so the ratio is undefined). Values below 0 mean worse than random.
    """
    values = np.array([v_policy, v_random, v_oracle], dtype=float)
    if not np.all(np.isfinite(values)):
        raise ValueError(f"v_policy, v_random, v_oracle must be finite, got {values.tolist()}")
    span = v_oracle - v_random
    if abs(span) <= 1e-12 * max(1.0, abs(v_oracle), abs(v_random)):
        warnings.warn(
            "normalised_policy_value is undefined: v_oracle equals v_random",
            RuntimeWarning,
            stacklevel=2,
        )
        return float("nan")
    return float((v_policy - v_random) / span)


def regret(v_policy: float, v_oracle: float) -> float:
    """Regret vs the oracle, ``v_oracle - v_policy`` (>= 0 for true values), reward units."""
    return float(v_oracle - v_policy)


# --------------------------------------------------------------------------- uplift curves


def _uplift_inputs(
    uplift_pred: object, rewards: object, treated: object, propensity: object | None
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    u = _as_1d_float("uplift_pred", uplift_pred)
    n = u.shape[0]
    r = _as_1d_float("rewards", rewards, n)
    t = np.asarray(treated)
    if t.ndim != 1 or t.shape[0] != n:
        raise ValueError(f"treated must be 1-D of length {n}, got shape {t.shape}")
    if t.dtype != bool:
        if not np.all(np.isin(t, (0, 1))):
            raise ValueError("treated must be boolean (True = this treatment, False = control)")
        t = t.astype(bool)
    if not t.any() or t.all():
        raise ValueError("treated must contain both treated (True) and control (False) rows")
    if propensity is None:
        w = np.ones(n)
    else:
        p = _as_1d_float("propensity", propensity, n)
        if np.any(p <= 0) or np.any(p > 1):
            raise ValueError("propensity must lie in (0, 1]")
        w = 1.0 / p
    return u, r, t, w


def _cumulative_arm_means(
    u: np.ndarray, r: np.ndarray, t: np.ndarray, w: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Sorted by ``u`` descending; evaluated at the end of each tie block.

    Returns (k, treated_mean, control_mean) with k rows targeted (ties kept together); a mean
    is NaN while its arm has no row yet.
    """
    order = np.argsort(-u, kind="stable")
    us, rs, ts, ws = u[order], r[order], t[order], w[order]
    wt = np.cumsum(ws * ts)
    wc = np.cumsum(ws * ~ts)
    yt = np.cumsum(ws * rs * ts)
    yc = np.cumsum(ws * rs * ~ts)
    ends = np.flatnonzero(np.r_[us[1:] != us[:-1], True])
    with np.errstate(invalid="ignore", divide="ignore"):
        mt = np.where(wt[ends] > 0, yt[ends] / np.where(wt[ends] > 0, wt[ends], 1), np.nan)
        mc = np.where(wc[ends] > 0, yc[ends] / np.where(wc[ends] > 0, wc[ends], 1), np.nan)
    return ends + 1, mt, mc


def qini_curve(
    uplift_pred: np.ndarray,
    rewards: np.ndarray,
    treated: np.ndarray,
    propensity: np.ndarray | None = None,
) -> pd.DataFrame:
    """Uplift (Qini-type) curve of one treatment vs control.

    uplift_pred: (n,) predicted effect of the treatment, for rows whose logged arm is this
    treatment or control. rewards: (n,) observed outcome. treated: (n,) bool, True = got the
    treatment. propensity: optional (n,) probability of the arm each row received (weights
    1/propensity; without it, plain means).

    Rows are ranked by predicted uplift (ties targeted together). For the top fraction f the
    incremental gain is ``f * (mean_treated - mean_control)`` among those rows (weighted
    means), i.e. the average extra outcome per unit of the whole population if only that
    fraction is treated; 0 while one arm has no row yet. Returns columns
    ``fraction`` (0..1, starting at 0), ``incremental_gain`` (reward units) and
    ``random_gain`` (the straight line from 0 to the overall effect).
    """
    u, r, t, w = _uplift_inputs(uplift_pred, rewards, treated, propensity)
    n = u.shape[0]
    k, mt, mc = _cumulative_arm_means(u, r, t, w)
    fraction = k / n
    gain = np.nan_to_num(fraction * (mt - mc), nan=0.0)
    fraction = np.r_[0.0, fraction]
    gain = np.r_[0.0, gain]
    return pd.DataFrame(
        {"fraction": fraction, "incremental_gain": gain, "random_gain": fraction * gain[-1]}
    )


def qini_coefficient(
    uplift_pred: np.ndarray,
    rewards: np.ndarray,
    treated: np.ndarray,
    propensity: np.ndarray | None = None,
    normalize: bool = True,
) -> float:
    """Area between the uplift curve and the random line (trapezoid rule over ``fraction``).

    Positive = the model ranks units with larger effects first; ~0 = no better than random.
    normalize divides by the standard deviation of ``rewards`` so the coefficient is in
    effect-size units, comparable across outcomes (it is not bounded by 1: the ideal curve is
    unknown for continuous outcomes with noise).
    """
    curve = qini_curve(uplift_pred, rewards, treated, propensity)
    diff = (curve["incremental_gain"] - curve["random_gain"]).to_numpy()
    x = curve["fraction"].to_numpy()
    area = float(np.sum((diff[1:] + diff[:-1]) * np.diff(x)) / 2)
    if normalize:
        scale = float(np.std(np.asarray(rewards, dtype=float)))
        return area / scale if scale > 0 else float("nan")
    return area


def uplift_at_k(
    uplift_pred: np.ndarray,
    rewards: np.ndarray,
    treated: np.ndarray,
    propensity: np.ndarray | None = None,
    k: float = 0.3,
) -> float:
    """Estimated effect (weighted treated mean - control mean) among the top ``k`` fraction.

    k in (0, 1]: fraction of rows with the largest predicted uplift (ties at the cut-off are
    included). NaN if one arm has no row among them.
    """
    if not 0 < k <= 1:
        raise ValueError(f"k must lie in (0, 1], got {k}")
    u, r, t, w = _uplift_inputs(uplift_pred, rewards, treated, propensity)
    counts, mt, mc = _cumulative_arm_means(u, r, t, w)
    idx = int(np.searchsorted(counts, int(np.ceil(k * u.shape[0]))))
    return float(mt[idx] - mc[idx])


# --------------------------------------------------------------------------- grouped means


def _clustered_group_means(
    values: np.ndarray, groups: np.ndarray, units: np.ndarray, n_groups: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per-group mean, cluster-robust standard error (clusters = units) and unit count.

    values: (n,) finite; groups: (n,) int codes in [0, n_groups); units: (n,) int codes.
    SE is NaN for groups with fewer than two units.
    """
    pair = groups.astype(np.int64) * (int(units.max()) + 1) + units.astype(np.int64)
    uniq, inverse = np.unique(pair, return_inverse=True)
    cluster_group = uniq // (int(units.max()) + 1)
    sums = np.bincount(inverse, weights=values, minlength=uniq.shape[0])
    counts = np.bincount(inverse, minlength=uniq.shape[0]).astype(float)
    total = np.bincount(cluster_group, weights=sums, minlength=n_groups)
    m = np.bincount(cluster_group, weights=counts, minlength=n_groups)
    g = np.bincount(cluster_group, minlength=n_groups).astype(float)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = np.where(m > 0, total / np.where(m > 0, m, 1), np.nan)
        resid = sums - mean[cluster_group] * counts
        ss = np.bincount(cluster_group, weights=resid**2, minlength=n_groups)
        var = np.where(g > 1, ss * g / np.maximum(g - 1, 1) / np.where(m > 0, m, 1) ** 2, np.nan)
    return mean, np.sqrt(var), g


def _complementary_suppression(
    sizes: np.ndarray,
    suppressed: np.ndarray,
    partitions: Sequence[np.ndarray],
    min_group: int,
) -> np.ndarray:
    """Extend ``suppressed`` so no blanked group can be recovered from a partition's total.

    partitions: index arrays, each a set of groups whose values add up to a total that may be
    published. Within a partition, while exactly one group is suppressed, or the suppressed
    groups together hold fewer than ``min_group`` units, the smallest remaining group is
    suppressed too. Repeats over all partitions until nothing changes.
    """
    out = suppressed.copy()
    changed = True
    while changed:
        changed = False
        for part in partitions:
            hidden = part[out[part]]
            if hidden.size == 0:
                continue
            visible = part[~out[part]]
            if visible.size == 0:
                continue
            if hidden.size == 1 or sizes[hidden].sum() < min_group:
                out[visible[np.argmin(sizes[visible])]] = True
                changed = True
    return out


def _z(confidence: float) -> float:
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must lie in (0, 1), got {confidence}")
    return NormalDist().inv_cdf(0.5 + confidence / 2)


def _check_min_group(min_group: int) -> None:
    if isinstance(min_group, bool) or not isinstance(min_group, int | np.integer) or min_group < 1:
        raise ValueError(f"min_group must be a positive int, got {min_group!r}")


def calibration_by_decile(
    pred_effect: np.ndarray,
    dr_pseudo_outcome: np.ndarray,
    unit_ids: np.ndarray | None = None,
    n_bins: int = 10,
    confidence: float = 0.95,
    min_group: int = MIN_GROUP_SIZE,
) -> pd.DataFrame:
    """Mean predicted vs mean DR-estimated effect per quantile bin of the predicted effect.

    pred_effect: (n,) predicted effect of one treatment vs control. dr_pseudo_outcome: (n,)
    doubly robust pseudo-outcome of the same effect (its mean over a group is an unbiased
    estimate of the group's average effect). unit_ids: optional (n,) manager ids; the CI is
    then clustered by unit and suppression counts distinct units (else rows).
    Bins are equal-count by rank of ``pred_effect`` (1 = lowest). Bins with fewer than
    ``min_group`` units are blanked (all numbers NaN, ``suppressed`` True), plus complementary
    suppression across bins. Returns columns decile, n, n_units, mean_predicted,
    mean_observed, ci_low, ci_high, suppressed.
    """
    pred = _as_1d_float("pred_effect", pred_effect)
    n = pred.shape[0]
    obs = _as_1d_float("dr_pseudo_outcome", dr_pseudo_outcome, n)
    if isinstance(n_bins, bool) or not isinstance(n_bins, int | np.integer) or n_bins < 1:
        raise ValueError(f"n_bins must be a positive int, got {n_bins!r}")
    _check_min_group(min_group)
    z = _z(confidence)
    if unit_ids is None:
        units = np.arange(n)
    else:
        ids = np.asarray(unit_ids)
        if ids.ndim != 1 or ids.shape[0] != n:
            raise ValueError(f"unit_ids must be 1-D of length {n}, got shape {ids.shape}")
        if pd.isna(ids).any():
            raise ValueError("unit_ids contains missing values")
        units = pd.factorize(ids)[0]
    rank = np.empty(n, dtype=np.int64)
    rank[np.argsort(pred, kind="stable")] = np.arange(n)
    bins = (rank * n_bins) // n
    mean_obs, se, n_units = _clustered_group_means(obs, bins, units, n_bins)
    mean_pred = np.bincount(bins, weights=pred, minlength=n_bins) / np.maximum(
        np.bincount(bins, minlength=n_bins), 1
    )
    n_rows = np.bincount(bins, minlength=n_bins).astype(float)
    suppressed = _complementary_suppression(
        n_units, n_units < min_group, [np.arange(n_bins)], min_group
    )
    frame = pd.DataFrame(
        {
            "decile": np.arange(1, n_bins + 1),
            "n": n_rows,
            "n_units": n_units,
            "mean_predicted": mean_pred,
            "mean_observed": mean_obs,
            "ci_low": mean_obs - z * se,
            "ci_high": mean_obs + z * se,
        }
    )
    frame.loc[suppressed, frame.columns[1:]] = np.nan
    frame["suppressed"] = suppressed
    return frame


def segment_table(
    frame: pd.DataFrame,
    by: Sequence[str],
    value_columns: Sequence[str],
    unit_col: str = "manager_id",
    min_group: int = MIN_GROUP_SIZE,
    confidence: float = 0.95,
    complementary: bool = True,
) -> pd.DataFrame:
    """Per-segment unit counts and means with privacy suppression.

    frame: one row per observation (e.g. manager x period) with the ``by`` columns, the
    numeric ``value_columns`` and ``unit_col`` (pseudonymous manager id).
    Returns one row per segment: the ``by`` columns, ``n_units`` (distinct units),
    ``n_units_display`` (str), ``<col>_mean``, ``<col>_ci_low``, ``<col>_ci_high`` for each
    value column (normal interval, standard error clustered by unit) and ``suppressed``.

    Segments with fewer than ``min_group`` distinct units are suppressed: every number is NaN
    and ``n_units_display`` is ``"<5"``-style. With ``complementary`` (default), within each
    partition of the table (segments that differ only in one ``by`` column, whose values add
    up to a total that is published elsewhere), further segments are suppressed (display
    ``"suppressed"``) until no blanked segment can be recovered by differencing: never one
    blanked segment alone, nor blanked segments holding fewer than ``min_group`` units
    together. A value column's numbers are also blanked in a segment where fewer than
    ``min_group`` units have a non-missing value. Switch ``complementary`` off only if no
    totals of these segments are shown anywhere.
    """
    by = list(by)
    value_columns = list(value_columns)
    if not by:
        raise ValueError("by must name at least one column")
    missing = [c for c in [*by, *value_columns, unit_col] if c not in frame.columns]
    if missing:
        raise ValueError(f"frame is missing columns {missing} (by / value_columns / unit_col)")
    if unit_col in by or unit_col in value_columns:
        raise ValueError("unit_col must not be one of by or value_columns")
    _check_min_group(min_group)
    z = _z(confidence)
    if frame[unit_col].isna().any():
        raise ValueError(f"frame[{unit_col!r}] contains missing unit ids")
    for col in value_columns:
        if not pd.api.types.is_numeric_dtype(frame[col]):
            raise ValueError(f"value column {col!r} must be numeric")

    grouped = frame.groupby(by, dropna=False, sort=True, observed=True)
    groups = grouped.ngroup().to_numpy(dtype=np.int64)
    seg_frame = grouped.size().index.to_frame(index=False)
    n_groups = len(seg_frame)
    units = pd.factorize(frame[unit_col].to_numpy())[0]
    ones = np.zeros(len(frame))
    _, _, n_units = _clustered_group_means(ones, groups, units, n_groups)

    primary = n_units < min_group
    if complementary:
        partitions: list[np.ndarray] = []
        for col in by:
            others = [c for c in by if c != col]
            if others:
                part_codes = seg_frame.groupby(others, dropna=False).ngroup().to_numpy()
                partitions.extend(np.flatnonzero(part_codes == p) for p in np.unique(part_codes))
            else:
                partitions.append(np.arange(n_groups))
        suppressed = _complementary_suppression(n_units, primary, partitions, min_group)
    else:
        suppressed = primary.copy()

    out = seg_frame.copy()
    out["n_units"] = np.where(suppressed, np.nan, n_units)
    out["n_units_display"] = np.where(
        primary,
        f"<{min_group}",
        np.where(suppressed, "suppressed", n_units.astype(np.int64).astype(str)),
    )
    for col in value_columns:
        values = frame[col].to_numpy(dtype=float, na_value=np.nan)
        ok = np.isfinite(values)
        mean = np.full(n_groups, np.nan)
        se = np.full(n_groups, np.nan)
        if ok.any():
            mean, se, n_col_units = _clustered_group_means(
                values[ok], groups[ok], units[ok], n_groups
            )
            blank = suppressed | (n_col_units < min_group)
        else:
            blank = np.ones(n_groups, dtype=bool)
        out[f"{col}_mean"] = np.where(blank, np.nan, mean)
        out[f"{col}_ci_low"] = np.where(blank, np.nan, mean - z * se)
        out[f"{col}_ci_high"] = np.where(blank, np.nan, mean + z * se)
    out["suppressed"] = suppressed
    return out


# --------------------------------------------------------------------------- bands


def trait_bands(
    values: np.ndarray,
    edges: Sequence[float] = (0, 33, 67, 100),
    labels: Sequence[str] = ("low", "mid", "high"),
) -> pd.Categorical:
    """Ordered bands of a 0-100 trait score for segment tables.

    Bins are ``[e0, e1), [e1, e2), ..., [e_{k-1}, e_k]`` (last one closed). NaN stays missing;
    values outside ``[edges[0], edges[-1]]`` raise ValueError. Returns a pandas Categorical of
    length n with the given labels (ordered low to high).
    """
    e = np.asarray(edges, dtype=float)
    if e.ndim != 1 or e.shape[0] < 2 or not np.all(np.diff(e) > 0):
        raise ValueError(f"edges must be strictly increasing with >= 2 entries, got {edges}")
    if len(labels) != e.shape[0] - 1:
        raise ValueError(f"labels must have {e.shape[0] - 1} entries, got {len(labels)}")
    v = np.asarray(values, dtype=float)
    if v.ndim != 1:
        raise ValueError(f"values must be 1-D, got shape {v.shape}")
    finite = ~np.isnan(v)
    if np.any((v[finite] < e[0]) | (v[finite] > e[-1])):
        raise ValueError(f"values must lie in [{e[0]}, {e[-1]}]")
    codes = np.full(v.shape[0], -1, dtype=np.int64)
    codes[finite] = np.clip(np.searchsorted(e, v[finite], side="right") - 1, 0, e.shape[0] - 2)
    return pd.Categorical.from_codes(codes, categories=list(labels), ordered=True)
