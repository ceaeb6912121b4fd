"""The true effect model: drift, heterogeneous effects of acting on a nudge, fatigue, ceilings.

Every function is vectorised over all N managers; ``T = len(NUDGE_TYPES)``. Competency levels
live on the 1-5 scale, engagement on 0-100. See the package docstring for the equations.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

import numpy as np

from recommender.simulation.catalogue import DELIVERIES_MAX, NUDGE_TYPES, Catalogue
from recommender.simulation.managers import MAX_COMPETENCIES, Population

EFFECT_SCALE_360: Final = 1.2
"""Multiplier on every 360 effect given action (the signal-strength knob)."""
EFFECT_SCALE_ENGAGEMENT: Final = 2.0
"""Multiplier on every engagement effect given action."""
SPILLOVER: Final = 0.5
"""Share of a nudge type's effect on its targeted competency that reaches the others."""
REVERSION_360: Final = 0.25
"""Share of the gap to the manager's potential closed per period (no nudge)."""
REVERSION_ENGAGEMENT: Final = 0.30
INNOVATION_SHARED_SD: Final = 0.05
INNOVATION_COMPETENCY_SD: Final = 0.07
INNOVATION_ENGAGEMENT_SD: Final = 3.0
FATIGUE_FREE: Final = 4
"""Nudges per period beyond which effects fade (x0.88 each) and engagement suffers."""
ANNOYANCE_PER_NUDGE: Final = 0.6
"""Engagement points lost per nudge beyond ``FATIGUE_FREE`` in a period."""

_T = {name: t for t, name in enumerate(NUDGE_TYPES)}


@dataclass(frozen=True)
class Drivers:
    """Standardised drivers of the effects, each shape (N,). All but ``coachability`` observable.

    trait z-scores (score - 50) / 20; first_line/senior indicators; log_team = log(team / 7);
    novice = exp(-tenure_months / 18) (1 for a brand-new manager); level_360 = (mean latent
    competency - 3.45) / 0.35; level_engagement = (latent engagement - 68) / 10.
    """

    openness: np.ndarray
    conscientiousness: np.ndarray
    extraversion: np.ndarray
    agreeableness: np.ndarray
    neuroticism: np.ndarray
    first_line: np.ndarray
    senior: np.ndarray
    log_team: np.ndarray
    novice: np.ndarray
    level_360: np.ndarray
    level_engagement: np.ndarray
    coachability: np.ndarray


def competency_mask(population: Population, catalogue: Catalogue) -> np.ndarray:
    """Which of the MAX_COMPETENCIES slots exist in each manager's org, shape (N, 8) bool."""
    n_comp = catalogue.n_competencies[population.org]
    return np.arange(MAX_COMPETENCIES)[None, :] < n_comp[:, None]


def drivers(
    population: Population,
    catalogue: Catalogue,
    theta: np.ndarray,
    engagement: np.ndarray,
    day: np.datetime64,
) -> Drivers:
    """Effect drivers on ``day`` from the profile and the latent state.

    theta: latent competency levels (1-5), shape (N, 8); engagement: latent (0-100), shape (N,).
    """
    tz = population.trait_z()
    mask = competency_mask(population, catalogue)
    mean_level = np.where(mask, theta, 0.0).sum(axis=1) / mask.sum(axis=1)
    return Drivers(
        openness=tz[:, 0],
        conscientiousness=tz[:, 1],
        extraversion=tz[:, 2],
        agreeableness=tz[:, 3],
        neuroticism=tz[:, 4],
        first_line=(population.level == 0).astype(np.float64),
        senior=(population.level == 2).astype(np.float64),
        log_team=np.log(population.team_size / 7.0),
        novice=np.exp(-population.tenure_months(day) / 18.0),
        level_360=(mean_level - 3.45) / 0.35,
        level_engagement=(engagement - 68.0) / 10.0,
        coachability=population.coachability,
    )


