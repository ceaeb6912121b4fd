"""Defaults of the uplift estimator: LightGBM parameters per stage, learner names, grids.

Outcome noise is large next to the effects, so every stage is regularised: small trees, large
leaves (scaled with the rows a booster sees), L2 on leaf values, row and column subsampling,
a modest fixed number of trees at a fairly high learning rate (0.1: on the benchmark data 50
rounds at 0.1 match 100 at 0.05 in held-out R^2 at half the fit and prediction cost) and few
bins (which also makes histogram building cheap).
"""

from __future__ import annotations

from typing import Any, Final

LEARNERS: Final = ("s", "t", "x", "dr")
"""Meta-learners of the family: S (treatment as a feature), T (one model per arm),
X (imputed effects weighted by propensity), DR (cross-fitted AIPW pseudo-outcomes)."""

SELECTIONS: Final = ("dr", "r")
"""Held-out causal losses: pairwise DR pseudo-outcome loss, or the multi-treatment R-loss."""

SHRINKAGE_GRID: Final = (0.0, 0.25, 0.5, 0.75, 1.0)
"""Candidate lambda in tau_s(x) = mean_t + lambda * (tau(x) - mean_t)."""

PRUNE_WEIGHT: Final = 0.05
"""Blend members with a smaller weight are dropped and the others re-weighted: they barely move
the loss (which is quadratic in the weights) but each costs its boosters at prediction."""

MIN_ROWS_PER_ARM_PER_FOLD: Final = 10
"""An arm needs at least this many rows per cross-fitting fold (so n_folds * this in total)."""

FORBIDDEN_USER_PARAMS: Final = frozenset(
    {"objective", "num_class", "num_iterations", "n_estimators", "num_boost_round", "metric"}
)
"""LightGBM parameters the estimator sets per stage (rounds come from ``n_estimators``)."""

_COMMON: Final[dict[str, Any]] = {
    "verbosity": -1,
    "max_bin": 63,
    "lambda_l2": 10.0,
    "bagging_fraction": 0.8,
    "bagging_freq": 1,
    "min_data_per_group": 50,
    "cat_smooth": 20.0,
    "cat_l2": 20.0,
    "deterministic": True,
    "force_col_wise": True,
}

OUTCOME_PARAMS: Final[dict[str, Any]] = {
    **_COMMON,
    "objective": "regression",
    "learning_rate": 0.1,
    "num_leaves": 15,
    "feature_fraction": 0.8,
}
"""Outcome models mu_a(x) (S and T learners, DR nuisances)."""

S_PARAMS: Final[dict[str, Any]] = {**OUTCOME_PARAMS, "feature_fraction": 1.0}
"""S-learner: every tree may split on the treatment column (no column subsampling)."""

EFFECT_PARAMS: Final[dict[str, Any]] = {
    **_COMMON,
    "objective": "regression",
    "learning_rate": 0.1,
    "num_leaves": 7,
    "lambda_l2": 50.0,
    "feature_fraction": 0.8,
}
"""Final-stage effect models (X-learner tau_0/tau_1, DR-learner): fitted on noisy imputed or
pseudo-outcomes, so smaller trees, heavier L2, larger leaves and half the trees."""

PROPENSITY_PARAMS: Final[dict[str, Any]] = {
    **_COMMON,
    "objective": "multiclass",
    "learning_rate": 0.2,
    "num_leaves": 4,
    "lambda_l2": 1.0,
    "feature_fraction": 0.8,
}
"""Multinomial propensity model over all arms (control included). Small trees: one tree per arm
and round, and a smooth logging policy (softmax plus exploration floor) needs little depth. On
the 20,000-manager benchmark, 4 leaves and 20-25 rounds at 0.2 track the logged propensity of
the received arm better (mean |log ratio| 0.08 vs 0.14, held-out log-loss 2.104 vs 2.114) than
15 leaves and 50 rounds at 0.1, at a quarter of the cost."""


def min_leaf_rows(n_rows: int, stage: str) -> int:
    """Minimum rows per leaf for a booster fitted on ``n_rows`` rows of a given stage.

    Scales with the data so that small arms still get a few leaves and large ones do not chase
    noise: outcome/propensity models n/100 clipped to [20, 200], effect models n/40 in [30, 500].
    """
    if stage == "effect":
        return int(min(500, max(30, n_rows // 40)))
    return int(min(200, max(20, n_rows // 100)))
