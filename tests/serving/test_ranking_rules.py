"""Unit specs of the ranking building blocks: policies, sampler, rules, decisions."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pytest

from recommender.effect_model import CatalogueEntry
from recommender.ranking import (
    EpsilonGreedy,
    OrgCatalogue,
    PastDecision,
    ReasonCode,
    RuleConfig,
    Sampler,
    Softmax,
    Uniform,
    apply_rules,
    decide,
    make_policy,
)

NOW = dt.datetime(2025, 3, 1, 12, 0, tzinfo=dt.UTC)


def entry(nudge_id: str, nudge_type: str = "recognition", *contexts: str) -> CatalogueEntry:
    return CatalogueEntry(nudge_id, "org-01", nudge_type, None, frozenset(contexts))


@pytest.mark.parametrize(
    "policy", [Uniform(), EpsilonGreedy(0.1), EpsilonGreedy(0.0), Softmax(0.1, 0.0), Softmax(0.5)]
)
def test_policies_give_probabilities_that_sum_to_one(policy: object) -> None:
    scores = np.random.default_rng(0).normal(size=50)
    p = policy.probabilities(scores)  # type: ignore[attr-defined]
    assert p.shape == (50,)
    assert np.all(p >= 0)
    assert p.sum() == pytest.approx(1.0, abs=1e-12)


def test_epsilon_greedy_splits_the_greedy_mass_between_ties() -> None:
    p = EpsilonGreedy(0.2).probabilities(np.array([1.0, 3.0, 3.0, 0.0]))
    np.testing.assert_allclose(p, [0.05, 0.45, 0.45, 0.05])


def test_softmax_floor_keeps_every_candidate_possible() -> None:
    p = Softmax(temperature=0.01, epsilon=0.1).probabilities(np.array([0.0, 10.0, 20.0]))
    assert p.min() >= 0.1 / 3 - 1e-12
    assert p.argmax() == 2


def test_policies_reject_bad_parameters_and_scores() -> None:
    with pytest.raises(ValueError, match="epsilon"):
        EpsilonGreedy(1.5)
    with pytest.raises(ValueError, match="temperature"):
        Softmax(temperature=0.0)
    with pytest.raises(ValueError, match="finite"):
        Uniform().probabilities(np.array([np.nan]))
    with pytest.raises(ValueError, match="unknown policy"):
        make_policy("thompson", epsilon=0.1, temperature=0.1)  # type: ignore[arg-type]


def test_seeded_sampler_is_reproducible_and_follows_the_probabilities() -> None:
    p = np.array([0.5, 0.3, 0.2, 0.0])
    first = [Sampler(3).choice(p) for _ in range(1)]
    draws_a = Sampler(3)
    draws_b = Sampler(3)
    a = [draws_a.choice(p) for _ in range(4000)]
    b = [draws_b.choice(p) for _ in range(4000)]
    assert a == b and first[0] == a[0]
    freq = np.bincount(a, minlength=4) / 4000
    np.testing.assert_allclose(freq, p, atol=0.03)
    assert freq[3] == 0.0


def test_unseeded_sampler_uses_os_entropy() -> None:
    sampler = Sampler()
    draws = {sampler.uniform() for _ in range(20)}
    assert len(draws) == 20 and all(0.0 <= u < 1.0 for u in draws)


def test_rules_cap_counts_only_decisions_inside_the_window() -> None:
    rules = RuleConfig(frequency_cap=2, frequency_window=dt.timedelta(days=7))
    old = PastDecision("a", NOW - dt.timedelta(days=8))
    recent = PastDecision("b", NOW - dt.timedelta(days=1))
    candidates = [entry("a"), entry("c")]
    ok = apply_rules(candidates, context=None, history=[old, recent], now=NOW, rules=rules)
    assert ok.reason_code is None
    capped = apply_rules(candidates, context=None, history=[recent, recent], now=NOW, rules=rules)
    assert capped.eligible == () and capped.reason_code is ReasonCode.FREQUENCY_CAP


def test_rules_filter_context_then_recent_repeats() -> None:
    rules = RuleConfig(frequency_cap=10, no_repeat_window=dt.timedelta(days=14))
    candidates = [entry("a", "x", "before_1on1"), entry("b", "y", "team_meeting")]
    shown = [PastDecision("a", NOW - dt.timedelta(days=3))]
    result = apply_rules(candidates, context="team_meeting", history=shown, now=NOW, rules=rules)
    assert [e.nudge_id for e in result.eligible] == ["b"]
    none = apply_rules(candidates, context="performance_review", history=[], now=NOW, rules=rules)
    assert none.reason_code is ReasonCode.NO_CONTEXT_MATCH
    repeat = apply_rules(candidates, context="before_1on1", history=shown, now=NOW, rules=rules)
    assert repeat.reason_code is ReasonCode.ALL_RECENTLY_SHOWN
    long_ago = [PastDecision("a", NOW - dt.timedelta(days=15))]
    again = apply_rules(candidates, context="before_1on1", history=long_ago, now=NOW, rules=rules)
    assert [e.nudge_id for e in again.eligible] == ["a"]


def test_rule_config_rejects_nonsense() -> None:
    with pytest.raises(ValueError, match="frequency_cap"):
        RuleConfig(frequency_cap=0)


def test_org_catalogue_treats_unknown_ids_alike_and_skips_unscored_types() -> None:
    catalogue = OrgCatalogue.build([entry("a", "t1"), entry("b", "t9")], ("t1", "t2"))
    known, unknown = catalogue.resolve(["a", "zz", "a", "b"])
    assert known == [0, 1] and unknown == ["zz"]
    assert catalogue.scorable(known) == [0]


def test_control_decision_logs_holdout_share_as_propensity() -> None:
    catalogue = OrgCatalogue.build([entry("a", "t1"), entry("b", "t2")], ("t1", "t2"))
    kinds = set()
    for seed in range(30):
        decision = decide(
            model=None,
            row=None,
            org_id="org-01",
            manager_id="m",
            catalogue=catalogue,
            positions=[0, 1],
            context=None,
            history=[],
            now=NOW,
            rules=RuleConfig(),
            policy=Uniform(),
            holdout_share=0.3,
            sampler=Sampler(seed),
            k=2,
            model_version="fallback",
        )
        kinds.add(decision.kind)
        if decision.kind == "control":
            assert decision.propensity == pytest.approx(0.3)
            assert decision.items == () and decision.reason_code is ReasonCode.HOLDOUT
            assert sum(decision.probabilities) == pytest.approx(1.0)
        else:
            assert decision.propensity == pytest.approx(0.7 * 0.5)
            assert decision.items[0].chosen and decision.items[0].probability == 0.5
    assert kinds == {"control", "nudge"}