def effect_given_action(d: Drivers) -> tuple[np.ndarray, np.ndarray]:
    """Effect of acting on a nudge of each type, before ceilings and fatigue.

    Returns (on_target, on_engagement), each shape (N, T): change of the targeted competency
    (1-5 points) and of team engagement (0-100 points).
    """
    n = len(d.openness)
    e = np.empty((n, len(NUDGE_TYPES)))
    g = np.empty((n, len(NUDGE_TYPES)))
    e[:, _T["recognition"]] = 0.10 - 0.15 * d.level_engagement + 0.08 * d.agreeableness
    e[:, _T["coaching_question"]] = 0.05 + 0.25 * d.openness - 0.08 * d.first_line
    e[:, _T["feedback_request"]] = 0.10 - 0.22 * d.level_360 - 0.15 * d.neuroticism
    e[:, _T["delegation"]] = 0.02 + 0.25 * d.log_team + 0.12 * d.senior - 0.12 * d.first_line
    e[:, _T["one_on_one_prep"]] = 0.06 + 0.28 * d.novice - 0.05 * d.log_team
    e[:, _T["goal_clarity"]] = 0.16 - 0.14 * d.conscientiousness
    e[:, _T["wellbeing_checkin"]] = 0.02 + 0.08 * d.agreeableness - 0.06 * d.level_engagement
    e[:, _T["decision_transparency"]] = 0.02 + 0.20 * d.senior + 0.06 * d.openness
    e[:, _T["growth_conversation"]] = 0.04 + 0.20 * d.extraversion - 0.15 * d.novice
    e[:, _T["team_celebration"]] = 0.12 * d.extraversion + 0.08 * d.log_team

    g[:, _T["recognition"]] = 2.0 - 1.5 * d.level_engagement
    g[:, _T["coaching_question"]] = 0.5 + 0.8 * d.openness
    g[:, _T["feedback_request"]] = 0.5 - 1.0 * d.neuroticism
    g[:, _T["delegation"]] = 0.8 * d.log_team - 1.0 * d.first_line
    g[:, _T["one_on_one_prep"]] = 1.2
    g[:, _T["goal_clarity"]] = 0.8
    g[:, _T["wellbeing_checkin"]] = 2.5 - 1.5 * d.level_engagement
    g[:, _T["decision_transparency"]] = 1.0 + 1.0 * d.senior
    g[:, _T["growth_conversation"]] = 1.0 + 0.5 * d.extraversion
    g[:, _T["team_celebration"]] = 1.5 + 1.0 * d.log_team
    return EFFECT_SCALE_360 * e, EFFECT_SCALE_ENGAGEMENT * g


def open_probability(d: Drivers, n_nudges: np.ndarray | float) -> np.ndarray:
    """P(a delivered nudge is opened) when ``n_nudges`` (scalar or (N,)) arrive in the period,
    shape (N,)."""
    base = 0.8 + 0.3 * d.conscientiousness + 0.2 * d.openness - 0.2 * d.log_team
    return _sigmoid(base - 0.2 * np.clip(np.asarray(n_nudges) - 3.0, 0.0, None))


def act_probability(d: Drivers) -> np.ndarray:
    """P(acted | opened) for each nudge type, shape (N, T); includes hidden coachability."""
    base = -0.6 + 0.5 * d.conscientiousness + 0.25 * d.openness + d.coachability
    fit = np.zeros((len(base), len(NUDGE_TYPES)))
    fit[:, _T["coaching_question"]] = 0.4 * d.openness
    fit[:, _T["growth_conversation"]] = 0.3 * d.extraversion
    fit[:, _T["delegation"]] = -0.4 * d.first_line
    fit[:, _T["wellbeing_checkin"]] = 0.3 * d.agreeableness
    return _sigmoid(base[:, None] + fit)


def fatigue(n_nudges: np.ndarray) -> np.ndarray:
    """Multiplier on effects given action when ``n_nudges`` arrive in a period (1 up to 4)."""
    return np.power(0.88, np.clip(n_nudges - FATIGUE_FREE, 0, None))


def annoyance(n_nudges: np.ndarray) -> np.ndarray:
    """Engagement points lost by a team whose manager gets ``n_nudges`` in a period (<= 0)."""
    return -ANNOYANCE_PER_NUDGE * np.clip(n_nudges - FATIGUE_FREE, 0, None)


def headroom(level: np.ndarray, effect_sign: np.ndarray, low: float, high: float) -> np.ndarray:
    """Diminishing returns near the scale ends: 1 far from the end an effect pushes towards,
    falling linearly to 0 at it over the last quarter of the scale. Broadcasts."""
    span = 0.25 * (high - low)
    up = np.clip((high - level) / span, 0.0, 1.0)
    down = np.clip((level - low) / span, 0.0, 1.0)
    return np.where(effect_sign >= 0, up, down)


def competency_effects(
    on_target: np.ndarray, target_slot: np.ndarray, theta: np.ndarray, mask: np.ndarray
) -> np.ndarray:
    """Per-competency change (N, 8) when acting on a nudge with ``on_target`` effect (N,) aimed
    at slot ``target_slot`` (N,): full effect there, ``SPILLOVER`` of it elsewhere, ceilings."""
    share = np.where(np.arange(MAX_COMPETENCIES)[None, :] == target_slot[:, None], 1.0, SPILLOVER)
    raw = on_target[:, None] * share * mask
    return raw * headroom(theta, raw, 1.0, 5.0)


