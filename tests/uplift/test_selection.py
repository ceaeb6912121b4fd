"""Losses, simplex blending, shrinkage choice and jackknife uncertainty."""

from __future__ import annotations

import numpy as np
import pytest

from recommender.uplift.learners import dr_pseudo_outcomes
from recommender.uplift.selection import (
    dr_loss,
    prune_weights,
    r_loss,
    select,
    simplex_least_squares,
)
from recommender.uplift.uncertainty import jackknife_std, shrunk_std


def test_simplex_least_squares_recovers_a_convex_combination() -> None:
    rng = np.random.default_rng(0)
    Z = rng.normal(size=(500, 3))
    w = simplex_least_squares(Z, Z @ np.array([0.2, 0.0, 0.8]))
    np.testing.assert_allclose(w, [0.2, 0.0, 0.8], atol=1e-8)


def test_simplex_least_squares_stays_on_the_simplex_for_out_of_hull_targets() -> None:
    rng = np.random.default_rng(1)
    Z = rng.normal(size=(300, 4))
    w = simplex_least_squares(Z, 3.0 * Z[:, 2] - Z[:, 0])
    assert (w >= 0).all() and w.sum() == pytest.approx(1.0)
    assert w[2] == pytest.approx(1.0)


def test_dr_pseudo_outcomes_average_to_the_true_effect_with_true_nuisances() -> None:
    rng = np.random.default_rng(2)
    n = 200_000
    e = np.tile([0.5, 0.2, 0.3], (n, 1))
    arm = rng.choice(3, size=n, p=[0.5, 0.2, 0.3])
    mu = np.column_stack([np.zeros(n), np.ones(n), -np.ones(n) * 2])
    y = mu[np.arange(n), arm] + rng.normal(scale=3, size=n)
    phi = dr_pseudo_outcomes(y, arm, mu + 0.5, e, 0.01)  # biased mu: DR still unbiased
    assert np.isnan(phi[arm == 2, 0]).all()
    np.testing.assert_allclose(np.nanmean(phi, axis=0), [1.0, -2.0], atol=0.05)


def test_select_prefers_the_candidate_closer_to_the_truth() -> None:
    rng = np.random.default_rng(3)
    n = 20_000
    tau = rng.normal(size=(n, 2))
    arm = rng.integers(0, 3, size=n)
    e = np.full((n, 3), 1 / 3)
    mu = np.column_stack([np.zeros(n), tau])
    y = mu[np.arange(n), arm] + rng.normal(scale=2, size=n)
    phi = dr_pseudo_outcomes(y, arm, np.zeros((n, 3)), e, 0.01)
    candidates = {"good": tau + rng.normal(scale=0.3, size=tau.shape), "bad": -tau}
    for loss in (dr_loss(phi), r_loss(y, arm, np.zeros((n, 3)), e)):
        sel = select(loss, candidates, np.zeros((n, 2)), shrinkage=True)
        assert sel.weights["good"] > 0.9
        assert sel.shrinkage >= 0.75
        assert sel.losses["shrunk"] < sel.losses["constant"]


def test_select_shrinks_fully_when_candidates_are_pure_noise() -> None:
    rng = np.random.default_rng(4)
    n = 20_000
    arm = rng.integers(0, 3, size=n)
    y = rng.normal(scale=2, size=n)
    phi = dr_pseudo_outcomes(y, arm, np.zeros((n, 3)), np.full((n, 3), 1 / 3), 0.01)
    candidates = {"a": rng.normal(size=(n, 2)), "b": rng.normal(size=(n, 2))}
    sel = select(dr_loss(phi), candidates, np.zeros((n, 2)), shrinkage=True)
    assert sel.shrinkage == 0.0
    assert select(dr_loss(phi), candidates, np.zeros((n, 2)), shrinkage=False).shrinkage == 1.0


def test_prune_weights_drops_small_members_and_re_solves_the_rest() -> None:
    rng = np.random.default_rng(5)
    Z = rng.normal(size=(2000, 3))
    t = Z @ np.array([0.6, 0.38, 0.02]) + rng.normal(scale=0.01, size=2000)
    w = prune_weights(Z, t, simplex_least_squares(Z, t), 0.05)
    assert w[2] == 0.0
    assert w.sum() == pytest.approx(1.0)
    np.testing.assert_allclose(w[:2], simplex_least_squares(Z[:, :2], t))


def test_select_keeps_the_blend_only_when_it_beats_every_member_out_of_fold() -> None:
    rng = np.random.default_rng(6)
    n = 20_000
    tau = rng.normal(size=(n, 2))
    arm = rng.integers(0, 3, size=n)
    y = np.column_stack([np.zeros(n), tau])[np.arange(n), arm] + rng.normal(scale=2, size=n)
    phi = dr_pseudo_outcomes(y, arm, np.zeros((n, 3)), np.full((n, 3), 1 / 3), 0.01)
    fold_id = rng.integers(0, 3, size=n)
    good = tau + rng.normal(scale=0.3, size=tau.shape)
    # A useless member gets a negligible weight: pruned, the good learner is chosen alone.
    noisy = {"good": good, "noise": rng.normal(scale=0.3, size=tau.shape)}
    sel = select(dr_loss(phi), noisy, np.zeros((n, 2)), True, fold_id)
    assert sel.weights == {"good": 1.0, "noise": 0.0}
    # Two learners with independent errors: averaging helps, out of fold too.
    other = tau + rng.normal(scale=0.3, size=tau.shape)
    sel = select(dr_loss(phi), {"good": good, "other": other}, np.zeros((n, 2)), True, fold_id)
    assert min(sel.weights.values()) >= 0.05
    assert sel.losses["blend_cv"] < min(sel.losses["good"], sel.losses["other"])


def test_jackknife_std_matches_the_grouped_jackknife_formula() -> None:
    folds = np.array([[1.0], [2.0], [3.0]])
    np.testing.assert_allclose(jackknife_std(folds), [np.sqrt(2 / 3 * 2.0)])
    np.testing.assert_allclose(
        shrunk_std(np.array([[2.0]]), 0.5, np.array([1.0])), [[np.sqrt(2.0)]]
    )
