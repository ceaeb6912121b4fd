"""Managers: profiles, hidden latent traits, joiners (new hires) and attrition (leave dates)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

import numpy as np

from recommender.constants import LEVELS, RATER_ROLES, TRAITS
from recommender.simulation.catalogue import Catalogue
from recommender.simulation.config import DAYS_PER_YEAR, Calendar

FUNCTIONS: Final = ("sales", "engineering", "operations", "finance", "hr", "marketing")
REGIONS: Final = ("emea", "americas", "apac")
MAX_COMPETENCIES: Final = 8
ANNUAL_ATTRITION: Final = 0.11
"""Baseline yearly leaving rate; joiners arrive at the same rate so headcount stays level."""
NOT_LEFT: Final = np.datetime64("NaT", "D")

_TRAIT_CORRELATION: Final = np.array(
    [  # openness, conscientiousness, extraversion, agreeableness, neuroticism
        [1.00, 0.05, 0.25, 0.10, -0.05],
        [0.05, 1.00, 0.10, 0.20, -0.30],
        [0.25, 0.10, 1.00, 0.15, -0.25],
        [0.10, 0.20, 0.15, 1.00, -0.20],
        [-0.05, -0.30, -0.25, -0.20, 1.00],
    ]
)


@dataclass
class Population:
    """Every manager ever employed in the window (incumbents first, then joiners by hire date).

    Observable profile (the ``managers`` table): manager_id (N,), org (N,) index into the
    catalogue, function/level/region (N,) codes into FUNCTIONS/LEVELS/REGIONS, tenure_at_hire
    (N,) months, team_size (N,), traits (N, 5) Big Five 0-100 in ``constants.TRAITS`` order,
    hire_day/leave_day (N,) ``datetime64[D]`` (leave_day NaT while employed; set by attrition);
    incumbent (N,) employed on the start date (hire_day is the start of the data, not of the job).

    Hidden (never written): coachability (N,) shift of the act log-odds; self_inflation (N,)
    extra self-rating leniency (1-5 points); rater_bias (N, 4) persistent leniency of each rater
    group; dr_response (N,) and engagement_response (N,) survey response rates; potential
    (N, MAX_COMPETENCIES) competency level the manager reverts to (1-5); engagement_potential
    (N,) team engagement level reverted to (0-100).
    """

    manager_id: np.ndarray
    org: np.ndarray
    function: np.ndarray
    level: np.ndarray
    region: np.ndarray
    tenure_at_hire: np.ndarray
    team_size: np.ndarray
    traits: np.ndarray
    hire_day: np.ndarray
    leave_day: np.ndarray
    incumbent: np.ndarray
    coachability: np.ndarray
    self_inflation: np.ndarray
    rater_bias: np.ndarray
    dr_response: np.ndarray
    engagement_response: np.ndarray
    potential: np.ndarray
    engagement_potential: np.ndarray

    @property
    def size(self) -> int:
        """Managers ever employed (incumbents plus joiners)."""
        return len(self.manager_id)

    def trait_z(self) -> np.ndarray:
        """Big Five traits standardised as (score - 50) / 20, shape (N, 5)."""
        return (self.traits - 50.0) / 20.0

    def tenure_months(self, day: np.datetime64) -> np.ndarray:
        """Months in a management role on ``day`` (tenure at hire plus time since), shape (N,)."""
        since = (day - self.hire_day).astype(np.float64) / (DAYS_PER_YEAR / 12.0)
        return self.tenure_at_hire + np.clip(since, 0.0, None)

    def active_on(self, day: np.datetime64, min_days_since_hire: int = 0) -> np.ndarray:
        """Employed on ``day`` and, unless an incumbent, hired at least ``min_days_since_hire``
        days before, shape (N,)."""
        settled = self.hire_day <= day - np.timedelta64(min_days_since_hire, "D")
        hired = (self.hire_day <= day) & (settled | self.incumbent)
        stayed = np.isnat(self.leave_day) | (self.leave_day >= day)
        return hired & stayed


def sample_population(
    n_managers: int, catalogue: Catalogue, calendar: Calendar, rng: np.random.Generator
) -> Population:
    """Incumbents (employed on the start date) plus Poisson many joiners hired in the window."""
    years = (calendar.end - calendar.start).astype(np.float64) / DAYS_PER_YEAR
    n_join = int(rng.poisson(n_managers * ANNUAL_ATTRITION * years))
    n = n_managers + n_join
    n_orgs = len(catalogue.org_ids)
    org_share = rng.dirichlet(np.full(n_orgs, 4.0)) if n_orgs > 1 else np.ones(1)
    org = rng.choice(n_orgs, size=n, p=org_share)
    guaranteed = np.repeat(np.arange(n_orgs), 5)  # at least five incumbents per org
    org[rng.choice(n_managers, size=len(guaranteed), replace=False)] = guaranteed

    level = rng.choice(len(LEVELS), size=n, p=[0.55, 0.33, 0.12])
    function = rng.choice(len(FUNCTIONS), size=n, p=[0.22, 0.25, 0.22, 0.1, 0.07, 0.14])
    region = rng.choice(len(REGIONS), size=n, p=[0.45, 0.35, 0.2])

    hire_offset = np.zeros(n, dtype=np.int64)
    window_days = int((calendar.end - calendar.start).astype(np.int64))
    hire_offset[n_managers:] = np.sort(rng.integers(0, window_days, size=n_join))
    hire_day = calendar.start + hire_offset.astype("timedelta64[D]")

    level_scale = np.array([0.6, 1.1, 2.0])[level]
    tenure = np.exp(rng.normal(np.log(48.0), 0.8, size=n)) * level_scale
    first_timer = (np.arange(n) >= n_managers) & (rng.random(n) < 0.5)
    tenure = np.where(first_timer, 0.0, tenure)
    tenure_at_hire = np.clip(np.round(tenure), 0, 600).astype(np.int64)

    team_median = np.array([8.0, 6.0, 6.0])[level]
    team_size = np.clip(np.round(np.exp(rng.normal(np.log(team_median), 0.45))), 1, 60)

    z = rng.multivariate_normal(np.zeros(len(TRAITS)), _TRAIT_CORRELATION, size=n)
    traits = np.round(np.clip(50.0 + 18.0 * z, 0.0, 100.0), 1)
    tz = (traits - 50.0) / 20.0

    general = rng.normal(0.0, 0.28, size=n)
    person = (
        3.45
        + 0.10 * tz[:, 1]
        + 0.06 * tz[:, 3]
        - 0.05 * tz[:, 4]
        + 0.12 * np.tanh(tenure_at_hire / 36.0)
        + general
    )
    potential = person[:, None] + rng.normal(0.0, 0.22, size=(n, MAX_COMPETENCIES))
    engagement_potential = (
        68.0
        + 3.0 * tz[:, 3]
        - 3.0 * tz[:, 4]
        + 2.0 * tz[:, 2]
        + 8.0 * general
        + rng.normal(0.0, 6.0, size=n)
    )
    return Population(
        manager_id=_pseudonymous_ids(n, rng),
        org=org.astype(np.int64),
        function=function.astype(np.int64),
        level=level.astype(np.int64),
        region=region.astype(np.int64),
        tenure_at_hire=tenure_at_hire,
        team_size=team_size.astype(np.int64),
        traits=traits,
        hire_day=hire_day,
        leave_day=np.full(n, NOT_LEFT),
        incumbent=np.arange(n) < n_managers,
        coachability=rng.normal(0.0, 0.5, size=n),
        self_inflation=np.clip(0.25 + 0.10 * tz[:, 2] - 0.08 * tz[:, 4], 0.0, None)
        + rng.normal(0.0, 0.1, size=n),
        rater_bias=rng.normal(0.0, 0.12, size=(n, len(RATER_ROLES))),
        dr_response=rng.beta(8.0, 3.0, size=n),
        engagement_response=rng.beta(6.0, 2.0, size=n),
        potential=np.clip(potential, 1.6, 4.7),
        engagement_potential=np.clip(engagement_potential, 20.0, 92.0),
    )


def _pseudonymous_ids(n: int, rng: np.random.Generator) -> np.ndarray:
    """``n`` unique ids like ``m3fa91c02d7e4``: 48 random bits, no order or meaning."""
    values = rng.integers(0, 2**48, size=n, dtype=np.int64)
    while len(np.unique(values)) < n:  # pragma: no cover - ~1e-5 chance at 100k managers
        _, first = np.unique(values, return_index=True)
        duplicate = np.setdiff1d(np.arange(n), first)
        values[duplicate] = rng.integers(0, 2**48, size=len(duplicate), dtype=np.int64)
    return np.array([f"m{v:012x}" for v in values.tolist()], dtype=object)


def leaving_hazard(population: Population, engagement: np.ndarray) -> np.ndarray:
    """Daily hazard of leaving, shape (N,): higher for anxious managers and disengaged teams.

    engagement: latent team engagement (0-100), shape (N,).
    """
    tz = population.trait_z()
    log_rel = 0.35 * tz[:, 4] - 0.30 * (engagement - 68.0) / 12.0 - 0.25 * (population.level == 2)
    return ANNUAL_ATTRITION / DAYS_PER_YEAR * np.exp(log_rel - 0.1)


def apply_attrition(
    population: Population,
    engagement: np.ndarray,
    from_day: np.datetime64,
    to_day: np.datetime64,
    rng: np.random.Generator,
) -> None:
    """Draw who leaves in [from_day, to_day) and set their ``leave_day`` in place.

    Only managers hired before ``to_day`` and still employed are at risk; exposure starts at
    ``max(from_day, hire_day)``. The draw covers every manager so the random stream does not
    depend on who is at risk.
    """
    waiting = rng.exponential(1.0, size=population.size) / leaving_hazard(population, engagement)
    exposure_start = np.maximum(population.hire_day, from_day)
    at_risk = np.isnat(population.leave_day) & (population.hire_day < to_day)
    exposure_days = (to_day - exposure_start).astype(np.float64)
    leaves = at_risk & (waiting < exposure_days)
    population.leave_day[leaves] = exposure_start[leaves] + np.floor(waiting[leaves]).astype(
        "timedelta64[D]"
    )
