"""Choosing among learners: held-out causal losses, simplex blending and shrinkage.

Every loss here is evaluated on out-of-fold effect predictions (each row's effects come from
learners that never saw the row) against targets built from out-of-fold nuisances, so it is a
held-out loss on the training data. Both losses are quadratic in the effects:
loss(tau) = mean((target - L(tau))^2) for a linear map L, which makes blending a small
simplex-constrained least-squares problem.

- "dr": pairwise DR pseudo-outcome loss, mean over (row, treatment k) with the row in arm k or
  control of (phi_k - tau_k(x))^2; E[phi_k | x] = tau_k(x), so it ranks candidates by their
  squared error to the true effect plus a constant.
- "r": multi-treatment R-loss, mean over rows of
  (y - m(x) - sum_k (1[arm = k] - e_k(x)) tau_k(x))^2, with m(x) = sum_a e_a(x) mu_a(x) and
  fitted (not logged) propensities, since it needs E[1[arm = k] | x] for every arm.

Blend or single learner: the simplex weights are fitted on the same loss units that score them,
so the in-sample blend loss can never exceed a member's. The blend is pruned (members below
``PRUNE_WEIGHT`` dropped, weights re-solved) and then scored honestly: weights fitted on the
loss units of the other cross-fitting folds, applied to each fold's units. A single learner whose
loss is below that cross-fitted blend loss is chosen alone, so the choice never loses to the
best member on the held-out loss and does not keep boosters that barely move the prediction.

Shrinkage: tau_s(x) = mean_k + lambda (tau(x) - mean_k), mean_k the per-treatment average effect
(AIPW estimate on the training folds); lambda = 0 is "best single type for everyone". lambda is
chosen on the grid with a one-standard-error rule: the smallest lambda whose held-out loss is
within one standard error (of the paired loss difference, clustered by training row) of the
minimum, so the model
personalises only as far as the held-out evidence clearly supports.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field

import numpy as np

from recommender.uplift.config import PRUNE_WEIGHT, SHRINKAGE_GRID


@dataclass(frozen=True)
class HeldOutLoss:
    """A linearised held-out loss: ``loss(tau) = mean((target - apply(tau)) ** 2)``.

    kind: "dr" or "r"; target: (N,) per loss unit; weights: (n, K) matrix W of the linear map:
    for "dr" a 0/1 mask of valid (row, treatment) pairs (apply = tau[mask]), for "r" the
    residualised treatment indicators 1[arm = k] - e_k(x) (apply = row sums of W * tau);
    unit_row: (N,) training row of each loss unit (a control row is in K pairs), used to
    cluster standard errors.
    """

    kind: str
    target: np.ndarray
    weights: np.ndarray
    unit_row: np.ndarray

    def standard_error(self, unit_values: np.ndarray) -> float:
        """Row-clustered standard error of the mean of per-unit values (N,)."""
        per_row = np.bincount(self.unit_row, weights=unit_values)
        rows = np.unique(self.unit_row)
        if rows.size < 2:
            return 0.0
        per_row = per_row[rows]
        centred = per_row - unit_values.sum() / rows.size
        return float(np.sqrt(rows.size / (rows.size - 1) * (centred**2).sum()) / unit_values.size)

    def apply(self, tau: np.ndarray) -> np.ndarray:
        """The linear map L: tau of shape (n, K) -> (N,)."""
        if self.kind == "dr":
            return tau[self.weights.astype(bool)]
        return (self.weights * tau).sum(axis=1)

    def loss(self, tau: np.ndarray) -> float:
        """Mean squared held-out loss of effects tau (n, K)."""
        return float(np.mean((self.target - self.apply(tau)) ** 2))


def dr_loss(phi: np.ndarray) -> HeldOutLoss:
    """DR loss from pairwise pseudo-outcomes phi (n, K), NaN where not in the pair."""
    mask = ~np.isnan(phi)
    rows = np.broadcast_to(np.arange(phi.shape[0])[:, None], phi.shape)[mask]
    return HeldOutLoss("dr", phi[mask], mask.astype(np.float64), rows)


def r_loss(y: np.ndarray, arm: np.ndarray, mu: np.ndarray, e: np.ndarray) -> HeldOutLoss:
    """R-loss from outcome y (n,), arm codes (n,), mu (n, K + 1) and fitted e (n, K + 1)."""
    e = e / e.sum(axis=1, keepdims=True)
    m = (e * mu).sum(axis=1)
    onehot = np.zeros_like(e)
    onehot[np.arange(len(arm)), arm] = 1.0
    return HeldOutLoss("r", y - m, (onehot - e)[:, 1:], np.arange(len(y)))


def simplex_least_squares(Z: np.ndarray, t: np.ndarray) -> np.ndarray:
    """argmin_w mean((t - Z w)^2) s.t. w >= 0, sum(w) = 1; Z (N, C), t (N,) -> w (C,).

    Exact: solves the equality-constrained problem on every support set (C is at most 4).
    """
    n, C = Z.shape
    G = Z.T @ Z / n
    b = Z.T @ t / n
    best_w, best_val = np.eye(C)[0], np.inf
    for size in range(1, C + 1):
        for support in itertools.combinations(range(C), size):
            idx = list(support)
            kkt = np.zeros((size + 1, size + 1))
            kkt[:size, :size] = 2.0 * G[np.ix_(idx, idx)]
            kkt[:size, size] = 1.0
            kkt[size, :size] = 1.0
            rhs = np.concatenate([2.0 * b[idx], [1.0]])
            sol = np.linalg.lstsq(kkt, rhs, rcond=None)[0][:size]
            if (sol < -1e-12).any():
                continue
            w = np.zeros(C)
            w[idx] = np.clip(sol, 0.0, None)
            w /= w.sum()
            val = float(w @ G @ w - 2.0 * b @ w)
            if val < best_val - 1e-15:
                best_w, best_val = w, val
    return best_w


@dataclass
class Selection:
    """Outcome of selection for one outcome.

    weights: candidate -> chosen weight (non-negative, sum 1; one 1 when a single learner is
    chosen); shrinkage: chosen lambda; losses: candidate, "blend" (full simplex blend, weights
    fitted in-sample), "blend_cv" (pruned blend, weights cross-fitted over folds), "constant" or
    "shrunk" (the chosen model) -> held-out loss;
    lambda_losses: lambda -> held-out loss of the shrunk blend.
    """

    weights: dict[str, float]
    shrinkage: float
    losses: dict[str, float] = field(default_factory=dict)
    lambda_losses: dict[float, float] = field(default_factory=dict)


def prune_weights(Z: np.ndarray, t: np.ndarray, w: np.ndarray, min_weight: float) -> np.ndarray:
    """Drop members with 0 < weight < ``min_weight`` (smallest first), re-solving the rest.

    Z (N, C), t (N,), w (C,) simplex weights -> pruned simplex weights (C,), zeros outside the
    kept support.
    """
    w = w.copy()
    while True:
        small = np.flatnonzero((w > 0) & (w < min_weight))
        if small.size == 0:
            return w
        keep = np.flatnonzero(w > 0)
        keep = keep[keep != small[np.argmin(w[small])]]
        w = np.zeros_like(w)
        w[keep] = simplex_least_squares(Z[:, keep], t)


def cross_fitted_blend(
    Z: np.ndarray, t: np.ndarray, unit_fold: np.ndarray, support: np.ndarray
) -> np.ndarray:
    """Predictions (N,) of a simplex blend of columns ``support`` of Z, each fold's units
    predicted with weights fitted on the other folds' units (unit_fold: (N,) fold codes)."""
    out = np.empty(Z.shape[0])
    for fold in np.unique(unit_fold):
        held = unit_fold == fold
        w = simplex_least_squares(Z[~held][:, support], t[~held])
        out[held] = Z[held][:, support] @ w
    return out


