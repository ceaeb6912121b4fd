"""Propensity of every arm: cross-fitted multinomial LightGBM, optionally with logged values.

The logged propensity of a row is the probability the logging policy had of choosing the arm the
row actually *received*; it says nothing about the other arms. The X- and DR-learners and the
held-out losses need the probability of the control arm and of each treatment at every row, so:

- a multinomial model ``e_a(x)`` over all arms is always fitted (cross-fitted: each row's value
  comes from a model that did not see the row);
- when logged propensities are given, the received arm's entry is replaced by the logged value
  (exact, and the one inverse-propensity weights of the received arm must use), the other arms
  keep the model's value. The row then no longer sums to one; nothing downstream needs it to.

All values are clipped below at ``propensity_clip`` (and pairwise probabilities to
[clip, 1 - clip]) so inverse-propensity weights stay bounded.
"""

from __future__ import annotations

from typing import Any

import lightgbm as lgb
import numpy as np
import pandas as pd

from recommender.uplift.base import JSONScalar, fit_booster, stage_params
from recommender.uplift.config import PROPENSITY_PARAMS


def propensity_rounds(n_estimators: int) -> int:
    """Boosting rounds of the multinomial model (small trees at learning rate 0.2)."""
    return max(10, n_estimators // 2)


def fit_propensity(
    arm: np.ndarray,
    n_arms: int,
    rows: np.ndarray,
    *,
    n_estimators: int,
    user_params: dict[str, Any] | None,
    reference: lgb.Dataset,
    seed: int,
) -> lgb.Booster:
    """Fit e_a(x) on ``rows`` (sorted indices into ``reference``'s rows): multinomial over arm
    codes 0..n_arms-1 (arm: (n,) codes of all rows)."""
    params = stage_params(PROPENSITY_PARAMS, user_params, len(rows), "outcome", seed)
    params["num_class"] = n_arms
    return fit_booster(rows, arm[rows], params, propensity_rounds(n_estimators), reference)


def predict_propensity(booster: lgb.Booster, X: np.ndarray, num_threads: int = 1) -> np.ndarray:
    """Fitted probabilities of each arm, array of shape (n, n_arms)."""
    return np.asarray(booster.predict(X, num_threads=num_threads), dtype=np.float64)


def with_logged(e: np.ndarray, arm: np.ndarray, logged: np.ndarray | None) -> np.ndarray:
    """Replace the received arm's fitted propensity by the logged one, shape (n, n_arms)."""
    if logged is None:
        return e
    out = e.copy()
    out[np.arange(len(arm)), arm] = logged
    return out


def pairwise(e: np.ndarray, clip: float) -> np.ndarray:
    """P(arm k | x, arm in {control, k}) = e_k / (e_k + e_0), shape (n, n_arms - 1), clipped."""
    e = np.maximum(e, clip)
    p = e[:, 1:] / (e[:, 1:] + e[:, :1])
    return np.clip(p, clip, 1.0 - clip)


def overlap_report(
    e_received: np.ndarray,
    arm: np.ndarray,
    labels: tuple[JSONScalar, ...],
    clip: float,
    source: str,
) -> pd.DataFrame:
    """Per arm, over rows that received it: distribution of the propensity of the received arm.

    e_received: array of shape (n,), unclipped propensity of each row's received arm.
    Returns one row per arm (control first) with n, min, q01, q05, q50, q95, max, share_clipped
    (share of rows below ``clip``, whose inverse-propensity weight is capped) and source
    ("fitted" or "logged").
    """
    records = []
    for code, label in enumerate(labels):
        v = e_received[arm == code]
        q = np.quantile(v, [0.01, 0.05, 0.5, 0.95])
        records.append(
            {
                "arm": label,
                "n": int(v.size),
                "min": float(v.min()),
                "q01": float(q[0]),
                "q05": float(q[1]),
                "q50": float(q[2]),
                "q95": float(q[3]),
                "max": float(v.max()),
                "share_clipped": float(np.mean(v < clip)),
                "source": source,
            }
        )
    return pd.DataFrame.from_records(records).set_index("arm")
