"""True values of policies on the manager-periods a round decided (simulation ground truth).

Evaluation only: these functions read the simulator's ground truth, which never reaches the
folder training reads. Values are in objective units (the training config's weighted sum of
standardised outcome changes, ``recommender.evaluation.Objective``) per manager-period.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from recommender import evaluation_metrics as em
from recommender.evaluation import Objective, truth_matrix
from recommender.simulation import ARMS

POLICIES = ("served", "served_expected", "greedy", "logging", "uniform", "none", "oracle")
"""Policies valued per round: the served decisions as drawn (``served``) and in expectation
over the logged probabilities (``served_expected``), the champion's most likely arm
(``greedy``), the historical logging policy, uniform over eligible arms, no nudge, the oracle."""


@dataclass(frozen=True)
class RoundDecisions:
    """What one round decided, aligned by row (n manager-periods).

    keys: columns manager_id (str), period_start (datetime64[ns]).
    served_arm: shape (n,), index into ``simulation.ARMS`` of the arm sent to the world.
    served_probs: shape (n, len(ARMS)), the deciding policy's probability of each arm.
    logging_probs: shape (n, len(ARMS)), the historical logging policy's probabilities for the
        same decision frames (``simulation.policy.logging_probabilities``).
    """

    keys: pd.DataFrame
    served_arm: np.ndarray
    served_probs: np.ndarray
    logging_probs: np.ndarray

    def __post_init__(self) -> None:
        n, arms = len(self.keys), len(ARMS)
        if self.served_arm.shape != (n,):
            raise ValueError(f"served_arm must have shape ({n},), got {self.served_arm.shape}")
        for name in ("served_probs", "logging_probs"):
            value = getattr(self, name)
            if value.shape != (n, arms):
                raise ValueError(f"{name} must have shape ({n}, {arms}), got {value.shape}")

    @staticmethod
    def concat(parts: list[RoundDecisions]) -> RoundDecisions:
        """Rows of several rounds (or history periods) stacked."""
        return RoundDecisions(
            keys=pd.concat([p.keys for p in parts], ignore_index=True),
            served_arm=np.concatenate([p.served_arm for p in parts]),
            served_probs=np.concatenate([p.served_probs for p in parts]),
            logging_probs=np.concatenate([p.logging_probs for p in parts]),
        )


def true_values(
    decisions: RoundDecisions,
    truth: pd.DataFrame,
    objective: Objective,
    confidence: float = 0.95,
) -> dict[str, float]:
    """True value (mean objective per manager-period) of each policy in ``POLICIES``.

    Returns ``true_value_<policy>`` with ``_ci_low``/``_ci_high`` (normal interval over
    manager-periods); ``gain_<policy>``: paired gain over no nudge on the same manager-periods
    (removes the drift common to all arms), with its interval; ``served_minus_logging``
    (paired, with its interval); ``npv_served``: (served_expected - uniform) / (oracle -
    uniform), 0 = random, 1 = oracle; ``regret_served``: oracle - served_expected;
    ``gap_closed_served``: (served_expected - logging) / (oracle - logging), 0 = as good as the
    logging policy, 1 = oracle; and ``n_manager_periods``. Raises ValueError when the truth
    lacks a decided manager-period or the arm it was sent.
    """
    mu_k = truth_matrix(decisions.keys, truth, ARMS, objective.outcome_names)
    available = np.isfinite(mu_k).all(axis=2)
    n = len(decisions.keys)
    if n == 0 or not available[:, 0].all():
        raise ValueError("truth: a decided manager-period has no ground-truth row")
    if not available[np.arange(n), decisions.served_arm].all():
        raise ValueError("truth: a served arm has no ground-truth row")
    mu = np.where(available, objective.score(np.nan_to_num(mu_k)), 0.0)
    uniform = available / available.sum(axis=1, keepdims=True)
    greedy = np.zeros_like(decisions.served_probs)
    greedy[np.arange(n), np.argmax(decisions.served_probs, axis=1)] = 1.0
    per_unit = {
        "served": mu[np.arange(n), decisions.served_arm],
        "served_expected": np.einsum("ij,ij->i", decisions.served_probs, mu),
        "greedy": np.einsum("ij,ij->i", greedy, mu),
        "logging": np.einsum("ij,ij->i", decisions.logging_probs, mu),
        "uniform": np.einsum("ij,ij->i", uniform, mu),
        "none": mu[:, 0],
        "oracle": np.where(available, mu, -np.inf).max(axis=1),
    }
    z = _z(confidence)
    out: dict[str, float] = {"n_manager_periods": float(n)}
    for name, values in per_unit.items():
        mean, half = _mean_ci(values, z)
        out[f"true_value_{name}"] = mean
        out[f"true_value_{name}_ci_low"] = mean - half
        out[f"true_value_{name}_ci_high"] = mean + half
    for name in ("served", "served_expected", "greedy", "logging", "uniform", "oracle"):
        mean, half = _mean_ci(per_unit[name] - per_unit["none"], z)
        out[f"gain_{name}"] = mean
        out[f"gain_{name}_ci_low"] = mean - half
        out[f"gain_{name}_ci_high"] = mean + half
    mean, half = _mean_ci(per_unit["served"] - per_unit["logging"], z)
    out["served_minus_logging"] = mean
    out["served_minus_logging_ci_low"] = mean - half
    out["served_minus_logging_ci_high"] = mean + half
    out["npv_served"] = em.normalised_policy_value(
        out["true_value_served_expected"], out["true_value_uniform"], out["true_value_oracle"]
    )
    out["regret_served"] = out["true_value_oracle"] - out["true_value_served_expected"]
    gap = out["true_value_oracle"] - out["true_value_logging"]
    out["gap_closed_served"] = (
        (out["true_value_served_expected"] - out["true_value_logging"]) / gap if gap > 0 else np.nan
    )
    return out


def _z(confidence: float) -> float:
    from scipy.stats import norm

    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must be in (0, 1), got {confidence}")
    return float(norm.ppf(0.5 + confidence / 2.0))


def _mean_ci(values: np.ndarray, z: float) -> tuple[float, float]:
    """Mean and half-width ``z * SE`` of per-unit values, shape (n,)."""
    mean = float(np.mean(values))
    half = float(z * np.std(values, ddof=1) / np.sqrt(len(values))) if len(values) > 1 else 0.0
    return mean, half
