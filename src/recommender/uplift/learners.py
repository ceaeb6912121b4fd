"""The meta-learners (S, T, X, DR), each fitted on the training rows of one cross-fitting fold.

Arms are coded 0 (control) .. K (treatments); effects are arrays of shape (n, K) in the outcome's
units: tau_k(x) = E[Y | x, arm k] - E[Y | x, control].

- S: one booster on [x, arm] with the arm a categorical column; every tree may split on the arm
  (no column subsampling) so treatment x feature interactions are learnt where the data supports
  them, while the prognostic part is shared by all arms (the strongest model under heavy noise).
- T: one outcome booster per arm.
- X: imputed effects D1 = y - mu_0(x) on arm-k rows and D0 = mu_k(x) - y on control rows (mu from
  the fold's T-learner), one effect booster each, combined as g(x) tau_0 + (1 - g(x)) tau_1 with
  g the pairwise propensity P(k | x, arm in {0, k}).
- DR: pairwise AIPW pseudo-outcomes on rows of arm k or control,
  phi = mu_k - mu_0 + W (y - mu_k) / p - (1 - W) (y - mu_0) / (1 - p), p pairwise propensity
  clipped to [clip, 1 - clip], regressed on x by a strongly regularised effect booster. Within
  {control, k}, conditional on x, the arm is k with probability p, so E[phi | x] = tau_k(x).
  The nuisances (mu from S boosters, e from propensity boosters) are *doubly* out-of-fold: for a
  training row of fold j used by the fold-k learner they come from models fitted on folds other
  than j and k, so neither the row's own outcome nor the held-out fold leaks into its target.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import lightgbm as lgb
import numpy as np

from recommender.uplift.base import fit_booster, stage_params
from recommender.uplift.config import EFFECT_PARAMS, OUTCOME_PARAMS, S_PARAMS
from recommender.uplift.propensity import pairwise


@dataclass
class FitContext:
    """What every booster fit of one ``fit`` call shares (read-only across threads).

    X: encoded features (n, n_features); ref / ref_s: binned reference Datasets of X and of
    X plus the arm code column (S-learner), every booster's Dataset is a row subset of one of
    them; arm: codes (n,); n_arms: K + 1.
    """

    X: np.ndarray
    ref: lgb.Dataset
    ref_s: lgb.Dataset
    arm: np.ndarray
    n_arms: int
    n_estimators: int
    user_params: dict[str, Any] | None
    seed: int
    clip: float

    @property
    def effect_rounds(self) -> int:
        """Boosting rounds of final-stage effect models (half of the outcome models')."""
        return max(5, self.n_estimators // 2)


@dataclass
class FoldLearner:
    """One fitted meta-learner of one fold: its boosters by role.

    kind: "s" (key "s"), "t" (keys "mu_<a>"), "x" (keys "tau0_<k>", "tau1_<k>"; needs the
    pairwise propensity at prediction) or "dr" (keys "tau_<k>"), with a = 0..K, k = 1..K.
    """

    kind: str
    boosters: dict[str, lgb.Booster]
    n_treatments: int

    def effects(
        self, X: np.ndarray, p_pair: np.ndarray | None = None, num_threads: int = 1
    ) -> np.ndarray:
        """Effects of shape (n, K); ``p_pair`` (n, K) is required for the X-learner."""
        K = self.n_treatments
        if self.kind == "s":
            mu = predict_s(self.boosters["s"], X, K + 1, num_threads)
            return mu[:, 1:] - mu[:, :1]
        if self.kind == "t":
            mu = np.column_stack(
                [_predict(self.boosters[f"mu_{a}"], X, num_threads) for a in range(K + 1)]
            )
            return mu[:, 1:] - mu[:, :1]
        if self.kind == "x":
            if p_pair is None:
                raise ValueError("the X-learner needs pairwise propensities")
            tau0 = np.column_stack(
                [_predict(self.boosters[f"tau0_{k}"], X, num_threads) for k in range(1, K + 1)]
            )
            tau1 = np.column_stack(
                [_predict(self.boosters[f"tau1_{k}"], X, num_threads) for k in range(1, K + 1)]
            )
            return p_pair * tau0 + (1.0 - p_pair) * tau1
        if self.kind == "dr":
            return np.column_stack(
                [_predict(self.boosters[f"tau_{k}"], X, num_threads) for k in range(1, K + 1)]
            )
        raise ValueError(f"unknown learner kind {self.kind!r}")


def _predict(booster: lgb.Booster, X: np.ndarray, num_threads: int) -> np.ndarray:
    return np.asarray(booster.predict(X, num_threads=num_threads), dtype=np.float64)


def with_arm(X: np.ndarray, arm: np.ndarray | int) -> np.ndarray:
    """Append the arm code column: array (n, n_features + 1), float32."""
    col = np.broadcast_to(np.asarray(arm, dtype=np.float32), (X.shape[0],))
    return np.column_stack([X, col]).astype(np.float32, copy=False)


def predict_s(booster: lgb.Booster, X: np.ndarray, n_arms: int, num_threads: int) -> np.ndarray:
    """S-learner outcome predictions for every arm: array (n, n_arms)."""
    XS = with_arm(X, 0)
    out = np.empty((X.shape[0], n_arms))
    for a in range(n_arms):
        XS[:, -1] = a
        out[:, a] = _predict(booster, XS, num_threads)
    return out


def fit_s(ctx: FitContext, y: np.ndarray, rows: np.ndarray, seed: int) -> lgb.Booster:
    """S-learner booster on [x, arm] for ``rows``."""
    params = stage_params(S_PARAMS, ctx.user_params, len(rows), "outcome", seed)
    return fit_booster(rows, y[rows], params, ctx.n_estimators, ctx.ref_s)


def fit_t(ctx: FitContext, y: np.ndarray, rows: np.ndarray, seed: int) -> FoldLearner:
    """T-learner: one outcome booster per arm on ``rows`` of that arm."""
    boosters = {}
    for a in range(ctx.n_arms):
        r = rows[ctx.arm[rows] == a]
        params = stage_params(OUTCOME_PARAMS, ctx.user_params, len(r), "outcome", seed + a)
        boosters[f"mu_{a}"] = fit_booster(r, y[r], params, ctx.n_estimators, ctx.ref)
    return FoldLearner("t", boosters, ctx.n_arms - 1)


def fit_x(
    ctx: FitContext, y: np.ndarray, rows: np.ndarray, t_learner: FoldLearner, seed: int
) -> FoldLearner:
    """X-learner stage 2 on ``rows``, imputing with the fold's (in-sample) T-learner."""
    arm = ctx.arm[rows]
    control = rows[arm == 0]
    mu0_of_treated = _predict(t_learner.boosters["mu_0"], ctx.X[rows[arm != 0]], 1)
    imputed_treated = y[rows[arm != 0]] - mu0_of_treated
    treated_arm = arm[arm != 0]
    boosters = {}
    for k in range(1, ctx.n_arms):
        r1 = rows[arm == k]
        d1 = imputed_treated[treated_arm == k]
        d0 = _predict(t_learner.boosters[f"mu_{k}"], ctx.X[control], 1) - y[control]
        for name, r, d in (("tau1", r1, d1), ("tau0", control, d0)):
            params = stage_params(EFFECT_PARAMS, ctx.user_params, len(r), "effect", seed + k)
            boosters[f"{name}_{k}"] = fit_booster(r, d, params, ctx.effect_rounds, ctx.ref)
    return FoldLearner("x", boosters, ctx.n_arms - 1)


def dr_pseudo_outcomes(
    y: np.ndarray, arm: np.ndarray, mu: np.ndarray, e: np.ndarray, clip: float
) -> np.ndarray:
    """Pairwise AIPW pseudo-outcomes, shape (n, K); NaN where the row is in neither arm.

    y: (n,) outcome; arm: (n,) codes; mu: (n, K + 1) outcome model per arm; e: (n, K + 1)
    propensities (received arm possibly logged).
    """
    p = pairwise(e, clip)
    n, K = p.shape
    phi = np.full((n, K), np.nan)
    for k in range(1, K + 1):
        in_pair = (arm == 0) | (arm == k)
        w = (arm[in_pair] == k).astype(np.float64)
        pk = p[in_pair, k - 1]
        m1, m0 = mu[in_pair, k], mu[in_pair, 0]
        yy = y[in_pair]
        phi[in_pair, k - 1] = m1 - m0 + w * (yy - m1) / pk - (1.0 - w) * (yy - m0) / (1.0 - pk)
    return phi


def fit_dr(
    ctx: FitContext,
    y: np.ndarray,
    rows: np.ndarray,
    mu: np.ndarray,
    e: np.ndarray,
    seed: int,
) -> FoldLearner:
    """DR-learner on ``rows``; mu, e: nuisances of shape (len(rows), K + 1) for those rows."""
    phi = dr_pseudo_outcomes(y[rows], ctx.arm[rows], mu, e, ctx.clip)
    boosters = {}
    for k in range(1, ctx.n_arms):
        ok = ~np.isnan(phi[:, k - 1])
        r = rows[ok]
        params = stage_params(EFFECT_PARAMS, ctx.user_params, len(r), "effect", seed + k)
        boosters[f"tau_{k}"] = fit_booster(r, phi[ok, k - 1], params, ctx.effect_rounds, ctx.ref)
    return FoldLearner("dr", boosters, ctx.n_arms - 1)
