"""The simulated world, stepped one 360 period at a time under any assignment of nudge types.

``World`` holds the organisations, the managers and their latent state. Each call of
``run_period`` takes the decisions for the period that starts at the current 360 wave (from the
logging policy, or from any other policy: the closed loop), sends the nudges, draws who opens
and acts on them, advances the latent state, runs the surveys up to the next 360 wave and
records the ground truth for every arm. ``tables()`` and ``ground_truth()`` return everything
observed so far in the contract's format.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Final

import numpy as np
import pandas as pd

from recommender.constants import CONTROL, LEVELS, TRAITS
from recommender.simulation import effects, frames
from recommender.simulation.catalogue import (
    DELIVERIES_MAX,
    DELIVERIES_MIN,
    NUDGE_TYPES,
    build_catalogue,
)
from recommender.simulation.config import SimulationConfig, build_calendar
from recommender.simulation.managers import (
    FUNCTIONS,
    MAX_COMPETENCIES,
    REGIONS,
    apply_attrition,
    sample_population,
)
from recommender.simulation.policy import POLICY_NAME, logging_probabilities, sample_arms
from recommender.simulation.surveys import (
    MIN_DAYS_FOR_360,
    ObservedEngagement,
    observe_360,
    observe_engagement,
)

ARMS: Final = (CONTROL, *NUDGE_TYPES)
"""Arm labels; arm index 0 is the control, arm ``1 + t`` is ``NUDGE_TYPES[t]``."""

_STREAMS: Final = {
    name: i
    for i, name in enumerate(
        (
            "catalogue",
            "population",
            "initial",
            "attrition",
            "survey_360",
            "survey_engagement",
            "policy",
            "deliveries",
            "innovation",
            "mid_engagement",
        )
    )
}
_RATING_PROBABILITY: Final = 0.6
"""P(a manager who opened a nudge rates it)."""


@dataclass(frozen=True)
class Assignment:
    """Decisions for one period: one nudge type (or ``none``) per eligible manager.

    manager_id: shape (n,), every manager returned by ``World.decision_frame()`` exactly once.
    nudge_type: shape (n,), ``"none"`` or a nudge type the manager's org uses.
    propensity: shape (n,), probability the deciding policy had of this choice, in (0, 1].
    policy: name/version of the deciding policy (written to ``deliveries.policy``).
    """

    manager_id: np.ndarray
    nudge_type: np.ndarray
    propensity: np.ndarray
    policy: str


@dataclass
class _Log:
    """Raw arrays per table, appended wave by wave; turned into frames by ``frames``."""

    feedback: list[dict[str, np.ndarray]] = field(default_factory=list)
    engagement: list[dict[str, np.ndarray]] = field(default_factory=list)
    deliveries: list[dict[str, np.ndarray]] = field(default_factory=list)
    truth: list[dict[str, np.ndarray]] = field(default_factory=list)
    policies: list[str] = field(default_factory=list)


class World:
    """A simulated set of organisations, advanced one 360 period per ``run_period`` call.

    Deterministic given ``config.seed`` and the assignments passed in: every random draw comes
    from a stream keyed by (seed, concern, period), and the outcome innovations do not depend on
    the assignment, so two policies run on worlds built from the same config face the same luck
    (common random numbers) and their ground truth for the first period is identical.
    """

    def __init__(self, config: SimulationConfig) -> None:
        self.config = config
        self.calendar = build_calendar(config)
        self.catalogue = build_catalogue(config.n_orgs, self._rng("catalogue"))
        self.population = sample_population(
            config.n_managers, self.catalogue, self.calendar, self._rng("population")
        )
        pop = self.population
        rng = self._rng("initial")
        novice_gap = 0.35 * np.exp(-pop.tenure_at_hire / 18.0)
        self._theta0 = (
            pop.potential
            - novice_gap[:, None]
            + rng.normal(0.0, 0.15, size=(pop.size, MAX_COMPETENCIES))
        )
        self._engagement0 = pop.engagement_potential + rng.normal(0.0, 4.0, size=pop.size)
        self.theta = self._theta0.copy()
        self.engagement = self._engagement0.copy()
        self.period = 0
        self._log = _Log()
        self._next_delivery = 0
        apply_attrition(
            pop,
            self.engagement,
            self.calendar.start,
            self.calendar.waves_360[0],
            self._rng("attrition", 0),
        )
        self._observe_wave()

    # -- public ------------------------------------------------------------------------------

    @property
    def done(self) -> bool:
        """Whether every period has been run."""
        return self.period >= self.calendar.n_periods

    @property
    def period_start(self) -> np.datetime64:
        """360 wave that opens the current period."""
        return self.calendar.waves_360[self.period]

    def eligible(self) -> np.ndarray:
        """Indices of managers deciding this period (rated in the opening wave), shape (n,)."""
        return np.flatnonzero(self.population.active_on(self.period_start, MIN_DAYS_FOR_360))

    def decision_frame(self) -> pd.DataFrame:
        """Observable context of each eligible manager at the current wave, one row each:
        manager_id, org_id, profile columns, tenure_months (now), score_360 (observed overall
        360 at this wave, NaN if unrated) and engagement (observed, NaN if missing)."""
        pop, who = self.population, self.eligible()
        frame = pd.DataFrame(
            {
                "manager_id": pop.manager_id[who],
                "org_id": self.catalogue.org_ids[pop.org[who]],
                "function": np.asarray(FUNCTIONS, dtype=object)[pop.function[who]],
                "level": np.asarray(LEVELS, dtype=object)[pop.level[who]],
                "region": np.asarray(REGIONS, dtype=object)[pop.region[who]],
                "tenure_months": np.round(pop.tenure_months(self.period_start)[who]).astype(
                    np.int64
                ),
                "team_size": pop.team_size[who],
                **{trait: pop.traits[who, i] for i, trait in enumerate(TRAITS)},
                "score_360": self._overall_360[who],
                "engagement": self._observed_engagement[who],
            }
        )
        return frame.astype(
            {c: "str" for c in ("manager_id", "org_id", "function", "level", "region")}
        )

    def available_types(self) -> np.ndarray:
        """Nudge types each eligible manager's org uses, shape (n, T) bool."""
        return self.catalogue.type_available[self.population.org[self.eligible()]]

    def logging_assignment(self) -> Assignment:
        """Decisions of the historical logging policy for the current period."""
        frame = self.decision_frame()
        probabilities = logging_probabilities(frame, self.available_types())
        arms = sample_arms(probabilities, self._rng("policy", self.period))
        return Assignment(
            manager_id=frame["manager_id"].to_numpy(dtype=object),
            nudge_type=np.asarray(ARMS, dtype=object)[arms],
            propensity=probabilities[np.arange(len(arms)), arms],
            policy=POLICY_NAME,
        )

    def run_period(self, assignment: Assignment) -> None:
        """Apply ``assignment`` to the current period and advance the world to the next wave.

        Records the deliveries (one control row, or 2-12 nudges of the chosen type), the ground
        truth of every arm for every decided manager, the mid-period engagement pulse(s) and the
        closing 360 and engagement wave. Raises ValueError on an invalid assignment.
        """
        if self.done:
            raise ValueError("period: the world has no period left to run")
        k, pop, cal = self.period, self.population, self.calendar
        start, end = cal.waves_360[k], cal.waves_360[k + 1]
        who, arm, propensity = self._check(assignment)

        truth = effects.expected_changes(pop, self.catalogue, self.theta, self.engagement, start)
        self._record_truth(who, truth)
        apply_attrition(pop, self.engagement, start, end, self._rng("attrition", k + 1))
        n_nudges, acted = self._deliver(who, arm, propensity, assignment.policy)

        theta, engagement, _ = effects.step(
            pop,
            self.catalogue,
            self.theta,
            self.engagement,
            start,
            arm,
            n_nudges,
            acted,
            self._rng("innovation", k),
        )
        for i, day in enumerate(cal.engagement_within(k)):
            frac = float((day - start).astype(np.float64) / (end - start).astype(np.float64))
            rng = self._rng("mid_engagement", 100 * k + i)
            latent = self.engagement + frac * (engagement - self.engagement)
            latent = latent + rng.normal(0.0, 1.5, size=pop.size)
            self._record_engagement(day, observe_engagement(pop, latent, day, rng))
        not_started = ~pop.incumbent & (pop.hire_day > end - np.timedelta64(MIN_DAYS_FOR_360, "D"))
        theta[not_started] = self._theta0[not_started]
        engagement[not_started] = self._engagement0[not_started]
        self.theta, self.engagement = theta, engagement
        self.period += 1
        self._observe_wave()
        if self.done:
            apply_attrition(pop, self.engagement, end, cal.end, self._rng("attrition", k + 2))

    def tables(self) -> dict[str, pd.DataFrame]:
        """The six contract tables observed so far, keyed by ``constants.TABLES``."""
        return frames.build_tables(self.population, self.catalogue, self._log)

    def ground_truth(self) -> pd.DataFrame:
        """Ground truth of the periods run so far (long format, see data/README.md)."""
        return frames.build_ground_truth(self.population, self.calendar, self._log)

    # -- internals ---------------------------------------------------------------------------

    def _rng(self, stream: str, k: int = 0) -> np.random.Generator:
        return np.random.default_rng([self.config.seed, _STREAMS[stream], k])

    def _observe_wave(self) -> None:
        day = self.calendar.waves_360[self.period]
        k = self.period
        obs = observe_360(
            self.population, self.catalogue, self.theta, day, self._rng("survey_360", k)
        )
        self._log.feedback.append(
            {
                "manager": obs.manager,
                "day": np.full(len(obs.manager), day),
                "competency": obs.competency,
                "role": obs.role,
                "score": obs.score,
                "n_raters": obs.n_raters,
            }
        )
        self._overall_360 = obs.overall
        eng = observe_engagement(
            self.population, self.engagement, day, self._rng("survey_engagement", k)
        )
        self._record_engagement(day, eng)
        self._observed_engagement = eng.by_manager

    def _record_engagement(self, day: np.datetime64, eng: ObservedEngagement) -> None:
        self._log.engagement.append(
            {
                "manager": eng.manager,
                "day": np.full(len(eng.manager), day),
                "engagement": eng.engagement,
                "n_respondents": eng.n_respondents,
            }
        )

    def _check(self, assignment: Assignment) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Validate an assignment; return (manager indices, arm (N,), propensity (N,))."""
        pop = self.population
        ids = np.asarray(assignment.manager_id, dtype=object)
        types = np.asarray(assignment.nudge_type, dtype=object)
        prop = np.asarray(assignment.propensity, dtype=np.float64)
        if not (len(ids) == len(types) == len(prop)):
            raise ValueError("assignment: manager_id, nudge_type and propensity differ in length")
        if not assignment.policy:
            raise ValueError("policy: must be a non-empty name")
        eligible = self.eligible()
        position = pd.Index(pop.manager_id[eligible]).get_indexer(ids)
        if (
            (position < 0).any()
            or len(np.unique(position)) != len(eligible)
            or len(ids) != len(eligible)
        ):
            raise ValueError(
                "manager_id: the assignment must list every manager of decision_frame() once"
            )
        arm_index = pd.Index(ARMS).get_indexer(types)
        if (arm_index < 0).any():
            raise ValueError(f"nudge_type: unknown types {sorted(set(types[arm_index < 0]))}")
        who = eligible[position]
        treated = arm_index > 0
        ok = self.catalogue.type_available[pop.org[who[treated]], arm_index[treated] - 1]
        if not ok.all():
            raise ValueError("nudge_type: a type the manager's org does not use was assigned")
        if not np.all((prop > 0.0) & (prop <= 1.0)):
            raise ValueError("propensity: must be in (0, 1]")
        arm = np.full(pop.size, -1, dtype=np.int64)
        arm[who] = arm_index - 1
        propensity = np.zeros(pop.size)
        propensity[who] = prop
        order = np.argsort(who, kind="stable")
        return who[order], arm, propensity

    def _record_truth(self, who: np.ndarray, truth: effects.ExpectedChanges) -> None:
        available = np.concatenate(
            [
                np.ones((len(who), 1), dtype=bool),
                self.catalogue.type_available[self.population.org[who]],
            ],
            axis=1,
        )
        i, a = np.nonzero(available)
        m = who[i]
        self._log.truth.append(
            {
                "manager": m,
                "period": np.full(len(m), self.period),
                "arm": a,
                "delta_360": truth.delta_360[m, a],
                "delta_360_targeted": truth.delta_360_targeted[m, a],
                "delta_engagement": truth.delta_engagement[m, a],
            }
        )

    def _deliver(
        self, who: np.ndarray, arm: np.ndarray, propensity: np.ndarray, policy: str
    ) -> tuple[np.ndarray, np.ndarray]:
        """Log the period's deliveries; return (nudges planned (N,), acted on >= 1 (N,) bool)."""
        pop, cat, k = self.population, self.catalogue, self.period
        rng = self._rng("deliveries", k)
        start = self.calendar.waves_360[k]
        days = self.calendar.period_days(k)
        if policy not in self._log.policies:
            self._log.policies.append(policy)
        policy_code = self._log.policies.index(policy)

        treated = who[arm[who] >= 0]
        control = who[arm[who] < 0]
        n_nudges = np.zeros(pop.size, dtype=np.int64)
        extra = rng.poisson(cat.delivery_rate[pop.org[treated]])
        n_nudges[treated] = DELIVERIES_MIN + np.minimum(extra, DELIVERIES_MAX - DELIVERIES_MIN)

        counts = n_nudges[treated]
        row_manager = np.repeat(treated, counts)
        first_row = np.repeat(np.cumsum(counts) - counts, counts)
        j = np.arange(len(row_manager)) - first_row
        n_row = n_nudges[row_manager]
        spread = ((j - 1) + rng.random(len(j))) / np.maximum(n_row - 1, 1) * (days - 1)
        day_offset = np.where(j == 0, 0, 1 + np.floor(spread).astype(np.int64))
        row_day = start + day_offset.astype("timedelta64[D]")
        seconds = rng.integers(8 * 3600, 18 * 3600, size=len(j))
        t = arm[row_manager]
        o = pop.org[row_manager]
        pick = np.floor(rng.random(len(j)) * cat.eligible_count[o, t]).astype(np.int64)
        nudge = cat.eligible[cat.eligible_start[o, t] + pick]

        d = effects.drivers(pop, cat, self.theta, self.engagement, start)
        p_open = effects.open_probability(d, n_nudges.astype(np.float64))[row_manager]
        p_act = effects.act_probability(d)[row_manager, t]
        on_target, _ = effects.effect_given_action(d)
        opened = rng.random(len(j)) < p_open
        acted = opened & (rng.random(len(j)) < p_act)
        rated = opened & (rng.random(len(j)) < _RATING_PROBABILITY)
        usefulness = 3.0 + 1.4 * np.tanh(on_target[row_manager, t] / 0.2)
        rating = np.clip(np.round(usefulness + rng.normal(0.0, 0.9, size=len(j))), 1, 5)

        leave = pop.leave_day[row_manager]
        sent = np.isnat(leave) | (row_day <= leave)
        acted_any = np.bincount(row_manager[sent & acted], minlength=pop.size) > 0

        control_seconds = rng.integers(8 * 3600, 18 * 3600, size=len(control))
        manager = np.concatenate([control, row_manager[sent]])
        at = np.concatenate(
            [
                start.astype("datetime64[s]") + control_seconds.astype("timedelta64[s]"),
                row_day[sent].astype("datetime64[s]") + seconds[sent].astype("timedelta64[s]"),
            ]
        )
        order = np.lexsort((at, manager))
        n_rows = len(order)
        na = np.full(len(control), -1, dtype=np.int64)
        self._log.deliveries.append(
            {
                "serial": self._next_delivery + np.arange(n_rows),
                "manager": manager[order],
                "nudge": np.concatenate([na, nudge[sent]])[order],
                "at": at[order],
                "policy": np.full(n_rows, policy_code),
                "propensity": propensity[manager[order]],
                "opened": np.concatenate([na, opened[sent].astype(np.int64)])[order],
                "acted": np.concatenate([na, acted[sent].astype(np.int64)])[order],
                "rating": np.concatenate(
                    [na, np.where(rated[sent], rating[sent], -1).astype(np.int64)]
                )[order],
            }
        )
        self._next_delivery += n_rows
        return n_nudges, acted_any
