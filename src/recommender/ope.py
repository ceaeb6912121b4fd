"""Off-policy evaluation of nudge policies from logged bandit feedback.

Every function here is a pure, vectorised numpy function over arrays; nothing depends on the
project's tables. The conventions follow Open Bandit Pipeline (``obp.ope.estimators``):

- ``rewards``: array of shape (n_rounds,), observed outcome of each logged decision, in the
  outcome's own units (e.g. change of the 360 score on its 1-5 scale).
- ``actions``: int array of shape (n_rounds,), logged action index in ``[0, n_actions)``;
  action 0 is the control arm ("no nudge", ``constants.CONTROL``).
- ``logging_propensity``: array of shape (n_rounds,), probability in (0, 1] that the logging
  policy had of choosing the logged action.
- ``target_probs``: array of shape (n_rounds, n_actions), action distribution of the policy
  being evaluated for each round; every row sums to 1.
- ``q_hat``: array of shape (n_rounds, n_actions), predicted expected reward of every action
  for each round (outcome model of the doubly robust estimator); it must not be fitted on the
  evaluation rows.

Intervals are bootstrap percentile intervals over rounds (resampling rows with replacement);
resamples are drawn in chunks so memory stays bounded for ``n_rounds`` up to ~10**6.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Literal

import numpy as np
import pandas as pd

Estimator = Literal["ips", "snips", "dr"]
ESTIMATORS: tuple[Estimator, ...] = ("ips", "snips", "dr")

_MAX_BOOTSTRAP_ELEMENTS = 4_000_000
"""Largest resample-index matrix (resamples x rows) held in memory at once (~16 MB of int32)."""

_ROW_SUM_TOL = 1e-6


@dataclass(frozen=True)
class PolicyValue:
    """Estimated value of a policy (or difference of two policies) with a confidence interval.

    estimate: point estimate, mean reward per round in the reward's units.
    ci_low, ci_high: bootstrap percentile interval (NaN when ``n_bootstrap == 0``).
    n: number of logged rounds used.
    estimator: name of the estimator, e.g. ``"dr"``, ``"snips"``, ``"on_policy"``,
        ``"dr_difference"``.
    """

    estimate: float
    ci_low: float
    ci_high: float
    n: int
    estimator: str = "unspecified"

    def to_dict(self) -> dict[str, float | int | str]:
        """Plain dict (JSON- and MLflow-friendly)."""
        return asdict(self)


@dataclass(frozen=True)
class WeightDiagnostics:
    """Importance-weight diagnostics of a target policy against the logging policy.

    n: rounds. mean_weight: mean importance weight (close to 1 under good overlap, in
    expectation exactly 1 with exact propensities). max_weight: largest weight. ess: Kish
    effective sample size ``(sum w)**2 / sum w**2``. ess_fraction: ``ess / n``. share_zero:
    fraction of rounds whose logged action the target policy never takes. n_capped: rounds
    whose weight was capped. low_overlap: ``ess_fraction`` below the threshold used.
    """

    n: int
    mean_weight: float
    max_weight: float
    ess: float
    ess_fraction: float
    share_zero: float
    n_capped: int
    low_overlap: bool

    def to_dict(self) -> dict[str, float | int | bool]:
        """Plain dict (JSON- and MLflow-friendly)."""
        return asdict(self)


# --------------------------------------------------------------------------- validation


def _as_1d_float(name: str, values: object, n: int | None = None) -> np.ndarray:
    arr = np.asarray(values, dtype=float)
    if arr.ndim != 1:
        raise ValueError(f"{name} must be 1-D of shape (n_rounds,), got shape {arr.shape}")
    if n is not None and arr.shape[0] != n:
        raise ValueError(f"{name} must have length {n}, got {arr.shape[0]}")
    if arr.shape[0] == 0:
        raise ValueError(f"{name} must not be empty")
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{name} contains NaN or infinite values")
    return arr


def _as_actions(actions: object, n: int, n_actions: int) -> np.ndarray:
    arr = np.asarray(actions)
    if arr.ndim != 1 or arr.shape[0] != n:
        raise ValueError(f"actions must be 1-D of length {n}, got shape {arr.shape}")
    if not np.issubdtype(arr.dtype, np.integer):
        if np.issubdtype(arr.dtype, np.floating) and np.all(np.isfinite(arr)):
            if not np.all(arr == np.round(arr)):
                raise ValueError("actions must be integer action indices")
        else:
            raise ValueError(f"actions must be integer action indices, got dtype {arr.dtype}")
    arr = arr.astype(np.int64)
    if arr.min() < 0 or arr.max() >= n_actions:
        raise ValueError(
            f"actions must lie in [0, {n_actions}), got range [{arr.min()}, {arr.max()}]"
        )
    return arr


def _as_matrix(name: str, values: object, n: int, n_actions: int | None = None) -> np.ndarray:
    arr = np.asarray(values, dtype=float)
    if arr.ndim != 2 or arr.shape[0] != n:
        raise ValueError(f"{name} must be 2-D of shape ({n}, n_actions), got shape {arr.shape}")
    if n_actions is not None and arr.shape[1] != n_actions:
        raise ValueError(f"{name} must have {n_actions} columns, got {arr.shape[1]}")
    if arr.shape[1] < 1:
        raise ValueError(f"{name} must have at least one action column")
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{name} contains NaN or infinite values")
    return arr


def _as_probs(name: str, values: object, n: int, n_actions: int | None = None) -> np.ndarray:
    arr = _as_matrix(name, values, n, n_actions)
    if np.any(arr < 0):
        raise ValueError(f"{name} must be non-negative probabilities")
    sums = arr.sum(axis=1)
    bad = np.flatnonzero(np.abs(sums - 1.0) > _ROW_SUM_TOL)
    if bad.size:
        raise ValueError(
            f"{name} rows must sum to 1; row {bad[0]} sums to {sums[bad[0]]:.6g} "
            f"({bad.size} bad rows)"
        )
    return arr


def _as_propensity(values: object, n: int) -> np.ndarray:
    arr = _as_1d_float("logging_propensity", values, n)
    if np.any(arr <= 0) or np.any(arr > 1):
        raise ValueError("logging_propensity must lie in (0, 1]")
    return arr


def _check_bootstrap_args(n_bootstrap: int, confidence: float) -> None:
    if isinstance(n_bootstrap, bool) or not isinstance(n_bootstrap, int | np.integer):
        raise ValueError(f"n_bootstrap must be an int >= 0, got {n_bootstrap!r}")
    if n_bootstrap < 0:
        raise ValueError(f"n_bootstrap must be >= 0, got {n_bootstrap}")
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must lie in (0, 1), got {confidence}")


def _check_weight_cap(weight_cap: float | None) -> None:
    if weight_cap is not None and not (np.isfinite(weight_cap) and weight_cap > 0):
        raise ValueError(f"weight_cap must be a positive finite number or None, got {weight_cap}")


# --------------------------------------------------------------------------- bootstrap


def bootstrap_means(
    terms: np.ndarray,
    n_bootstrap: int = 1000,
    random_state: int | np.random.Generator | None = 0,
    max_elements: int = _MAX_BOOTSTRAP_ELEMENTS,
) -> np.ndarray:
    """Column means of ``terms`` over row-resamples drawn with replacement.

    terms: array of shape (n_rounds,) or (n_rounds, k), per-round quantities.
    n_bootstrap: number of resamples. max_elements: largest index matrix drawn at once
    (resamples per chunk = ``max_elements // n_rounds``, at least 1).
    Returns an array of shape (n_bootstrap, k) (k = 1 for 1-D input). Passing the same
    ``random_state`` to two calls with the same ``n_rounds`` reuses the same resampled rows,
    which is what a paired comparison needs.
    """
    arr = np.asarray(terms, dtype=float)
    if arr.ndim == 1:
        arr = arr[:, None]
    if arr.ndim != 2 or arr.shape[0] == 0:
        raise ValueError(f"terms must be of shape (n_rounds,) or (n_rounds, k), got {arr.shape}")
    n, k = arr.shape
    rng = np.random.default_rng(random_state)
    out = np.empty((n_bootstrap, k))
    chunk = max(1, int(max_elements) // n)
    index_dtype = np.int32 if n < np.iinfo(np.int32).max else np.int64
    columns = [np.ascontiguousarray(arr[:, j]) for j in range(k)]
    for start in range(0, n_bootstrap, chunk):
        stop = min(start + chunk, n_bootstrap)
        idx = rng.integers(0, n, size=(stop - start, n), dtype=index_dtype)
        for j, col in enumerate(columns):
            out[start:stop, j] = col[idx].mean(axis=1)
    return out


def percentile_interval(samples: np.ndarray, confidence: float = 0.95) -> tuple[float, float]:
    """Percentile interval of bootstrap ``samples`` (shape (n_bootstrap,)), ignoring NaNs."""
    values = np.asarray(samples, dtype=float)
    values = values[np.isfinite(values)]
    if values.size == 0:
        return float("nan"), float("nan")
    alpha = 1.0 - confidence
    low, high = np.percentile(values, [100 * alpha / 2, 100 * (1 - alpha / 2)])
    return float(low), float(high)


# A statistic is per-round terms (n, k) plus a function of their column means (B, k) -> (B,).
_Combine = Callable[[np.ndarray], np.ndarray]


def _ratio(means: np.ndarray) -> np.ndarray:
    positive = means[:, 1] > 0
    safe = np.where(positive, means[:, 1], 1.0)
    return np.where(positive, means[:, 0] / safe, np.nan)


def _first(means: np.ndarray) -> np.ndarray:
    return means[:, 0]


def _estimate_with_ci(
    terms: np.ndarray,
    combine: _Combine,
    estimator: str,
    n_bootstrap: int,
    confidence: float,
    random_state: int | np.random.Generator | None,
) -> PolicyValue:
    n = terms.shape[0]
    estimate = float(combine(terms.mean(axis=0)[None, :])[0])
    if n_bootstrap == 0:
        return PolicyValue(estimate, float("nan"), float("nan"), n, estimator)
    samples = combine(bootstrap_means(terms, n_bootstrap, random_state))
    low, high = percentile_interval(samples, confidence)
    return PolicyValue(estimate, low, high, n, estimator)


# --------------------------------------------------------------------------- estimators


def importance_weights(
    actions: np.ndarray,
    logging_propensity: np.ndarray,
    target_probs: np.ndarray,
    weight_cap: float | None = None,
) -> np.ndarray:
    """Importance weights ``target_probs[i, actions[i]] / logging_propensity[i]``.

    Returns an array of shape (n_rounds,), optionally capped at ``weight_cap`` (clipping
    trades a little bias for lower variance).
    """
    pi = np.asarray(target_probs, dtype=float)
    if pi.ndim != 2:
        raise ValueError(f"target_probs must be 2-D (n_rounds, n_actions), got shape {pi.shape}")
    n, n_actions = pi.shape
    pi = _as_probs("target_probs", pi, n)
    a = _as_actions(actions, n, n_actions)
    p = _as_propensity(logging_propensity, n)
    _check_weight_cap(weight_cap)
    return _weights(pi, a, p, weight_cap)


def _weights(pi: np.ndarray, a: np.ndarray, p: np.ndarray, weight_cap: float | None) -> np.ndarray:
    """Validated inputs -> ``pi[i, a[i]] / p[i]``, capped at ``weight_cap`` when given."""
    w = pi[np.arange(pi.shape[0]), a] / p
    return w if weight_cap is None else np.minimum(w, weight_cap)


def _validated(
    rewards: object,
    actions: object,
    logging_propensity: object,
    target_probs: object,
    q_hat: object | None,
    n_bootstrap: int,
    confidence: float,
    weight_cap: float | None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray | None]:
    r = _as_1d_float("rewards", rewards)
    n = r.shape[0]
    pi = _as_probs("target_probs", target_probs, n)
    n_actions = pi.shape[1]
    a = _as_actions(actions, n, n_actions)
    p = _as_propensity(logging_propensity, n)
    q = None if q_hat is None else _as_matrix("q_hat", q_hat, n, n_actions)
    _check_bootstrap_args(n_bootstrap, confidence)
    _check_weight_cap(weight_cap)
    return r, a, _weights(pi, a, p, weight_cap), pi, q


def _ips_terms(r: np.ndarray, w: np.ndarray) -> np.ndarray:
    return (w * r)[:, None]


def _snips_terms(r: np.ndarray, w: np.ndarray) -> np.ndarray:
    return np.column_stack([w * r, w])


def _dr_terms(
    r: np.ndarray, a: np.ndarray, w: np.ndarray, pi: np.ndarray, q: np.ndarray
) -> np.ndarray:
    direct = np.einsum("ij,ij->i", pi, q)
    return (direct + w * (r - q[np.arange(r.shape[0]), a]))[:, None]


def ips_value(
    rewards: np.ndarray,
    actions: np.ndarray,
    logging_propensity: np.ndarray,
    target_probs: np.ndarray,
    n_bootstrap: int = 1000,
    confidence: float = 0.95,
    random_state: int | np.random.Generator | None = 0,
    weight_cap: float | None = None,
) -> PolicyValue:
    """Inverse propensity scoring: ``mean(w * r)`` with ``w = pi(a|x) / mu(a|x)``.

    Unbiased when the logging propensities are exact and the target policy only takes actions
    the logger could take; high variance when weights are large. Shapes: see module docstring.
    weight_cap: optional upper bound on the weights (clipped IPS).
    """
    r, _, w, _, _ = _validated(
        rewards,
        actions,
        logging_propensity,
        target_probs,
        None,
        n_bootstrap,
        confidence,
        weight_cap,
    )
    return _estimate_with_ci(_ips_terms(r, w), _first, "ips", n_bootstrap, confidence, random_state)


def snips_value(
    rewards: np.ndarray,
    actions: np.ndarray,
    logging_propensity: np.ndarray,
    target_probs: np.ndarray,
    n_bootstrap: int = 1000,
    confidence: float = 0.95,
    random_state: int | np.random.Generator | None = 0,
    weight_cap: float | None = None,
) -> PolicyValue:
    """Self-normalised IPS: ``sum(w * r) / sum(w)``.

    Slightly biased, much lower variance than IPS, invariant to a constant shift of rewards.
    Returns NaN when every weight is 0 (the target never takes a logged action).
    """
    r, _, w, _, _ = _validated(
        rewards,
        actions,
        logging_propensity,
        target_probs,
        None,
        n_bootstrap,
        confidence,
        weight_cap,
    )
    return _estimate_with_ci(
        _snips_terms(r, w), _ratio, "snips", n_bootstrap, confidence, random_state
    )


def dr_value(
    rewards: np.ndarray,
    actions: np.ndarray,
    logging_propensity: np.ndarray,
    target_probs: np.ndarray,
    q_hat: np.ndarray,
    n_bootstrap: int = 1000,
    confidence: float = 0.95,
    random_state: int | np.random.Generator | None = 0,
    weight_cap: float | None = None,
) -> PolicyValue:
    """Doubly robust: ``mean(sum_a pi(a|x) q(x,a) + w * (r - q(x, a_logged)))``.

    Unbiased if either the propensities or ``q_hat`` are correct; with an exact ``q_hat`` the
    correction term has mean zero and DR reduces to the direct method.
    """
    r, a, w, pi, q = _validated(
        rewards,
        actions,
        logging_propensity,
        target_probs,
        q_hat,
        n_bootstrap,
        confidence,
        weight_cap,
    )
    assert q is not None
    return _estimate_with_ci(
        _dr_terms(r, a, w, pi, q), _first, "dr", n_bootstrap, confidence, random_state
    )


def direct_method_value(target_probs: np.ndarray, q_hat: np.ndarray) -> float:
    """Direct method (plug-in) value ``mean(sum_a pi(a|x) q(x,a))`` without logged rewards."""
    pi = np.asarray(target_probs, dtype=float)
    if pi.ndim != 2:
        raise ValueError(f"target_probs must be 2-D (n_rounds, n_actions), got shape {pi.shape}")
    pi = _as_probs("target_probs", pi, pi.shape[0])
    q = _as_matrix("q_hat", q_hat, pi.shape[0], pi.shape[1])
    return float(np.einsum("ij,ij->i", pi, q).mean())


def _statistic(
    estimator: str,
    r: np.ndarray,
    a: np.ndarray,
    w: np.ndarray,
    pi: np.ndarray,
    q: np.ndarray | None,
) -> tuple[np.ndarray, _Combine]:
    if estimator == "ips":
        return _ips_terms(r, w), _first
    if estimator == "snips":
        return _snips_terms(r, w), _ratio
    if estimator == "dr":
        if q is None:
            raise ValueError("q_hat is required for the dr estimator")
        return _dr_terms(r, a, w, pi, q), _first
    raise ValueError(f"estimator must be one of {ESTIMATORS}, got {estimator!r}")


def dr_value_difference(
    target_a: np.ndarray,
    target_b: np.ndarray,
    rewards: np.ndarray,
    actions: np.ndarray,
    logging_propensity: np.ndarray,
    q_hat: np.ndarray | None = None,
    n_bootstrap: int = 1000,
    confidence: float = 0.95,
    random_state: int | np.random.Generator | None = 0,
    weight_cap: float | None = None,
    estimator: Estimator = "dr",
    paired: bool = True,
) -> PolicyValue:
    """Value difference ``V(target_a) - V(target_b)`` on the same logged rounds.

    target_a, target_b: arrays of shape (n_rounds, n_actions), e.g. candidate and champion.
    The interval comes from a paired bootstrap: each resample uses the same rows for both
    policies, so the shared noise of the logged rewards cancels and the interval is much
    tighter than comparing two separate intervals. ``paired=False`` resamples the two
    policies independently (only for comparison / diagnostics). ``estimator`` defaults to DR
    (``q_hat`` required); ``"ips"`` and ``"snips"`` are accepted too.
    Use :func:`is_significantly_worse` on the result for the promotion gate.
    """
    r, a, w_a, pi_a, q = _validated(
        rewards, actions, logging_propensity, target_a, q_hat, n_bootstrap, confidence, weight_cap
    )
    pi_b = _as_probs("target_b", target_b, r.shape[0], pi_a.shape[1])
    w_b = _weights(pi_b, a, _as_propensity(logging_propensity, r.shape[0]), weight_cap)
    terms_a, comb_a = _statistic(estimator, r, a, w_a, pi_a, q)
    terms_b, comb_b = _statistic(estimator, r, a, w_b, pi_b, q)
    ka = terms_a.shape[1]
    name = f"{estimator}_difference"
    n = r.shape[0]

    def combine(means: np.ndarray) -> np.ndarray:
        return comb_a(means[:, :ka]) - comb_b(means[:, ka:])

    terms = np.column_stack([terms_a, terms_b])
    if paired or n_bootstrap == 0:
        return _estimate_with_ci(terms, combine, name, n_bootstrap, confidence, random_state)
    estimate = float(combine(terms.mean(axis=0)[None, :])[0])
    rng = np.random.default_rng(random_state)
    samples = comb_a(bootstrap_means(terms_a, n_bootstrap, rng)) - comb_b(
        bootstrap_means(terms_b, n_bootstrap, rng)
    )
    low, high = percentile_interval(samples, confidence)
    return PolicyValue(estimate, low, high, n, name + "_unpaired")


def value_difference_vs_logging(
    target: np.ndarray,
    rewards: np.ndarray,
    actions: np.ndarray,
    logging_propensity: np.ndarray,
    q_hat: np.ndarray | None = None,
    n_bootstrap: int = 1000,
    confidence: float = 0.95,
    random_state: int | np.random.Generator | None = 0,
    weight_cap: float | None = None,
    estimator: Estimator = "dr",
) -> PolicyValue:
    """``V(target) - V(logging)`` with a paired bootstrap, the logging value being on-policy.

    V(logging) is the mean logged reward (no weights). Do not pass the one-hot of the logged
    actions as a target policy to :func:`dr_value_difference` instead: its importance weights
    are ``1 / propensity`` and it estimates a different quantity.
    """
    r, a, w, pi, q = _validated(
        rewards, actions, logging_propensity, target, q_hat, n_bootstrap, confidence, weight_cap
    )
    terms_t, comb_t = _statistic(estimator, r, a, w, pi, q)
    kt = terms_t.shape[1]

    def combine(means: np.ndarray) -> np.ndarray:
        return comb_t(means[:, :kt]) - means[:, kt]

    terms = np.column_stack([terms_t, r])
    return _estimate_with_ci(
        terms, combine, f"{estimator}_difference_vs_logging", n_bootstrap, confidence, random_state
    )


def is_significantly_worse(difference: PolicyValue, margin: float = 0.0) -> bool:
    """Promotion-gate test on ``difference = V(candidate) - V(reference)``.

    The candidate is significantly worse when the whole interval lies below ``-margin``
    (``ci_high < -margin``), i.e. we are confident it loses more than ``margin`` reward units
    per round. ``margin=0`` is the plain "interval entirely below zero" rule; a positive
    margin tolerates small, practically irrelevant losses. A NaN interval counts as not worse
    only if the point estimate is not below ``-margin``.
    """
    if margin < 0:
        raise ValueError(f"margin must be >= 0, got {margin}")
    if np.isnan(difference.ci_high):
        return bool(difference.estimate < -margin)
    return bool(difference.ci_high < -margin)


def logging_policy_value(
    rewards: np.ndarray,
    n_bootstrap: int = 1000,
    confidence: float = 0.95,
    random_state: int | np.random.Generator | None = 0,
) -> PolicyValue:
    """On-policy value of the logging policy: mean logged reward with a bootstrap interval."""
    r = _as_1d_float("rewards", rewards)
    _check_bootstrap_args(n_bootstrap, confidence)
    return _estimate_with_ci(r[:, None], _first, "on_policy", n_bootstrap, confidence, random_state)


def evaluate_policies(
    policies: Mapping[str, np.ndarray],
    rewards: np.ndarray,
    actions: np.ndarray,
    logging_propensity: np.ndarray,
    q_hat: np.ndarray | None = None,
    estimators: Sequence[Estimator] | None = None,
    n_bootstrap: int = 1000,
    confidence: float = 0.95,
    random_state: int | None = 0,
    weight_cap: float | None = None,
    logging_policy_name: str | None = "logging",
) -> pd.DataFrame:
    """Value of several target policies on the same logged rounds, as a tidy table.

    policies: mapping name -> target_probs of shape (n_rounds, n_actions).
    estimators: subset of ("ips", "snips", "dr"); default all three when ``q_hat`` is given,
    else ("ips", "snips"). Every policy and estimator uses the same bootstrap resamples
    (same ``random_state``), so differences between rows are comparable.
    logging_policy_name: if not None, adds a row with that policy name and estimator
    ``"on_policy"`` (the mean logged reward).
    Returns columns policy, estimator, estimate, ci_low, ci_high, n (one row per pair).
    """
    if not policies:
        raise ValueError("policies must contain at least one target policy")
    chosen: tuple[str, ...] = (
        tuple(estimators)
        if estimators is not None
        else (ESTIMATORS if q_hat is not None else ("ips", "snips"))
    )
    unknown = [e for e in chosen if e not in ESTIMATORS]
    if unknown:
        raise ValueError(f"estimators must be a subset of {ESTIMATORS}, got {unknown}")
    if "dr" in chosen and q_hat is None:
        raise ValueError("q_hat is required for the dr estimator")
    rows: list[dict[str, object]] = []
    for name, target in policies.items():
        r, a, w, pi, q = _validated(
            rewards, actions, logging_propensity, target, q_hat, n_bootstrap, confidence, weight_cap
        )
        for est in chosen:
            terms, combine = _statistic(est, r, a, w, pi, q)
            value = _estimate_with_ci(terms, combine, est, n_bootstrap, confidence, random_state)
            rows.append({"policy": name, **value.to_dict()})
    if logging_policy_name is not None:
        value = logging_policy_value(rewards, n_bootstrap, confidence, random_state)
        rows.append({"policy": logging_policy_name, **value.to_dict()})
    columns = ["policy", "estimator", "estimate", "ci_low", "ci_high", "n"]
    return pd.DataFrame(rows)[columns]


# --------------------------------------------------------------------------- diagnostics


def weight_diagnostics(
    actions: np.ndarray,
    logging_propensity: np.ndarray,
    target_probs: np.ndarray,
    weight_cap: float | None = None,
    min_ess_fraction: float = 0.1,
) -> WeightDiagnostics:
    """Overlap diagnostics of the importance weights of ``target_probs`` (see WeightDiagnostics).

    low_overlap is True when the effective sample size is below ``min_ess_fraction * n``:
    IPS/DR intervals are then unreliable and the target policy relies on actions the logger
    rarely took.
    """
    raw = importance_weights(actions, logging_propensity, target_probs, None)
    w = raw if weight_cap is None else np.minimum(raw, weight_cap)
    n = int(w.shape[0])
    sum_sq = float(np.sum(w**2))
    ess = float(np.sum(w) ** 2 / sum_sq) if sum_sq > 0 else 0.0
    return WeightDiagnostics(
        n=n,
        mean_weight=float(w.mean()),
        max_weight=float(w.max()),
        ess=ess,
        ess_fraction=ess / n,
        share_zero=float(np.mean(w == 0)),
        n_capped=int(np.sum(raw > w)),
        low_overlap=bool(ess / n < min_ess_fraction),
    )


def overlap_table(
    policies: Mapping[str, np.ndarray],
    actions: np.ndarray,
    logging_propensity: np.ndarray,
    weight_cap: float | None = None,
    min_ess_fraction: float = 0.1,
) -> pd.DataFrame:
    """:func:`weight_diagnostics` for each policy, one row per policy (column ``policy`` first)."""
    rows = [
        {
            "policy": name,
            **weight_diagnostics(
                actions, logging_propensity, target, weight_cap, min_ess_fraction
            ).to_dict(),
        }
        for name, target in policies.items()
    ]
    return pd.DataFrame(rows)


# --------------------------------------------------------------------------- policy builders


def _check_n(name: str, value: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < 1:
        raise ValueError(f"{name} must be a positive int, got {value!r}")
    return int(value)


def _as_mask(mask: object | None, n: int, n_actions: int) -> np.ndarray:
    if mask is None:
        return np.ones((n, n_actions), dtype=bool)
    m = np.asarray(mask)
    if m.shape != (n, n_actions):
        raise ValueError(f"mask must have shape ({n}, {n_actions}), got {m.shape}")
    if m.dtype != bool:
        if not np.all(np.isin(m, (0, 1))):
            raise ValueError("mask must be boolean (True = eligible action)")
        m = m.astype(bool)
    empty = np.flatnonzero(~m.any(axis=1))
    if empty.size:
        raise ValueError(f"mask has rows without any eligible action (first: row {empty[0]})")
    return m


def deterministic_policy(chosen: np.ndarray, n_actions: int) -> np.ndarray:
    """One-hot target_probs (n_rounds, n_actions) of a policy taking ``chosen[i]`` in round i."""
    n_actions = _check_n("n_actions", n_actions)
    arr = np.asarray(chosen)
    if arr.ndim != 1 or arr.shape[0] == 0:
        raise ValueError(f"chosen must be a non-empty 1-D array, got shape {arr.shape}")
    a = _as_actions(arr, arr.shape[0], n_actions)
    probs = np.zeros((a.shape[0], n_actions))
    probs[np.arange(a.shape[0]), a] = 1.0
    return probs


def uniform_policy(n_rounds: int, n_actions: int, mask: np.ndarray | None = None) -> np.ndarray:
    """Uniform random over the eligible actions of each round.

    mask: optional bool array of shape (n_rounds, n_actions), True = eligible; every row needs
    at least one eligible action. Returns target_probs of shape (n_rounds, n_actions).
    """
    n = _check_n("n_rounds", n_rounds)
    k = _check_n("n_actions", n_actions)
    m = _as_mask(mask, n, k).astype(float)
    return m / m.sum(axis=1, keepdims=True)


def single_action_policy(action: int, n_rounds: int, n_actions: int) -> np.ndarray:
    """Everyone gets ``action``: target_probs (n_rounds, n_actions) one-hot on that column."""
    n = _check_n("n_rounds", n_rounds)
    k = _check_n("n_actions", n_actions)
    if isinstance(action, bool) or not isinstance(action, int | np.integer):
        raise ValueError(f"action must be an int, got {action!r}")
    if not 0 <= action < k:
        raise ValueError(f"action must lie in [0, {k}), got {action}")
    probs = np.zeros((n, k))
    probs[:, action] = 1.0
    return probs


def no_nudge_policy(n_rounds: int, n_actions: int, control: int = 0) -> np.ndarray:
    """Nobody is nudged: every round takes the control action (index 0 by convention)."""
    return single_action_policy(control, n_rounds, n_actions)


def best_single_action(scores: np.ndarray, mask: np.ndarray | None = None) -> int:
    """Index of the action with the highest mean score over rounds (ties: lowest index).

    scores: array of shape (n_rounds, n_actions), e.g. predicted effects from the model fitted
    on the training window. Do not pick it from the evaluation window's outcomes: that would
    make the "best single type" baseline look optimistically good. Ineligible entries (mask
    False) are left out of the mean of their column.
    """
    s = np.asarray(scores, dtype=float)
    if s.ndim != 2:
        raise ValueError(f"scores must be 2-D (n_rounds, n_actions), got shape {s.shape}")
    s = _as_matrix("scores", s, s.shape[0])
    m = _as_mask(mask, s.shape[0], s.shape[1])
    counts = m.sum(axis=0)
    if not counts.any():
        raise ValueError("mask leaves no eligible action")
    with np.errstate(invalid="ignore", divide="ignore"):
        means = np.where(counts > 0, (s * m).sum(axis=0) / np.maximum(counts, 1), -np.inf)
    return int(np.argmax(means))


def epsilon_greedy_policy(
    scores: np.ndarray, epsilon: float = 0.1, mask: np.ndarray | None = None
) -> np.ndarray:
    """Epsilon-greedy probabilities from a score matrix.

    scores: array of shape (n_rounds, n_actions), higher is better (e.g. the model's objective
    with a 0 column for the control action). Probability ``1 - epsilon`` is split evenly over
    the best eligible actions (ties), ``epsilon`` uniformly over all eligible actions.
    Returns target_probs of shape (n_rounds, n_actions); ineligible actions get 0.
    """
    if not 0 <= epsilon <= 1:
        raise ValueError(f"epsilon must lie in [0, 1], got {epsilon}")
    s = np.asarray(scores, dtype=float)
    if s.ndim != 2:
        raise ValueError(f"scores must be 2-D (n_rounds, n_actions), got shape {s.shape}")
    s = _as_matrix("scores", s, s.shape[0])
    m = _as_mask(mask, *s.shape)
    masked = np.where(m, s, -np.inf)
    best = masked == masked.max(axis=1, keepdims=True)
    greedy = best / best.sum(axis=1, keepdims=True)
    explore = m / m.sum(axis=1, keepdims=True)
    return np.asarray((1 - epsilon) * greedy + epsilon * explore, dtype=float)


def softmax_policy(
    scores: np.ndarray, temperature: float = 1.0, mask: np.ndarray | None = None
) -> np.ndarray:
    """Softmax probabilities ``exp(score / temperature)`` over the eligible actions.

    scores: array of shape (n_rounds, n_actions). temperature > 0 in score units: small values
    approach greedy, large values approach uniform. Returns target_probs (n_rounds, n_actions).
    """
    if not (np.isfinite(temperature) and temperature > 0):
        raise ValueError(f"temperature must be a positive finite number, got {temperature}")
    s = np.asarray(scores, dtype=float)
    if s.ndim != 2:
        raise ValueError(f"scores must be 2-D (n_rounds, n_actions), got shape {s.shape}")
    s = _as_matrix("scores", s, s.shape[0])
    m = _as_mask(mask, *s.shape)
    z = np.where(m, s / temperature, -np.inf)
    z = z - z.max(axis=1, keepdims=True)
    e = np.where(m, np.exp(z), 0.0)
    return np.asarray(e / e.sum(axis=1, keepdims=True), dtype=float)
