"""The promotion gate refuses a candidate that is significantly worse (no MLflow needed)."""

from __future__ import annotations

import numpy as np

from recommender.bundle import RankerBundle
from recommender.effect_model import EffectPrediction
from recommender.evaluation import RewardModel, choose_best_single_type
from recommender.registry import GateDecision, gate


class _Inverted:
    """A constructed bad candidate: the real model's scores, negated (picks the worst types)."""

    def __init__(self, bundle: RankerBundle) -> None:
        self._bundle = bundle
        self.spec = bundle.spec
        self.nudge_types = bundle.nudge_types
        self.version = "99"

    def predict(self, rows: np.ndarray) -> EffectPrediction:
        pred = self._bundle.predict(rows)
        return EffectPrediction(-pred.effect, pred.effect_std, -pred.score - 10.0)


def _context(sample_prepared):
    prepared, _, _config = sample_prepared
    q = RewardModel.fit(prepared.train, 20, 0)
    prepared.evaluation.q_hat = q.predict(prepared.evaluation.X)
    best, _ = choose_best_single_type(prepared.train)
    return prepared.evaluation, best


def test_gate_refuses_a_worse_candidate_against_the_champion(sample_prepared, sample_bundle_dir):
    context, best = _context(sample_prepared)
    champion = RankerBundle(sample_bundle_dir, version="1")
    decision = gate(context, _Inverted(champion), champion, best, 200, 0.95, 0.01, 0)  # type: ignore[arg-type]
    assert isinstance(decision, GateDecision)
    assert not decision.promoted
    assert decision.vs_champion is not None and decision.vs_champion.ci_high < 0
    tags = decision.tags()
    assert tags["gate.decision"] == "refused"
    assert float(tags["gate.vs_champion.ci_high"]) < 0


def test_gate_promotes_the_same_model_against_itself(sample_prepared, sample_bundle_dir):
    context, best = _context(sample_prepared)
    champion = RankerBundle(sample_bundle_dir, version="1")
    decision = gate(context, champion, champion, best, 100, 0.95, 0.01, 0)
    assert decision.vs_champion is not None and decision.vs_champion.estimate == 0.0
    assert decision.promoted == (decision.vs_best_single.ci_high >= 0)
