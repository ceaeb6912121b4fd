"""Shared, seeded fixtures for the uplift tests: small synthetic problems and fitted models."""

from __future__ import annotations

from typing import Any

import pytest

from recommender.uplift import MultiTreatmentUplift
from recommender.uplift.synthetic import UpliftProblem, make_uplift_problem

FAST: dict[str, Any] = {"n_estimators": 30, "n_jobs": 2, "random_state": 0}
"""Estimator settings that keep a 3k-row fit well under a second."""


@pytest.fixture
def fast() -> dict[str, Any]:
    """Estimator settings for quick fits (copy: tests may not alter the shared one)."""
    return dict(FAST)


@pytest.fixture(scope="session")
def strong_problem() -> UpliftProblem:
    """3 treatments, 2 outcomes, heterogeneity SD 1 with noise SD 1 (strong signal)."""
    return make_uplift_problem(n=3000, n_treatments=3, n_outcomes=2, noise_sd=1.0, seed=1)


@pytest.fixture(scope="session")
def strong_model(strong_problem: UpliftProblem) -> MultiTreatmentUplift:
    """The default learner family fitted on ``strong_problem`` with fitted propensities."""
    p = strong_problem
    return MultiTreatmentUplift(**FAST).fit(p.X, p.treatment, p.y)
