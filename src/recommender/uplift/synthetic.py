"""Small synthetic uplift problems with planted heterogeneous effects (tests and benchmarks).

Not the organisation simulator: a generic, fast generator with a confounded logging policy and
known per-row effects, so any uplift estimator can be scored (e.g. by PEHE).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

SEGMENTS = ("a", "b", "c", "d")


@dataclass(frozen=True)
class UpliftProblem:
    """A synthetic logged data set with ground truth.

    X: DataFrame (n, n_numeric + 2): numeric x0.., categorical "segment" and integer "tenure".
    treatment: (n,) arm labels (object), control label ``control``.
    y: (n, n_outcomes) observed outcomes. propensity: (n,) logging probability of the received
    arm. true_effect: (n, n_treatments, n_outcomes) planted tau_k(x) vs control, in y units.
    """

    X: pd.DataFrame
    treatment: np.ndarray
    y: np.ndarray
    propensity: np.ndarray
    true_effect: np.ndarray
    treatments: tuple[str, ...]
    control: str


def make_uplift_problem(
    n: int = 4000,
    n_treatments: int = 3,
    n_outcomes: int = 1,
    n_numeric: int = 6,
    effect_sd: float = 1.0,
    noise_sd: float = 3.0,
    ate_scale: float = 0.5,
    confounding: float = 1.0,
    control_share: float = 0.3,
    seed: int = 0,
) -> UpliftProblem:
    """Draw a problem; effects tau_k(x) = ate_k + effect_sd * h_k(x), h_k of unit SD.

    ate_k spread evenly over [-ate_scale, 2 * ate_scale] across treatments (so types differ in
    sign and rank); h_k depends on x2, x3 and the segment; the baseline outcome depends strongly
    on x0 and x1 (SD about 2); the logging policy favours treatments by x0 (``confounding``) and
    by segment, and gives control about ``control_share`` of rows. noise_sd is the outcome noise.
    """
    if n_numeric < 4:
        raise ValueError("n_numeric must be >= 4")
    rng = np.random.default_rng(seed)
    Xn = rng.normal(size=(n, n_numeric))
    segment = rng.integers(0, len(SEGMENTS), size=n)
    tenure = rng.integers(0, 120, size=n)
    K = n_treatments
    treatments = tuple(f"type_{k + 1:02d}" for k in range(K))
    control = "none"

    # Heterogeneity: treatment-specific directions in (x2, x3, segment), standardised.
    h = np.empty((n, K))
    for k in range(K):
        angle = np.pi * k / max(K, 1)
        raw = (
            np.cos(angle) * Xn[:, 2]
            + np.sin(angle) * np.tanh(Xn[:, 3] * 1.5)
            + 0.8 * (segment == k % len(SEGMENTS))
        )
        h[:, k] = (raw - raw.mean()) / raw.std()
    ate = np.linspace(-ate_scale, 2 * ate_scale, K) if K > 1 else np.array([ate_scale])
    scale = np.linspace(1.0, 0.6, n_outcomes)
    tau = (ate[None, :] + effect_sd * h)[:, :, None] * scale[None, None, :]

    logits = np.zeros((n, K + 1))
    base = np.log((1 - control_share) / control_share / K)
    for k in range(K):
        logits[:, k + 1] = base + confounding * (
            0.8 * Xn[:, 0] * np.cos(1.7 * k) + 0.5 * (segment == (k + 1) % 4)
        )
    prob = np.exp(logits - logits.max(axis=1, keepdims=True))
    prob /= prob.sum(axis=1, keepdims=True)
    arm = (rng.random(n)[:, None] > np.cumsum(prob, axis=1)).sum(axis=1)
    arm = np.minimum(arm, K)

    baseline = 1.5 * Xn[:, 0] + np.sin(2 * Xn[:, 1]) + 0.3 * (segment - 1.5) + tenure / 120.0
    y = np.empty((n, n_outcomes))
    for o in range(n_outcomes):
        effect = np.zeros(n)
        treated = arm > 0
        effect[treated] = tau[treated, arm[treated] - 1, o]
        y[:, o] = scale[o] * baseline + effect + rng.normal(scale=noise_sd * scale[o], size=n)

    frame = pd.DataFrame(Xn, columns=[f"x{i}" for i in range(n_numeric)])
    frame["segment"] = pd.Categorical([SEGMENTS[s] for s in segment], categories=SEGMENTS)
    frame["tenure"] = tenure
    labels = np.array((control, *treatments), dtype=object)[arm]
    return UpliftProblem(
        X=frame,
        treatment=labels,
        y=y,
        propensity=prob[np.arange(n), arm],
        true_effect=tau,
        treatments=treatments,
        control=control,
    )


def pehe(effect: np.ndarray, true_effect: np.ndarray) -> np.ndarray:
    """Root mean squared effect error per (treatment, outcome): (n, K, O) x2 -> (K, O)."""
    return np.sqrt(np.mean((effect - true_effect) ** 2, axis=0))
