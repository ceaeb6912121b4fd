"""Ranking: which nudge to serve now, for one manager, with logged probabilities.

Modules, one concern each:

- ``eligibility``: the organisation's catalogue index and the serving rules (frequency cap,
  no repeat within a window, context match).
- ``policies``: exploration policies (epsilon-greedy, softmax, uniform) with exact probabilities,
  and the thread-safe sampler.
- ``decision``: one decision built from scores, rules and policy (the holdout control arm too).
- ``fallback``: the catalogue read from ``nudges.csv``/``.parquet`` when no model is loaded.
- ``service``: the request-level orchestration the HTTP layer calls.
"""

from recommender.ranking.decision import Decision, RankedItem, decide
from recommender.ranking.eligibility import (
    Eligibility,
    OrgCatalogue,
    PastDecision,
    ReasonCode,
    RuleConfig,
    apply_rules,
)
from recommender.ranking.policies import (
    EpsilonGreedy,
    ExplorationPolicy,
    Sampler,
    Softmax,
    Uniform,
    make_policy,
)

__all__ = [
    "Decision",
    "Eligibility",
    "EpsilonGreedy",
    "ExplorationPolicy",
    "OrgCatalogue",
    "PastDecision",
    "RankedItem",
    "ReasonCode",
    "RuleConfig",
    "Sampler",
    "Softmax",
    "Uniform",
    "apply_rules",
    "decide",
    "make_policy",
]