def drift(
    population: Population, theta: np.ndarray, engagement: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Expected change without nudges over one period: reversion towards the manager's potential.

    Returns (d_theta (N, 8), d_engagement (N,)).
    """
    d_theta = REVERSION_360 * (population.potential - theta)
    d_engagement = REVERSION_ENGAGEMENT * (population.engagement_potential - engagement)
    return d_theta, d_engagement


@dataclass(frozen=True)
class ExpectedChanges:
    """True expected change to the next wave under each arm (``none`` first, then NUDGE_TYPES).

    delta_360, delta_360_targeted (1-5 points), delta_engagement (0-100 points): each (N, 1 + T).
    dose: expected effective exposure E[1{acted on >= 1 nudge} * fatigue(n)] per type, (N, T).
    """

    delta_360: np.ndarray
    delta_360_targeted: np.ndarray
    delta_engagement: np.ndarray
    dose: np.ndarray


def expected_changes(
    population: Population,
    catalogue: Catalogue,
    theta: np.ndarray,
    engagement: np.ndarray,
    day: np.datetime64,
) -> ExpectedChanges:
    """Ground truth: expected change of the overall 360 (mean over competencies), of the
    targeted competency, and of engagement, for every manager and arm, from the state on ``day``.

    The expectation is over the number of nudges n ~ the org's count law, whether the manager
    acts on at least one (prob. 1 - (1 - p_open(n) p_act)^n) and the zero-mean innovations.
    """
    d = drivers(population, catalogue, theta, engagement, day)
    mask = competency_mask(population, catalogue)
    n_comp = mask.sum(axis=1)
    on_target, on_engagement = effect_given_action(d)
    p_act = act_probability(d)
    pmf = catalogue.count_pmf()[population.org]  # (N, DELIVERIES_MAX + 1)
    counts = np.arange(DELIVERIES_MAX + 1, dtype=np.float64)
    dose = np.zeros_like(p_act)
    expected_annoyance = pmf @ annoyance(counts)
    for n in range(1, DELIVERIES_MAX + 1):
        weight = pmf[:, n]
        if not weight.any():
            continue
        q = open_probability(d, float(n))[:, None] * p_act
        dose += weight[:, None] * fatigue(np.asarray(float(n))) * (1.0 - (1.0 - q) ** n)

    d_theta, d_eng = drift(population, theta, engagement)
    base_overall = np.where(mask, d_theta, 0.0).sum(axis=1) / n_comp
    n_types = len(NUDGE_TYPES)
    overall = np.empty((len(n_comp), 1 + n_types))
    targeted = np.empty_like(overall)
    eng = np.empty_like(overall)
    overall[:, 0] = targeted[:, 0] = base_overall
    eng[:, 0] = d_eng
    target = catalogue.type_target[population.org]  # (N, T), -1 where unavailable
    rows = np.arange(len(n_comp))
    eng_room = headroom(engagement[:, None], on_engagement, 0.0, 100.0)
    for t in range(n_types):
        slot = np.clip(target[:, t], 0, None)
        per_comp = competency_effects(on_target[:, t], slot, theta, mask)
        overall[:, 1 + t] = base_overall + dose[:, t] * per_comp.sum(axis=1) / n_comp
        targeted[:, 1 + t] = d_theta[rows, slot] + dose[:, t] * per_comp[rows, slot]
        eng[:, 1 + t] = (
            d_eng + dose[:, t] * on_engagement[:, t] * eng_room[:, t] + expected_annoyance
        )
    return ExpectedChanges(overall, targeted, eng, dose)


def step(
    population: Population,
    catalogue: Catalogue,
    theta: np.ndarray,
    engagement: np.ndarray,
    day: np.datetime64,
    arm: np.ndarray,
    n_nudges: np.ndarray,
    acted: np.ndarray,
    rng: np.random.Generator,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Realised latent state at the next wave.

    arm: nudge type index per manager, -1 for no nudge, shape (N,); n_nudges: nudges sent in the
    period (N,); acted: acted on at least one of them (N,) bool.
    Returns (theta_next (N, 8), engagement_next (N,), engagement_innovation (N,)); the
    innovations are drawn for every manager whatever the arms (common random numbers).
    """
    n = population.size
    shared = rng.normal(0.0, INNOVATION_SHARED_SD, size=n)
    per_comp = rng.normal(0.0, INNOVATION_COMPETENCY_SD, size=(n, MAX_COMPETENCIES))
    eng_noise = rng.normal(0.0, INNOVATION_ENGAGEMENT_SD, size=n)
    d = drivers(population, catalogue, theta, engagement, day)
    mask = competency_mask(population, catalogue)
    d_theta, d_eng = drift(population, theta, engagement)
    on_target, on_engagement = effect_given_action(d)
    treated = arm >= 0
    t = np.clip(arm, 0, None)
    rows = np.arange(n)
    slot = np.clip(catalogue.type_target[population.org, t], 0, None)
    dose = np.where(treated & acted, fatigue(n_nudges.astype(np.float64)), 0.0)
    effect = competency_effects(dose * on_target[rows, t], slot, theta, mask)
    g = dose * on_engagement[rows, t]
    eng_effect = g * headroom(engagement, g, 0.0, 100.0)
    eng_effect += np.where(treated, annoyance(n_nudges.astype(np.float64)), 0.0)
    theta_next = theta + d_theta + effect + (shared[:, None] + per_comp) * mask
    engagement_next = engagement + d_eng + eng_effect + eng_noise
    return theta_next, engagement_next, eng_noise


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))
