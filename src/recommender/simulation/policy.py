"""The historical logging policy: a profile-dependent softmax over arms with an exploration floor.

Arms are ``none`` (index 0) followed by ``NUDGE_TYPES``. The policy sees only observable data
(profile, the 360 overall score and engagement observed at the wave that opens the period), so
logged propensities make the effects identifiable, while naive comparisons are confounded: low
360 scorers get ``feedback_request`` and ``goal_clarity``, low-engagement teams ``recognition``
and ``wellbeing_checkin``, senior managers ``delegation``, and strong performers nothing.
"""

from __future__ import annotations

from typing import Final

import numpy as np
import pandas as pd

from recommender.simulation.catalogue import NUDGE_TYPES

POLICY_NAME: Final = "sim-logging-v1"
EXPLORATION: Final = 0.25
"""Share of probability spread evenly over the available arms: with at most 11 arms every arm
keeps at least 0.25 / 11 ≈ 0.023 >= 0.02."""

_T = {name: 1 + t for t, name in enumerate(NUDGE_TYPES)}


def logging_probabilities(features: pd.DataFrame, available: np.ndarray) -> np.ndarray:
    """Arm probabilities per decision, shape (n, 1 + T), zero for types the org does not use.

    features: one row per decision with ``level``, ``team_size``, the five traits (0-100),
        ``score_360`` (observed overall 360, 1-5) and ``engagement`` (observed, 0-100), NaN
        allowed in the last two (replaced by the mean).
    available: (n, T) bool, types available in the manager's org.
    """
    n = len(features)
    score = features["score_360"].to_numpy(dtype=np.float64)
    eng = features["engagement"].to_numpy(dtype=np.float64)
    s = (np.where(np.isnan(score), np.nanmean(score) if n else 0.0, score) - 3.55) / 0.4
    e = (np.where(np.isnan(eng), np.nanmean(eng) if n else 0.0, eng) - 68.0) / 12.0
    level = features["level"].to_numpy(dtype=object)
    first = (level == "first_line").astype(np.float64)
    senior = (level == "senior").astype(np.float64)
    log_team = np.log(features["team_size"].to_numpy(dtype=np.float64) / 7.0)
    openness = (features["openness"].to_numpy(dtype=np.float64) - 50.0) / 20.0
    extraversion = (features["extraversion"].to_numpy(dtype=np.float64) - 50.0) / 20.0

    logit = np.zeros((n, 1 + len(NUDGE_TYPES)))
    logit[:, 0] = 0.8 + 0.4 * s
    logit[:, _T["feedback_request"]] = 0.5 - 0.9 * s
    logit[:, _T["goal_clarity"]] = 0.5 - 0.4 * s
    logit[:, _T["one_on_one_prep"]] = 0.2 + 0.6 * first
    logit[:, _T["recognition"]] = 0.2 - 0.7 * e
    logit[:, _T["wellbeing_checkin"]] = 0.0 - 0.6 * e
    logit[:, _T["delegation"]] = -0.2 + 0.9 * senior
    logit[:, _T["coaching_question"]] = 0.1 + 0.3 * openness
    logit[:, _T["decision_transparency"]] = -0.2 + 0.5 * senior
    logit[:, _T["growth_conversation"]] = 0.0 + 0.3 * extraversion
    logit[:, _T["team_celebration"]] = -0.2 + 0.3 * log_team

    allowed = np.concatenate([np.ones((n, 1), dtype=bool), available], axis=1)
    logit = np.where(allowed, logit, -np.inf)
    soft = np.exp(logit - logit.max(axis=1, keepdims=True))
    soft /= soft.sum(axis=1, keepdims=True)
    uniform = allowed / allowed.sum(axis=1, keepdims=True)
    return (1.0 - EXPLORATION) * soft + EXPLORATION * uniform


def sample_arms(probabilities: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """One arm per row drawn from ``probabilities`` (n, n_arms) by inverse CDF, shape (n,)."""
    cumulative = np.cumsum(probabilities, axis=1)
    last = probabilities.shape[1] - 1 - np.argmax(probabilities[:, ::-1] > 0, axis=1)
    cumulative[np.arange(len(cumulative)), last] = np.inf  # absorb rounding of the total
    u = rng.random(len(probabilities))
    return np.argmax(cumulative > u[:, None], axis=1)
