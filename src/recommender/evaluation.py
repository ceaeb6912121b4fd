"""Evaluation of a trained ranker on the later time window (off-policy, and on simulated data
against the ground truth).

Actions are ``(CONTROL, *types)``: index 0 is "no nudge". The reward of a logged round is the
ranking objective computed from the observed outcomes, ``sum_k w_k * y_k / sd_k`` (sd from the
training window), so policy values are in "standardised outcome" units per manager-period.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import lightgbm as lgb
import numpy as np
import pandas as pd

from recommender import evaluation_metrics as em
from recommender import ope
from recommender.constants import CONTROL, MIN_GROUP_SIZE, OUTCOMES, TRAITS

POLICIES = ("learned", "best_single_type", "uniform_random", "no_nudge")
"""Target policies evaluated off-policy (the logging policy is evaluated on-policy)."""


# --------------------------------------------------------------------------- objective


@dataclass(frozen=True)
class Objective:
    """Ranking objective: ``score = sum_k weights[k] * effect[..., k] / scales[k]``.

    outcome_names: outcomes in model order; weights, scales: arrays of shape (n_outcomes,);
    scales are the outcomes' SDs in the training window (outcome units).
    """

    outcome_names: tuple[str, ...]
    weights: np.ndarray
    scales: np.ndarray

    @classmethod
    def fit(cls, outcomes: pd.DataFrame, weights: Mapping[str, float]) -> Objective:
        """Scales from the training-window outcomes (columns = outcome names)."""
        names = tuple(str(c) for c in outcomes.columns)
        scales = outcomes.to_numpy(dtype=np.float64).std(axis=0, ddof=1)
        if not np.all(np.isfinite(scales)) or np.any(scales <= 0):
            bad = [n for n, s in zip(names, scales, strict=True) if not (np.isfinite(s) and s > 0)]
            raise ValueError(f"outcome(s) {bad} have no variation in the training window")
        w = np.array([float(weights.get(name, 0.0)) for name in names])
        return cls(outcome_names=names, weights=w, scales=scales)

    def coefficients(self) -> np.ndarray:
        """``weights / scales``, shape (n_outcomes,)."""
        return np.asarray(self.weights / self.scales, dtype=np.float64)

    def score(self, values: np.ndarray) -> np.ndarray:
        """Objective of outcome values/effects with outcomes on the last axis."""
        return np.asarray(values @ self.coefficients(), dtype=np.float64)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {
            "outcome_names": list(self.outcome_names),
            "weights": self.weights.tolist(),
            "scales": self.scales.tolist(),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Objective:
        """Inverse of ``to_dict``."""
        return cls(
            outcome_names=tuple(data["outcome_names"]),
            weights=np.asarray(data["weights"], dtype=np.float64),
            scales=np.asarray(data["scales"], dtype=np.float64),
        )


# --------------------------------------------------------------------------- context


def available_types(
    catalogue: pd.DataFrame, orgs: Sequence[str], types: Sequence[str]
) -> dict[str, frozenset[str]]:
    """org -> nudge types (among ``types``) with at least one own or global catalogue entry."""
    org_col = catalogue["org_id"].astype(str)
    type_col = catalogue["nudge_type"].astype(str)
    global_types = set(type_col[org_col == "global"])
    out = {}
    for org in orgs:
        own = set(type_col[org_col == org])
        out[str(org)] = frozenset((own | global_types) & set(types))
    return out


def action_mask(
    org_ids: Sequence[str], actions: Sequence[str], available: Mapping[str, frozenset[str]]
) -> np.ndarray:
    """Bool array (n, n_actions): action j is eligible for row i (control always is)."""
    orgs = pd.Series(list(org_ids), dtype="object")
    mask = np.zeros((len(orgs), len(actions)), dtype=bool)
    for j, action in enumerate(actions):
        if action == CONTROL:
            mask[:, j] = True
            continue
        eligible = {org for org, types in available.items() if action in types}
        mask[:, j] = orgs.isin(eligible).to_numpy()
    return mask


@dataclass
class EvalContext:
    """Logged rounds of one window, ready for OPE.

    rows: the manager-period rows (keys, profile columns, outcomes), n rows.
    X: encoded features (n, n_features). actions: logged action index (n,) into ``action_names``.
    propensity: logging probability of the logged action (n,). outcomes: (n, n_outcomes).
    rewards: objective of the observed outcomes (n,). mask: eligible actions (n, n_actions).
    q_hat: predicted reward of every action (n, n_actions), from a model fitted elsewhere.
    """

    rows: pd.DataFrame
    X: np.ndarray
    action_names: tuple[str, ...]
    actions: np.ndarray
    propensity: np.ndarray
    outcomes: np.ndarray
    rewards: np.ndarray
    mask: np.ndarray
    q_hat: np.ndarray = field(default_factory=lambda: np.empty((0, 0)))

    @property
    def n(self) -> int:
        """Number of rounds."""
        return int(self.actions.shape[0])


def make_context(
    rows: pd.DataFrame,
    X: np.ndarray,
    action_names: tuple[str, ...],
    objective: Objective,
    available: Mapping[str, frozenset[str]],
) -> EvalContext:
    """Context of rows whose logged decision and propensity are known (others must be removed)."""
    index = {name: i for i, name in enumerate(action_names)}
    treatment = rows["treatment"].astype(str)
    unknown = sorted(set(treatment) - set(index))
    if unknown:
        raise ValueError(f"logged treatments {unknown} are not among the actions {action_names}")
    outcomes = rows[list(objective.outcome_names)].to_numpy(dtype=np.float64)
    mask = action_mask(rows["org_id"].astype(str).tolist(), action_names, available)
    actions = treatment.map(index).to_numpy(dtype=np.int64)
    mask[np.arange(len(actions)), actions] = True
    return EvalContext(
        rows=rows,
        X=X,
        action_names=action_names,
        actions=actions,
        propensity=rows["propensity"].to_numpy(dtype=np.float64),
        outcomes=outcomes,
        rewards=objective.score(outcomes),
        mask=mask,
    )


# --------------------------------------------------------------------------- q model


@dataclass
class RewardModel:
    """q_hat(x, a): one LightGBM regression of the reward on features plus the action code.

    Fitted on the training window only; used as the outcome model of DR on later windows.
    """

    booster: lgb.Booster
    n_actions: int

    @classmethod
    def fit(cls, context: EvalContext, n_estimators: int, seed: int) -> RewardModel:
        """Fit on a context's logged rounds."""
        design = np.column_stack([context.X, context.actions.astype(np.float64)])
        params = {
            "objective": "regression",
            "learning_rate": 0.05,
            "num_leaves": 15,
            "min_data_in_leaf": max(20, context.n // 200),
            "lambda_l2": 10.0,
            "feature_fraction": 0.8,
            "bagging_fraction": 0.8,
            "bagging_freq": 1,
            "max_bin": 63,
            "verbosity": -1,
            "seed": seed,
            "deterministic": True,
            "num_threads": 2,
        }
        data = lgb.Dataset(
            design,
            label=context.rewards,
            categorical_feature=[design.shape[1] - 1],
            params={"verbosity": -1, "max_bin": 63},
        )
        booster = lgb.train(params, data, num_boost_round=n_estimators)
        return cls(booster=booster, n_actions=len(context.action_names))

    def predict(self, X: np.ndarray) -> np.ndarray:
        """q_hat of every action: shape (n, n_actions)."""
        out = np.empty((X.shape[0], self.n_actions))
        for a in range(self.n_actions):
            design = np.column_stack([X, np.full(X.shape[0], float(a))])
            out[:, a] = np.asarray(self.booster.predict(design), dtype=np.float64)
        return out


# --------------------------------------------------------------------------- policies


def greedy_policy(action_scores: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Deterministic policy taking the best eligible action; column 0 (control) scores 0, so a
    type is chosen only when its score is > 0. action_scores: (n, n_actions), NaN = unknown."""
    scores = np.where(mask & np.isfinite(action_scores), action_scores, -np.inf)
    scores[:, 0] = 0.0
    chosen = np.argmax(scores, axis=1)
    return ope.deterministic_policy(chosen, action_scores.shape[1])


def single_type_policy(action: int, mask: np.ndarray) -> np.ndarray:
    """Everyone gets ``action`` where eligible, else no nudge: (n, n_actions)."""
    chosen = np.where(mask[:, action], action, 0)
    return ope.deterministic_policy(chosen, mask.shape[1])


def choose_best_single_type(
    context: EvalContext, n_bootstrap: int = 0, seed: int = 0
) -> tuple[str, pd.DataFrame]:
    """Best single type for everyone by SNIPS value on ``context`` (use the training window).

    Returns (type, table of SNIPS values per type with columns type, estimate, ci_low, ci_high).
    """
    rows = []
    for a in range(1, len(context.action_names)):
        value = ope.snips_value(
            context.rewards,
            context.actions,
            context.propensity,
            single_type_policy(a, context.mask),
            n_bootstrap=n_bootstrap,
            random_state=seed,
        )
        rows.append({"type": context.action_names[a], **value.to_dict()})
    table = pd.DataFrame(rows)
    best = str(table.loc[table["estimate"].fillna(-np.inf).idxmax(), "type"])
    return best, table


def model_action_scores(
    score: np.ndarray, model_types: Sequence[str], actions: Sequence[str]
) -> np.ndarray:
    """Map model scores (n, n_model_types) to action columns (n, n_actions); control = 0,
    actions the model does not know = NaN."""
    out = np.full((score.shape[0], len(actions)), np.nan)
    out[:, 0] = 0.0
    position = {t: i for i, t in enumerate(model_types)}
    for j, action in enumerate(actions):
        if j and action in position:
            out[:, j] = score[:, position[action]]
    return out


# --------------------------------------------------------------------------- report


@dataclass
class Evaluation:
    """Everything the evaluation computed (tables are privacy-safe: groups < 5 suppressed)."""

    policy_values: pd.DataFrame
    differences: pd.DataFrame
    overlap: pd.DataFrame
    qini: dict[str, pd.DataFrame]
    qini_coefficients: dict[str, float]
    calibration: pd.DataFrame
    segments: pd.DataFrame
    truth: pd.DataFrame | None
    metrics: dict[str, float]
    chosen_share: dict[str, float]


def dr_pseudo_outcomes(context: EvalContext, clip: float) -> np.ndarray:
    """DR pseudo-outcome of each type's effect vs control: (n, n_actions - 1)."""
    n = context.n
    p = np.clip(context.propensity, clip, 1.0)
    q = context.q_hat
    logged = q[np.arange(n), context.actions]
    resid = (context.rewards - logged) / p
    base = q[:, 0] + np.where(context.actions == 0, resid, 0.0)
    out = np.empty((n, len(context.action_names) - 1))
    for a in range(1, len(context.action_names)):
        out[:, a - 1] = q[:, a] + np.where(context.actions == a, resid, 0.0) - base
    return out


def _segment_frame(context: EvalContext, values: Mapping[str, np.ndarray]) -> pd.DataFrame:
    frame = pd.DataFrame(
        {
            "manager_id": context.rows["manager_id"].astype(str).to_numpy(),
            "function": context.rows["function"].astype(str).to_numpy(),
            "level": context.rows["level"].astype(str).to_numpy(),
        }
    )
    for trait in TRAITS:
        frame[f"{trait}_band"] = np.asarray(
            em.trait_bands(context.rows[trait].to_numpy(dtype=np.float64))
        ).astype(str)
    for name, value in values.items():
        frame[name] = value
    return frame


def segment_tables(context: EvalContext, values: Mapping[str, np.ndarray]) -> pd.DataFrame:
    """Per-segment means (function, level, each trait band) with suppression of groups < 5."""
    frame = _segment_frame(context, values)
    parts = []
    for dimension in ("function", "level", *[f"{t}_band" for t in TRAITS]):
        table = em.segment_table(frame, by=[dimension], value_columns=list(values))
        table = table.rename(columns={dimension: "segment"})
        table.insert(0, "dimension", dimension)
        table["segment"] = table["segment"].astype(str)
        parts.append(table)
    return pd.concat(parts, ignore_index=True)


def evaluate(
    context: EvalContext,
    model_score: np.ndarray,
    model_types: Sequence[str],
    best_single: str,
    objective: Objective,
    n_bootstrap: int,
    confidence: float,
    clip: float,
    seed: int,
    truth: pd.DataFrame | None = None,
    model_effect: np.ndarray | None = None,
) -> Evaluation:
    """Evaluate the learned policy and the baselines on ``context`` (q_hat must be set).

    model_score: (n, n_model_types) objective score of each type. model_effect: optional
    (n, n_model_types, n_outcomes) effects (for per-outcome PEHE on simulated data).
    truth: optional ground-truth rows for these manager-periods (simulation only).
    """
    names = context.action_names
    scores = model_action_scores(model_score, model_types, names)
    policies = {
        "learned": greedy_policy(scores, context.mask),
        "best_single_type": single_type_policy(names.index(best_single), context.mask),
        "uniform_random": ope.uniform_policy(context.n, len(names), context.mask),
        "no_nudge": ope.no_nudge_policy(context.n, len(names)),
    }
    weight_cap = 1.0 / clip
    values = ope.evaluate_policies(
        policies,
        context.rewards,
        context.actions,
        np.clip(context.propensity, clip, 1.0),
        q_hat=context.q_hat,
        n_bootstrap=n_bootstrap,
        confidence=confidence,
        random_state=seed,
        weight_cap=weight_cap,
    )
    logged_propensity = np.clip(context.propensity, clip, 1.0)
    common: dict[str, Any] = {
        "q_hat": context.q_hat,
        "n_bootstrap": n_bootstrap,
        "confidence": confidence,
        "random_state": seed,
        "weight_cap": weight_cap,
    }
    # The logging policy's value is on-policy (mean logged reward), so its difference is paired
    # against that mean; the others are paired DR differences between two target policies.
    vs_logging = ope.value_difference_vs_logging(
        policies["learned"], context.rewards, context.actions, logged_propensity, **common
    )
    diff_rows = [{"comparison": "learned - logging", **vs_logging.to_dict()}]
    for other in ("best_single_type", "uniform_random", "no_nudge"):
        diff = ope.dr_value_difference(
            policies["learned"],
            policies[other],
            context.rewards,
            context.actions,
            logged_propensity,
            **common,
        )
        diff_rows.append({"comparison": f"learned - {other}", **diff.to_dict()})
    differences = pd.DataFrame(diff_rows)
    overlap = ope.overlap_table(policies, context.actions, np.clip(context.propensity, clip, 1.0))

    pseudo = dr_pseudo_outcomes(context, clip)
    qini: dict[str, pd.DataFrame] = {}
    qini_coef: dict[str, float] = {}
    cal_pred, cal_obs, cal_units = [], [], []
    unit_ids = context.rows["manager_id"].astype(str).to_numpy()
    for a in range(1, len(names)):
        if not np.isfinite(scores[:, a]).any():
            continue
        eligible = context.mask[:, a] & np.isfinite(scores[:, a])
        arm = eligible & np.isin(context.actions, (0, a))
        treated = context.actions[arm] == a
        if treated.any() and (~treated).any() and arm.sum() >= 2 * MIN_GROUP_SIZE:
            args = (scores[arm, a], context.rewards[arm], treated, context.propensity[arm])
            qini[names[a]] = em.qini_curve(*args)
            qini_coef[names[a]] = em.qini_coefficient(*args)
        cal_pred.append(scores[eligible, a])
        cal_obs.append(pseudo[eligible, a - 1])
        cal_units.append(unit_ids[eligible])
    calibration = em.calibration_by_decile(
        np.concatenate(cal_pred),
        np.concatenate(cal_obs),
        np.concatenate(cal_units),
        confidence=confidence,
    )

    chosen = policies["learned"].argmax(axis=1)
    learned_terms = _dr_terms(context, policies["learned"], clip)
    none_terms = _dr_terms(context, policies["no_nudge"], clip)
    segments = segment_tables(
        context,
        {
            "reward": context.rewards,
            "predicted_best_score": np.nanmax(np.where(context.mask, scores, np.nan), axis=1),
            "nudged_by_learned": (chosen != 0).astype(np.float64),
            "dr_gain_learned_vs_none": learned_terms - none_terms,
        },
    )
    chosen_share = {name: float(np.mean(chosen == j)) for j, name in enumerate(names)}

    metrics: dict[str, float] = {"eval_rounds": float(context.n)}
    for row in values.itertuples(index=False):
        key = f"{row.policy}_{row.estimator}"
        metrics[f"value_{key}"] = float(row.estimate)
        metrics[f"value_{key}_ci_low"] = float(row.ci_low)
        metrics[f"value_{key}_ci_high"] = float(row.ci_high)
    for row in differences.itertuples(index=False):
        key = str(row.comparison).replace("learned - ", "learned_minus_")
        metrics[f"dr_diff_{key}"] = float(row.estimate)
        metrics[f"dr_diff_{key}_ci_low"] = float(row.ci_low)
        metrics[f"dr_diff_{key}_ci_high"] = float(row.ci_high)
    for name, coef in qini_coef.items():
        metrics[f"qini_{name}"] = float(coef)
    for name, share in chosen_share.items():
        metrics[f"learned_share_{name}"] = share
    for row in overlap.itertuples(index=False):
        metrics[f"ess_fraction_{row.policy}"] = float(row.ess_fraction)

    truth_table = None
    if truth is not None:
        truth_table, truth_metrics = _truth_metrics(
            context, truth, policies, objective, scores, model_types, model_effect
        )
        metrics.update(truth_metrics)
    return Evaluation(
        policy_values=values,
        differences=differences,
        overlap=overlap,
        qini=qini,
        qini_coefficients=qini_coef,
        calibration=calibration,
        segments=segments,
        truth=truth_table,
        metrics=metrics,
        chosen_share=chosen_share,
    )


def _dr_terms(context: EvalContext, target: np.ndarray, clip: float) -> np.ndarray:
    """Per-round DR terms of a policy (n,); their mean is the DR value."""
    n = context.n
    p = np.clip(context.propensity, clip, 1.0)
    w = np.minimum(target[np.arange(n), context.actions] / p, 1.0 / clip)
    direct = np.einsum("ij,ij->i", target, context.q_hat)
    return np.asarray(direct + w * (context.rewards - context.q_hat[np.arange(n), context.actions]))


# --------------------------------------------------------------------------- ground truth


def read_truth(data: Path) -> pd.DataFrame | None:
    """``<data>/truth/ground_truth.parquet`` if present (simulated data; evaluation only)."""
    path = Path(data) / "truth" / "ground_truth.parquet"
    if not path.is_file():
        return None
    truth = pd.read_parquet(path)
    truth["manager_id"] = truth["manager_id"].astype(str)
    truth["nudge_type"] = truth["nudge_type"].astype(str)
    truth["period_start"] = pd.to_datetime(truth["period_start"]).astype("datetime64[ns]")
    return truth


def truth_matrix(
    rows: pd.DataFrame, truth: pd.DataFrame, actions: Sequence[str], outcomes: Sequence[str]
) -> np.ndarray:
    """True expected outcomes (n, n_actions, n_outcomes) for ``rows``; NaN where absent."""
    keys = rows[["manager_id", "period_start"]].copy()
    keys["manager_id"] = keys["manager_id"].astype(str)
    keys["_row"] = np.arange(len(keys))
    merged = keys.merge(truth, on=["manager_id", "period_start"], how="inner")
    out = np.full((len(rows), len(actions), len(outcomes)), np.nan)
    position = {a: j for j, a in enumerate(actions)}
    col = merged["nudge_type"].map(position)
    ok = col.notna().to_numpy()
    r = merged["_row"].to_numpy()[ok]
    c = col.to_numpy()[ok].astype(np.int64)
    out[r, c, :] = merged.loc[ok, list(outcomes)].to_numpy(dtype=np.float64)
    return out


def _truth_metrics(
    context: EvalContext,
    truth: pd.DataFrame,
    policies: Mapping[str, np.ndarray],
    objective: Objective,
    scores: np.ndarray,
    model_types: Sequence[str],
    model_effect: np.ndarray | None,
) -> tuple[pd.DataFrame, dict[str, float]]:
    names = context.action_names
    mu_k = truth_matrix(context.rows, truth, names, objective.outcome_names)
    mu = objective.score(np.nan_to_num(mu_k))
    known = np.isfinite(mu_k).all(axis=2)
    mask = context.mask & known
    keep = mask[:, 0]
    if not keep.any():
        raise ValueError("ground truth has no row for the evaluation window")
    mu, mask = mu[keep], mask[keep]
    mu_filled = np.where(mask, mu, 0.0)
    values = {}
    for name, target in policies.items():
        pi = target[keep]
        pi = np.where(mask, pi, 0.0)
        pi[:, 0] += 1.0 - pi.sum(axis=1)  # ineligible mass -> no nudge
        values[name] = em.true_policy_value(mu_filled, pi)
    logged = ope.deterministic_policy(context.actions[keep], len(names))
    values["logging"] = em.true_policy_value(mu_filled, logged)
    v_oracle = em.oracle_policy_value(mu_filled, mask)
    values["oracle"] = v_oracle
    v_random = values["uniform_random"]
    rows = []
    metrics: dict[str, float] = {}
    for name, value in values.items():
        npv = em.normalised_policy_value(value, v_random, v_oracle)
        rows.append({"policy": name, "true_value": value, "npv": npv, "regret": v_oracle - value})
        metrics[f"true_value_{name}"] = value
        metrics[f"npv_{name}"] = npv
    # PEHE of the objective score (standardised units) and per outcome, per type.
    pehe_scores = []
    for a in range(1, len(names)):
        eligible = mask[:, a] & np.isfinite(scores[keep, a])
        if eligible.sum() < MIN_GROUP_SIZE:
            continue
        true_effect = mu[eligible, a] - mu[eligible, 0]
        result = em.pehe(scores[keep][eligible, a], true_effect)
        metrics[f"pehe_{names[a]}"] = result.mean
        pehe_scores.append(result.mean)
        if model_effect is not None and names[a] in model_types:
            t = list(model_types).index(names[a])
            pred = model_effect[keep][eligible, t, :]
            true_k = mu_k[keep][eligible, a, :] - mu_k[keep][eligible, 0, :]
            per_outcome = em.pehe(pred, true_k).per_type
            for k, outcome in enumerate(objective.outcome_names):
                metrics[f"pehe_{names[a]}_{outcome}"] = float(per_outcome[k])
    if pehe_scores:
        metrics["pehe_mean"] = float(np.mean(pehe_scores))
    metrics["truth_rounds"] = float(keep.sum())
    return pd.DataFrame(rows), metrics


__all__ = [
    "OUTCOMES",
    "POLICIES",
    "EvalContext",
    "Evaluation",
    "Objective",
    "RewardModel",
    "available_types",
    "choose_best_single_type",
    "evaluate",
    "greedy_policy",
    "make_context",
    "read_truth",
    "single_type_policy",
    "truth_matrix",
]