def select(
    loss: HeldOutLoss,
    candidates: dict[str, np.ndarray],
    mean_effect: np.ndarray,
    shrinkage: bool,
    fold_id: np.ndarray | None = None,
) -> Selection:
    """Blend weights (or a single learner) and lambda minimising the held-out loss.

    candidates: name -> out-of-fold effects (n, K); mean_effect: (n, K) per-row per-treatment
    average effect estimated without the row's fold; fold_id: (n,) cross-fitting fold of each
    training row; without it the pruned blend is compared in-sample (no single-learner choice).
    """
    names = list(candidates)
    t = loss.target - loss.apply(mean_effect)
    Z = np.column_stack([loss.apply(candidates[c] - mean_effect) for c in names])
    w_full = simplex_least_squares(Z, t)
    losses = {c: float(np.mean((t - Z[:, i]) ** 2)) for i, c in enumerate(names)}
    losses["blend"] = float(np.mean((t - Z @ w_full) ** 2))
    losses["constant"] = float(np.mean(t**2))
    w = prune_weights(Z, t, w_full, PRUNE_WEIGHT)
    support = np.flatnonzero(w > 0)
    if fold_id is not None and support.size > 1:
        blend_cv = cross_fitted_blend(Z, t, fold_id[loss.unit_row], support)
        losses["blend_cv"] = float(np.mean((t - blend_cv) ** 2))
        best_single = min(range(len(names)), key=lambda i: losses[names[i]])
        if losses[names[best_single]] <= losses["blend_cv"]:
            w = np.eye(len(names))[best_single]
    else:
        losses["blend_cv"] = float(np.mean((t - Z @ w) ** 2))
    dev = Z @ w
    grid = SHRINKAGE_GRID if shrinkage else (1.0,)
    unit = {lam: (t - lam * dev) ** 2 for lam in grid}
    lambda_losses = {lam: float(u.mean()) for lam, u in unit.items()}
    best = min(grid, key=lambda lam: lambda_losses[lam])
    chosen = best
    for lam in sorted(grid):
        se = loss.standard_error(unit[lam] - unit[best])
        if lambda_losses[lam] - lambda_losses[best] <= se:
            chosen = lam
            break
    losses["shrunk"] = lambda_losses[chosen]
    return Selection(
        weights={c: float(w[i]) for i, c in enumerate(names)},
        shrinkage=float(chosen),
        losses=losses,
        lambda_losses=lambda_losses,
    )
