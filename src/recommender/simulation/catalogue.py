"""Organisations: competency models, the nudge types each uses, and the nudge catalogue."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

import numpy as np
import pandas as pd

from recommender.constants import CONTEXTS, GLOBAL_ORG

NUDGE_TYPES: Final = (
    "recognition",
    "coaching_question",
    "feedback_request",
    "delegation",
    "one_on_one_prep",
    "goal_clarity",
    "wellbeing_checkin",
    "decision_transparency",
    "growth_conversation",
    "team_celebration",
)
"""Global vocabulary of nudge types (treatments); index ``t`` in every (.., n_types) array."""

COMPETENCY_NAMES: Final = (
    "Coaching",
    "Feedback",
    "Delegation",
    "Communication",
    "Recognition",
    "Strategic thinking",
    "Wellbeing",
    "Decision making",
    "Goal setting",
    "Inclusion",
    "Developing others",
    "Collaboration",
)

_PREFERRED_COMPETENCY: Final = {
    "recognition": ("Recognition", "Inclusion"),
    "coaching_question": ("Coaching", "Developing others"),
    "feedback_request": ("Feedback", "Communication"),
    "delegation": ("Delegation", "Decision making"),
    "one_on_one_prep": ("Coaching", "Communication"),
    "goal_clarity": ("Goal setting", "Strategic thinking"),
    "wellbeing_checkin": ("Wellbeing", "Inclusion"),
    "decision_transparency": ("Decision making", "Communication"),
    "growth_conversation": ("Developing others", "Coaching"),
    "team_celebration": ("Recognition", "Collaboration"),
}

_TEXTS: Final = {
    "recognition": (
        "Name one specific thing a team member did well this week, and say why it mattered.",
        "Thank someone for work that usually goes unnoticed.",
        "Start the meeting by recognising a recent contribution.",
    ),
    "coaching_question": (
        "Ask 'What options have you considered?' before offering your own answer.",
        "Reply to the next request for help with a question instead of a solution.",
        "Ask 'What would you do if I were not here?'",
    ),
    "feedback_request": (
        "Ask one report: 'What is one thing I could do differently to help you?'",
        "End the meeting by asking for one piece of feedback on how you ran it.",
        "Ask a peer what they would change about how you communicate.",
    ),
    "delegation": (
        "Pick one task on your list that someone else could own, and hand it over with context.",
        "Delegate the outcome, not the steps: agree what done looks like.",
        "Ask who on the team would grow by taking this on.",
    ),
    "one_on_one_prep": (
        "Before your 1:1, note one topic your report raised last time and follow up on it.",
        "Let your report set the first item on the 1:1 agenda.",
        "Prepare one open question for your next 1:1.",
    ),
    "goal_clarity": (
        "Restate this week's top priority in one sentence and check it is understood.",
        "Ask each person what success looks like for their main goal this month.",
        "Link one task to the team goal it serves.",
    ),
    "wellbeing_checkin": (
        "Ask 'How are you doing, really?' and leave room for the answer.",
        "Check whether anyone's workload needs rebalancing this week.",
        "Share how you protect your own focus time.",
    ),
    "decision_transparency": (
        "Explain the reasoning behind a recent decision, including what you traded off.",
        "Tell the team which decisions are theirs to make this week.",
        "Share one decision you are still weighing and ask for input.",
    ),
    "growth_conversation": (
        "Ask a report which skill they want to build this quarter.",
        "Connect a current project to someone's career goal.",
        "Ask what kind of work gives your report energy.",
    ),
    "team_celebration": (
        "Mark a finished milestone with the whole team.",
        "Share a customer's thanks with the people who earned it.",
        "Open the team meeting with a recent win.",
    ),
}

_GLOBAL_TYPES: Final = ("recognition", "wellbeing_checkin", "goal_clarity")
DELIVERIES_MIN: Final = 2
"""Fewest nudges a nudge-type decision sends over its period."""
DELIVERIES_MAX: Final = 12
"""Most nudges a nudge-type decision sends over its period (truncation of the count law)."""


@dataclass(frozen=True)
class Catalogue:
    """Organisations with their competency models and nudges.

    org_ids: organisation ids, shape (n_orgs,).
    competencies, nudges: the contract tables (loader dtypes).
    n_competencies: competencies per org, shape (n_orgs,), 5-8.
    competency_offset: row of the org's first competency in ``competencies``, shape (n_orgs,).
    type_available: whether org ``o`` uses nudge type ``t``, shape (n_orgs, n_types).
    type_target: competency slot (0 .. n_competencies[o] - 1) type ``t`` builds in org ``o``,
        -1 where unavailable; shape (n_orgs, n_types).
    eligible: nudge row indices grouped by (org, type); ``eligible_start``/``eligible_count`` of
        shape (n_orgs, n_types) index into it (org nudges of the type plus global ones).
    delivery_rate: mean extra nudges per nudge-type decision beyond ``DELIVERIES_MIN``, shape
        (n_orgs,) (the org's sending cadence).
    """

    org_ids: np.ndarray
    competencies: pd.DataFrame
    nudges: pd.DataFrame
    n_competencies: np.ndarray
    competency_offset: np.ndarray
    type_available: np.ndarray
    type_target: np.ndarray
    eligible: np.ndarray
    eligible_start: np.ndarray
    eligible_count: np.ndarray
    delivery_rate: np.ndarray

    def count_pmf(self) -> np.ndarray:
        """P(n nudges | nudge-type decision, org), shape (n_orgs, DELIVERIES_MAX + 1).

        ``n = DELIVERIES_MIN + Poisson(delivery_rate)`` truncated at ``DELIVERIES_MAX``.
        """
        n = np.arange(DELIVERIES_MAX + 1)
        k = np.clip(n - DELIVERIES_MIN, 0, None)
        lam = self.delivery_rate[:, None]
        log_fact = np.cumsum(np.log(np.maximum(np.arange(DELIVERIES_MAX + 1), 1)))
        pmf = np.exp(k * np.log(lam) - lam - log_fact[k])
        pmf[:, n < DELIVERIES_MIN] = 0.0
        pmf /= pmf.sum(axis=1, keepdims=True)
        return pmf


def build_catalogue(n_orgs: int, rng: np.random.Generator) -> Catalogue:
    """Draw ``n_orgs`` organisations: 5-8 competencies, 6-10 nudge types, 3-5 nudges per type."""
    n_types = len(NUDGE_TYPES)
    org_ids = np.array([f"org-{o + 1:02d}" for o in range(n_orgs)], dtype=object)
    comp_rows: list[tuple[str, str, str, float]] = []
    nudge_rows: list[tuple[str, str, str, str | None, str, str]] = []
    n_comp = rng.integers(5, 9, size=n_orgs)
    type_available = np.zeros((n_orgs, n_types), dtype=bool)
    type_target = np.full((n_orgs, n_types), -1, dtype=np.int64)
    for o in range(n_orgs):
        n_t = int(rng.integers(6, n_types + 1))
        types = np.sort(rng.choice(n_types, size=n_t, replace=False))
        type_available[o, types] = True
        preference = rng.random(len(COMPETENCY_NAMES))
        for t in types:
            for rank, name in enumerate(_PREFERRED_COMPETENCY[NUDGE_TYPES[t]]):
                preference[COMPETENCY_NAMES.index(name)] += 1.0 / (rank + 1)
        chosen = np.sort(np.argsort(-preference, kind="stable")[: n_comp[o]])
        names = [COMPETENCY_NAMES[i] for i in chosen]
        weights = np.round(rng.dirichlet(np.full(len(names), 6.0)), 3)
        weights[np.argmax(weights)] += 1.0 - weights.sum()
        for j, (name, weight) in enumerate(zip(names, weights, strict=True)):
            comp_rows.append((org_ids[o], f"o{o + 1}-c{j + 1}", name, float(round(weight, 3))))
        for t in types:
            preferred = [
                names.index(n) for n in _PREFERRED_COMPETENCY[NUDGE_TYPES[t]] if n in names
            ]
            slot = preferred[0] if preferred else int(rng.integers(len(names)))
            type_target[o, t] = slot
            texts = _TEXTS[NUDGE_TYPES[t]]
            for j in range(int(rng.integers(3, 6))):
                nudge_rows.append(
                    (
                        f"{org_ids[o]}-n{len(nudge_rows) + 1:04d}",
                        org_ids[o],
                        NUDGE_TYPES[t],
                        f"o{o + 1}-c{slot + 1}",
                        _contexts(rng),
                        texts[j % len(texts)],
                    )
                )
    for t_name in _GLOBAL_TYPES:
        for j in range(2):
            text = _TEXTS[t_name][-1 - j]
            nudge_rows.append(
                (
                    f"{GLOBAL_ORG}-n{len(nudge_rows) + 1:04d}",
                    GLOBAL_ORG,
                    t_name,
                    None,
                    _contexts(rng),
                    text,
                )
            )

    competencies = pd.DataFrame(comp_rows, columns=["org_id", "competency_id", "name", "weight"])
    competencies = competencies.astype({c: "str" for c in ("org_id", "competency_id", "name")})
    nudges = pd.DataFrame(
        nudge_rows,
        columns=["nudge_id", "org_id", "nudge_type", "competency_id", "contexts", "text"],
    ).astype("str")
    nudges["competency_id"] = nudges["competency_id"].where(nudges["org_id"] != GLOBAL_ORG)

    eligible, start, count = _eligibility(nudges, org_ids, type_available)
    offsets = np.concatenate([[0], np.cumsum(n_comp)[:-1]])
    return Catalogue(
        org_ids=org_ids,
        competencies=competencies,
        nudges=nudges,
        n_competencies=n_comp.astype(np.int64),
        competency_offset=offsets.astype(np.int64),
        type_available=type_available,
        type_target=type_target,
        eligible=eligible,
        eligible_start=start,
        eligible_count=count,
        delivery_rate=rng.uniform(1.0, 3.5, size=n_orgs),
    )


def _contexts(rng: np.random.Generator) -> str:
    k = int(rng.integers(1, 4))
    picked = np.sort(rng.choice(len(CONTEXTS), size=k, replace=False))
    return ";".join(CONTEXTS[i] for i in picked)


def _eligibility(
    nudges: pd.DataFrame, org_ids: np.ndarray, type_available: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Flat nudge indices grouped by (org, type), with start/count arrays (n_orgs, n_types)."""
    org = nudges["org_id"].to_numpy(dtype=object)
    ntype = nudges["nudge_type"].to_numpy(dtype=object)
    n_orgs, n_types = type_available.shape
    start = np.zeros((n_orgs, n_types), dtype=np.int64)
    count = np.zeros((n_orgs, n_types), dtype=np.int64)
    flat: list[np.ndarray] = []
    position = 0
    for o in range(n_orgs):
        for t in range(n_types):
            if not type_available[o, t]:
                continue
            rows = np.flatnonzero(
                ((org == org_ids[o]) | (org == GLOBAL_ORG)) & (ntype == NUDGE_TYPES[t])
            )
            start[o, t], count[o, t] = position, len(rows)
            flat.append(rows)
            position += len(rows)
    return np.concatenate(flat).astype(np.int64), start, count
