"""Observation model: 360 waves per competency and rater role, and team engagement pulses."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

import numpy as np

from recommender.constants import RATER_ROLES
from recommender.simulation.catalogue import Catalogue
from recommender.simulation.effects import competency_mask
from recommender.simulation.managers import Population

ROLE_LENIENCY: Final = np.array([0.0, -0.05, 0.05, 0.12])
"""Mean leniency per rater role (1-5 points), in RATER_ROLES order; self adds the manager's
own ``self_inflation`` on top."""
HALO_SD: Final = 0.30
"""Per-wave shared impression of one rater, common to all competencies (divided by sqrt(n))."""
ITEM_SD: Final = 0.35
"""Per-competency rating noise of one rater (divided by sqrt(n))."""
ENGAGEMENT_ITEM_SD: Final = 18.0
"""SD of one respondent's engagement score around the team's level (0-100 points)."""
ENGAGEMENT_WAVE_SD: Final = 1.5
MIN_DAYS_FOR_360: Final = 60
"""A manager is rated in a 360 wave only if hired at least this many days before."""
MIN_DAYS_FOR_ENGAGEMENT: Final = 30


@dataclass(frozen=True)
class Observed360:
    """Rows of one 360 wave (R rows) and each manager's overall score.

    manager, competency (row in ``competencies``), role (index into RATER_ROLES), score (1-5,
    2 decimals), n_raters: each shape (R,). overall: mean score over competencies and non-self
    roles, shape (N,), NaN where the manager was not rated.
    """

    manager: np.ndarray
    competency: np.ndarray
    role: np.ndarray
    score: np.ndarray
    n_raters: np.ndarray
    overall: np.ndarray


@dataclass(frozen=True)
class ObservedEngagement:
    """Rows of one engagement wave (R rows) and each manager's observed score.

    manager, engagement (0-100, 1 decimal), n_respondents: shape (R,). by_manager: (N,), NaN where
    not observed.
    """

    manager: np.ndarray
    engagement: np.ndarray
    n_respondents: np.ndarray
    by_manager: np.ndarray


def observe_360(
    population: Population,
    catalogue: Catalogue,
    theta: np.ndarray,
    day: np.datetime64,
    rng: np.random.Generator,
) -> Observed360:
    """One 360 wave on ``day`` for managers employed then and hired >= 60 days before.

    Raters per role: self 1 (92% respond), manager 1 (95%), peers Binomial(6, 0.55), direct
    reports Binomial(min(team, 12), manager's response rate); a role with 0 raters has no row.
    Score = clip(theta + role leniency (+ self inflation) + persistent rater-group bias
    + halo / sqrt(n) + item noise / sqrt(n), 1, 5).
    """
    who = np.flatnonzero(population.active_on(day, MIN_DAYS_FOR_360))
    m = len(who)
    n_raters = np.empty((m, len(RATER_ROLES)), dtype=np.int64)
    n_raters[:, 0] = rng.random(m) < 0.92
    n_raters[:, 1] = rng.random(m) < 0.95
    n_raters[:, 2] = rng.binomial(6, 0.55, size=m)
    n_raters[:, 3] = rng.binomial(
        np.minimum(population.team_size[who], 12), population.dr_response[who]
    )
    scale = 1.0 / np.sqrt(np.maximum(n_raters, 1))
    halo = rng.normal(0.0, HALO_SD, size=n_raters.shape) * scale
    item = rng.normal(0.0, ITEM_SD, size=(m, len(RATER_ROLES), theta.shape[1])) * scale[:, :, None]
    bias = ROLE_LENIENCY[None, :] + population.rater_bias[who]
    bias[:, 0] += population.self_inflation[who]
    score = theta[who][:, None, :] + (bias + halo)[:, :, None] + item
    score = np.round(np.clip(score, 1.0, 5.0), 2)
    present = (n_raters > 0)[:, :, None] & competency_mask(population, catalogue)[who][:, None, :]

    others = present.copy()
    others[:, 0, :] = False
    overall = np.full(population.size, np.nan)
    n_others = others.sum(axis=(1, 2))
    with np.errstate(invalid="ignore", divide="ignore"):
        overall[who] = np.where(others, score, 0.0).sum(axis=(1, 2)) / n_others
    i, r, c = np.nonzero(present)
    comp_row = catalogue.competency_offset[population.org[who[i]]] + c
    return Observed360(
        manager=who[i],
        competency=comp_row,
        role=r,
        score=score[i, r, c],
        n_raters=n_raters[i, r],
        overall=overall,
    )


def observe_engagement(
    population: Population,
    engagement: np.ndarray,
    day: np.datetime64,
    rng: np.random.Generator,
) -> ObservedEngagement:
    """One engagement pulse on ``day``: n ~ Binomial(team size, response rate) respondents,
    score = clip(latent + N(0, 18 / sqrt(n)) + N(0, 1.5), 0, 100); no row when n = 0."""
    who = np.flatnonzero(population.active_on(day, MIN_DAYS_FOR_ENGAGEMENT))
    n = rng.binomial(population.team_size[who], population.engagement_response[who])
    noise = rng.normal(0.0, 1.0, size=len(who)) * ENGAGEMENT_ITEM_SD / np.sqrt(np.maximum(n, 1))
    wave = rng.normal(0.0, ENGAGEMENT_WAVE_SD, size=len(who))
    value = np.round(np.clip(engagement[who] + noise + wave, 0.0, 100.0), 1)
    keep = n > 0
    by_manager = np.full(population.size, np.nan)
    by_manager[who[keep]] = value[keep]
    return ObservedEngagement(
        manager=who[keep], engagement=value[keep], n_respondents=n[keep], by_manager=by_manager
    )
