"""One ranking decision: rules, scores, exploration, the holdout arm and the logged propensity.

Probabilities. ``probabilities`` (one per eligible candidate) are the policy's probabilities of
serving each candidate *given that a nudge is sent*; they sum to 1. With holdout share ``h`` the
decision first sends nothing with probability ``h`` (the control arm). The logged ``propensity``
is the probability the logging policy had of the row's *treatment* (nudge type, or none):

- nudge decision: ``(1 - h) * sum(probabilities of the candidates of the chosen nudge's type)``;
- control decision: ``h``;
- empty decision (rules left nothing): ``None``; it is stored for audit but never exported.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np

from recommender.effect_model import EffectModel
from recommender.ranking.eligibility import (
    OrgCatalogue,
    PastDecision,
    ReasonCode,
    RuleConfig,
    apply_rules,
)
from recommender.ranking.policies import ExplorationPolicy, Sampler, Uniform

DecisionKind = Literal["nudge", "control", "empty"]

FALLBACK_REASON = "Suggested to try something new while personalised suggestions are prepared."
"""Reason shown for nudges chosen by the uniform fallback (no model loaded)."""


@dataclass(frozen=True)
class RankedItem:
    """One nudge in the response.

    score: ranking objective (standardised effect vs no nudge); None under the fallback.
    effect, effect_std: expected change per outcome name and its standard deviation, in the
        outcome's units; None under the fallback.
    probability: probability of serving this nudge given a nudge is sent.
    """

    nudge_id: str
    nudge_type: str
    score: float | None
    effect: dict[str, float] | None
    effect_std: dict[str, float] | None
    probability: float
    reason: str
    chosen: bool


@dataclass(frozen=True)
class Decision:
    """A decision as served and stored; candidate tuples are aligned (eligible candidates)."""

    decision_id: str
    org_id: str
    manager_id: str
    decided_at: dt.datetime
    context: str | None
    policy: str
    model_version: str
    fallback: bool
    kind: DecisionKind
    candidate_ids: tuple[str, ...]
    candidate_types: tuple[str, ...]
    probabilities: tuple[float, ...]
    holdout_share: float
    chosen_nudge_id: str | None
    chosen_nudge_type: str | None
    propensity: float | None
    reason_code: ReasonCode | None
    items: tuple[RankedItem, ...]


def decide(
    *,
    model: EffectModel | None,
    row: np.ndarray | None,
    org_id: str,
    manager_id: str,
    catalogue: OrgCatalogue,
    positions: Sequence[int],
    context: str | None,
    history: Sequence[PastDecision],
    now: dt.datetime,
    rules: RuleConfig,
    policy: ExplorationPolicy,
    holdout_share: float,
    sampler: Sampler,
    k: int,
    model_version: str,
) -> Decision:
    """Build one decision for a manager.

    model, row: the loaded model and the manager's encoded features, shape (n_features,); both
        None under the fallback, which serves uniformly at random.
    positions: candidate positions in ``catalogue`` (already resolved and scorable).
    holdout_share: probability in [0, 1) of the control arm (no nudge) when something is eligible.
    k: number of items returned (1..20): the served nudge first, then the best-scoring others.
    """
    fallback = model is None
    active_policy: ExplorationPolicy = Uniform() if fallback else policy
    policy_name = active_policy.name + (f"+holdout({holdout_share:g})" if holdout_share else "")
    base = {
        "decision_id": str(uuid.uuid4()),
        "org_id": org_id,
        "manager_id": manager_id,
        "decided_at": now,
        "context": context,
        "policy": policy_name,
        "model_version": model_version,
        "fallback": fallback,
        "holdout_share": holdout_share,
    }
    entries = [catalogue.entries[i] for i in positions]
    eligibility = apply_rules(entries, context=context, history=history, now=now, rules=rules)
    if eligibility.reason_code is not None:
        return Decision(
            **base,  # type: ignore[arg-type]
            kind="empty",
            candidate_ids=(),
            candidate_types=(),
            probabilities=(),
            chosen_nudge_id=None,
            chosen_nudge_type=None,
            propensity=None,
            reason_code=eligibility.reason_code,
            items=(),
        )
    eligible = eligibility.eligible
    n = len(eligible)
    scores: np.ndarray | None = None
    effects: np.ndarray | None = None
    stds: np.ndarray | None = None
    if model is None or row is None:
        probabilities = active_policy.probabilities(np.zeros(n))
    else:
        type_index = catalogue.type_index[[catalogue.by_id[e.nudge_id] for e in eligible]]
        prediction = model.predict(row.reshape(1, -1))
        scores = np.asarray(prediction.score, dtype=np.float64)[0, type_index]
        effects = np.asarray(prediction.effect, dtype=np.float64)[0, type_index, :]
        stds = np.asarray(prediction.effect_std, dtype=np.float64)[0, type_index, :]
        probabilities = active_policy.probabilities(scores)
    candidate_ids = tuple(e.nudge_id for e in eligible)
    candidate_types = tuple(e.nudge_type for e in eligible)
    logged = tuple(float(p) for p in probabilities)
    if holdout_share > 0.0 and sampler.uniform() < holdout_share:
        return Decision(
            **base,  # type: ignore[arg-type]
            kind="control",
            candidate_ids=candidate_ids,
            candidate_types=candidate_types,
            probabilities=logged,
            chosen_nudge_id=None,
            chosen_nudge_type=None,
            propensity=holdout_share,
            reason_code=ReasonCode.HOLDOUT,
            items=(),
        )
    chosen = sampler.choice(probabilities)
    chosen_type = candidate_types[chosen]
    same_type = np.fromiter((t == chosen_type for t in candidate_types), dtype=bool, count=n)
    propensity = (1.0 - holdout_share) * float(probabilities[same_type].sum())
    if scores is None:
        others = [i for i in range(n) if i != chosen]
    else:
        others = [int(i) for i in np.argsort(-scores, kind="stable") if i != chosen]
    order = [chosen, *others][:k]
    reasons: dict[str, str] = {}
    items = []
    for i in order:
        nudge_type = candidate_types[i]
        if nudge_type not in reasons:
            reasons[nudge_type] = (
                FALLBACK_REASON
                if model is None or row is None
                else model.reason(org_id, row, nudge_type)
            )
        items.append(
            RankedItem(
                nudge_id=candidate_ids[i],
                nudge_type=nudge_type,
                score=None if scores is None else float(scores[i]),
                effect=None if effects is None else _per_outcome(model, effects[i]),
                effect_std=None if stds is None else _per_outcome(model, stds[i]),
                probability=logged[i],
                reason=reasons[nudge_type],
                chosen=i == chosen,
            )
        )
    return Decision(
        **base,  # type: ignore[arg-type]
        kind="nudge",
        candidate_ids=candidate_ids,
        candidate_types=candidate_types,
        probabilities=logged,
        chosen_nudge_id=candidate_ids[chosen],
        chosen_nudge_type=chosen_type,
        propensity=propensity,
        reason_code=None,
        items=tuple(items),
    )


def _per_outcome(model: EffectModel | None, values: np.ndarray) -> dict[str, float]:
    assert model is not None
    return {name: float(v) for name, v in zip(model.outcome_names, values, strict=True)}
