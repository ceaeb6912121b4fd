"""Off-policy estimators, bootstrap intervals, policy builders and weight diagnostics."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd
import pytest

from recommender import ope

# Tiny example, two actions (0 = control), four logged rounds.
REWARDS = np.array([1.0, 0.0, 2.0, 2.0])
ACTIONS = np.array([0, 1, 1, 0])
PROPENSITY = np.array([0.5, 0.25, 0.5, 0.8])
TARGET = np.array([[1.0, 0.0], [0.5, 0.5], [0.0, 1.0], [0.25, 0.75]])
Q_HAT = np.array([[0.5, 1.0], [0.5, 1.0], [1.0, 1.5], [1.0, 0.5]])


def test_ips_snips_dr_match_hand_computed_values_on_tiny_example() -> None:
    # weights w = target[i, a_i] / propensity_i = 1/0.5, 0.5/0.25, 1/0.5, 0.25/0.8
    #           = 2, 2, 2, 0.3125
    # w * r     = 2, 0, 4, 0.625                -> sum 6.625
    # IPS       = 6.625 / 4                     = 1.65625
    # SNIPS     = 6.625 / (2 + 2 + 2 + 0.3125)  = 6.625 / 6.3125
    # direct    = sum_a target * q_hat per row  = 0.5, 0.75, 1.5, 0.25*1 + 0.75*0.5 = 0.625
    # correction w * (r - q_hat[a_i])           = 2*0.5, 2*(-1), 2*0.5, 0.3125*1
    #                                           = 1, -2, 1, 0.3125
    # DR terms  = 1.5, -1.25, 2.5, 0.9375       -> mean 3.6875 / 4 = 0.921875
    ips = ope.ips_value(REWARDS, ACTIONS, PROPENSITY, TARGET, n_bootstrap=0)
    snips = ope.snips_value(REWARDS, ACTIONS, PROPENSITY, TARGET, n_bootstrap=0)
    dr = ope.dr_value(REWARDS, ACTIONS, PROPENSITY, TARGET, Q_HAT, n_bootstrap=0)
    assert ips.estimate == pytest.approx(1.65625)
    assert snips.estimate == pytest.approx(6.625 / 6.3125)
    assert dr.estimate == pytest.approx(0.921875)
    assert (ips.estimator, snips.estimator, dr.estimator) == ("ips", "snips", "dr")
    assert ips.n == 4
    assert np.isnan(ips.ci_low) and np.isnan(ips.ci_high)


def test_weight_cap_clips_importance_weights() -> None:
    # capped weights 1.5, 1.5, 1.5, 0.3125; w * r = 1.5, 0, 3, 0.625 -> IPS = 5.125 / 4
    capped = ope.ips_value(REWARDS, ACTIONS, PROPENSITY, TARGET, n_bootstrap=0, weight_cap=1.5)
    assert capped.estimate == pytest.approx(5.125 / 4)


def test_policy_value_to_dict_is_plain() -> None:
    value = ope.PolicyValue(1.0, 0.5, 1.5, 10, "dr")
    assert value.to_dict() == {
        "estimate": 1.0,
        "ci_low": 0.5,
        "ci_high": 1.5,
        "n": 10,
        "estimator": "dr",
    }


def test_ips_is_unbiased_under_uniform_logging() -> None:
    rng = np.random.default_rng(1)
    n_actions, n, draws = 3, 200, 400
    true_mean = np.array([0.0, 0.3, -0.2])
    target = np.tile([0.2, 0.7, 0.1], (n, 1))
    true_value = float(target[0] @ true_mean)
    estimates = np.empty(draws)
    for d in range(draws):
        actions = rng.integers(0, n_actions, n)
        rewards = true_mean[actions] + rng.normal(size=n)
        estimates[d] = ope.ips_value(
            rewards, actions, np.full(n, 1 / n_actions), target, n_bootstrap=0
        ).estimate
    se = estimates.std(ddof=1) / np.sqrt(draws)
    assert abs(estimates.mean() - true_value) < 3 * se


def test_dr_equals_direct_method_when_q_hat_is_exact_and_rewards_noiseless(
    logged_bandit: Any,
) -> None:
    data = logged_bandit
    q_exact = data.true_mean
    actions = data.actions
    rewards = q_exact[np.arange(actions.shape[0]), actions]  # correction term is exactly 0
    target = ope.softmax_policy(q_exact, temperature=0.2)
    dr = ope.dr_value(rewards, actions, data.logging_propensity, target, q_exact, n_bootstrap=0)
    assert dr.estimate == pytest.approx(ope.direct_method_value(target, q_exact))


def test_dr_is_close_to_true_value_with_exact_q_hat_and_noisy_rewards(
    logged_bandit: Any,
) -> None:
    data = logged_bandit
    target = ope.deterministic_policy(np.argmax(data.true_mean, axis=1), data.n_actions)
    true_value = float(np.mean(np.max(data.true_mean, axis=1)))
    dr = ope.dr_value(
        data.rewards,
        data.actions,
        data.logging_propensity,
        target,
        data.true_mean,
        n_bootstrap=300,
    )
    assert dr.ci_low <= true_value <= dr.ci_high


def test_bootstrap_interval_contains_estimate_and_narrows_with_n(
    bandit_factory: Callable[..., Any],
) -> None:
    widths = []
    for n in (300, 5000):
        data = bandit_factory(n, seed=2)
        target = ope.uniform_policy(n, data.n_actions)
        for fn in (ope.ips_value, ope.snips_value):
            value = fn(
                data.rewards,
                data.actions,
                data.logging_propensity,
                target,
                n_bootstrap=300,
            )
            assert value.ci_low <= value.estimate <= value.ci_high
        widths.append(value.ci_high - value.ci_low)
    assert widths[1] < widths[0] / 2


def test_bootstrap_is_reproducible_with_the_same_random_state(logged_bandit: Any) -> None:
    args = (
        logged_bandit.rewards,
        logged_bandit.actions,
        logged_bandit.logging_propensity,
        ope.no_nudge_policy(logged_bandit.n, logged_bandit.n_actions),
    )
    assert ope.ips_value(*args, n_bootstrap=50, random_state=3) == ope.ips_value(
        *args, n_bootstrap=50, random_state=3
    )


def test_bootstrap_means_chunking_does_not_change_the_resamples() -> None:
    terms = np.random.default_rng(0).normal(size=(51, 2))
    small_chunks = ope.bootstrap_means(terms, 21, random_state=5, max_elements=160)
    one_chunk = ope.bootstrap_means(terms, 21, random_state=5, max_elements=10**6)
    assert small_chunks.shape == (21, 2)
    np.testing.assert_allclose(small_chunks, one_chunk)


def test_paired_difference_interval_is_tighter_than_independent(logged_bandit: Any) -> None:
    data = logged_bandit
    scores = data.true_mean
    candidate = ope.epsilon_greedy_policy(scores, epsilon=0.1)
    champion = ope.epsilon_greedy_policy(scores + np.array([0.0, 0.0, -0.1]), epsilon=0.2)
    kwargs = {
        "rewards": data.rewards,
        "actions": data.actions,
        "logging_propensity": data.logging_propensity,
        "q_hat": np.zeros_like(scores),  # poor outcome model: IPS-like noise to cancel
        "n_bootstrap": 400,
    }
    paired = ope.dr_value_difference(candidate, champion, **kwargs)
    independent = ope.dr_value_difference(candidate, champion, paired=False, **kwargs)
    assert paired.estimate == pytest.approx(independent.estimate)
    assert paired.ci_high - paired.ci_low < 0.75 * (independent.ci_high - independent.ci_low)
    assert paired.estimator == "dr_difference"


def test_difference_equals_difference_of_values(logged_bandit: Any) -> None:
    data = logged_bandit
    a = ope.uniform_policy(data.n, data.n_actions)
    b = ope.no_nudge_policy(data.n, data.n_actions)
    common = (data.rewards, data.actions, data.logging_propensity)
    for estimator in ("ips", "snips", "dr"):
        diff = ope.dr_value_difference(
            a, b, *common, q_hat=data.true_mean, n_bootstrap=0, estimator=estimator
        )
        fn = {"ips": ope.ips_value, "snips": ope.snips_value}.get(estimator)
        if fn is None:
            va = ope.dr_value(*common, a, data.true_mean, n_bootstrap=0)
            vb = ope.dr_value(*common, b, data.true_mean, n_bootstrap=0)
        else:
            va, vb = fn(*common, a, n_bootstrap=0), fn(*common, b, n_bootstrap=0)
        assert diff.estimate == pytest.approx(va.estimate - vb.estimate)


def test_difference_vs_logging_uses_the_on_policy_mean(logged_bandit: Any) -> None:
    data = logged_bandit
    common = (data.rewards, data.actions, data.logging_propensity)
    target = ope.uniform_policy(data.n, data.n_actions)
    diff = ope.value_difference_vs_logging(target, *common, q_hat=data.true_mean, n_bootstrap=200)
    dr = ope.dr_value(*common, target, data.true_mean, n_bootstrap=0)
    assert diff.estimate == pytest.approx(dr.estimate - data.rewards.mean())
    assert diff.ci_low <= diff.estimate <= diff.ci_high
    assert diff.estimator == "dr_difference_vs_logging"
    # The logging policy itself as target: every weight is 1, so IPS differs by exactly 0.
    same = ope.value_difference_vs_logging(
        data.logging_probs, *common, estimator="ips", n_bootstrap=200
    )
    assert same.estimate == pytest.approx(0.0, abs=1e-12)
    assert same.ci_high - same.ci_low == pytest.approx(0.0, abs=1e-12)


def test_promotion_gate_flags_a_clearly_worse_candidate_only(logged_bandit: Any) -> None:
    data = logged_bandit
    oracle = ope.deterministic_policy(np.argmax(data.true_mean, axis=1), data.n_actions)
    anti = ope.deterministic_policy(np.argmin(data.true_mean, axis=1), data.n_actions)
    common = {
        "rewards": data.rewards,
        "actions": data.actions,
        "logging_propensity": data.logging_propensity,
        "q_hat": data.true_mean,
        "n_bootstrap": 300,
    }
    worse = ope.dr_value_difference(anti, oracle, **common)
    same = ope.dr_value_difference(oracle, oracle, **common)
    assert ope.is_significantly_worse(worse)
    assert not ope.is_significantly_worse(same)
    assert not ope.is_significantly_worse(worse, margin=10.0)
    with pytest.raises(ValueError, match="margin"):
        ope.is_significantly_worse(same, margin=-1.0)


def test_logging_policy_value_is_the_mean_reward_with_interval() -> None:
    rewards = np.random.default_rng(0).normal(1.0, 1.0, size=500)
    value = ope.logging_policy_value(rewards, n_bootstrap=200)
    assert value.estimate == pytest.approx(rewards.mean())
    assert value.ci_low < value.estimate < value.ci_high
    assert value.estimator == "on_policy"


def test_evaluate_policies_returns_tidy_frame(logged_bandit: Any) -> None:
    data = logged_bandit
    policies = {
        "uniform": ope.uniform_policy(data.n, data.n_actions),
        "no_nudge": ope.no_nudge_policy(data.n, data.n_actions),
    }
    common = (data.rewards, data.actions, data.logging_propensity)
    table = ope.evaluate_policies(policies, *common, q_hat=data.true_mean, n_bootstrap=50)
    assert list(table.columns) == ["policy", "estimator", "estimate", "ci_low", "ci_high", "n"]
    assert len(table) == 2 * 3 + 1
    assert set(table["estimator"]) == {"ips", "snips", "dr", "on_policy"}
    row = table[(table["policy"] == "uniform") & (table["estimator"] == "snips")].iloc[0]
    assert row["estimate"] == pytest.approx(
        ope.snips_value(*common, policies["uniform"], n_bootstrap=0).estimate
    )
    without_q = ope.evaluate_policies(policies, *common, n_bootstrap=0, logging_policy_name=None)
    assert set(without_q["estimator"]) == {"ips", "snips"}
    with pytest.raises(ValueError, match="q_hat"):
        ope.evaluate_policies(policies, *common, estimators=("dr",), n_bootstrap=0)
    with pytest.raises(ValueError, match="estimators"):
        ope.evaluate_policies(policies, *common, estimators=("magic",), n_bootstrap=0)
    with pytest.raises(ValueError, match="policies"):
        ope.evaluate_policies({}, *common)


def test_weight_diagnostics_report_ess_and_low_overlap() -> None:
    n, k = 1000, 5
    actions = np.arange(n) % k
    propensity = np.full(n, 1 / k)
    uniform = ope.weight_diagnostics(actions, propensity, ope.uniform_policy(n, k))
    assert uniform.ess == pytest.approx(n)
    assert uniform.max_weight == pytest.approx(1.0)
    assert not uniform.low_overlap
    # Weights 5 on the 200 rows that took action 2, else 0: ESS = 1000**2 / (200 * 25) = 200.
    single = ope.weight_diagnostics(
        actions, propensity, ope.single_action_policy(2, n, k), min_ess_fraction=0.25
    )
    assert single.ess == pytest.approx(200)
    assert single.ess_fraction == pytest.approx(0.2)
    assert single.share_zero == pytest.approx(0.8)
    assert single.low_overlap
    capped = ope.weight_diagnostics(
        actions, propensity, ope.single_action_policy(2, n, k), weight_cap=2.0
    )
    assert capped.max_weight == pytest.approx(2.0) and capped.n_capped == 200
    table = ope.overlap_table({"u": ope.uniform_policy(n, k)}, actions, propensity)
    assert list(table["policy"]) == ["u"] and "ess" in table.columns


# --------------------------------------------------------------------------- builders


def test_policy_builders_give_rows_summing_to_one_and_respect_masks() -> None:
    rng = np.random.default_rng(0)
    n, k = 50, 4
    mask = rng.random((n, k)) < 0.6
    mask[:, 0] = True  # control always eligible
    scores = rng.normal(size=(n, k))
    built = {
        "deterministic": ope.deterministic_policy(rng.integers(0, k, n), k),
        "uniform": ope.uniform_policy(n, k, mask),
        "single": ope.single_action_policy(3, n, k),
        "none": ope.no_nudge_policy(n, k),
        "eps": ope.epsilon_greedy_policy(scores, 0.2, mask),
        "softmax": ope.softmax_policy(scores, 0.5, mask),
    }
    for name, probs in built.items():
        assert probs.shape == (n, k), name
        np.testing.assert_allclose(probs.sum(axis=1), 1.0, err_msg=name)
        assert np.all(probs >= 0), name
    for name in ("uniform", "eps", "softmax"):
        assert np.all(built[name][~mask] == 0), name
    np.testing.assert_allclose(built["uniform"][mask], (1 / mask.sum(axis=1))[np.nonzero(mask)[0]])
    assert np.all(built["none"][:, 0] == 1)
    assert np.all(built["single"][:, 3] == 1)


def test_epsilon_greedy_splits_ties_and_explores_uniformly() -> None:
    probs = ope.epsilon_greedy_policy(np.array([[1.0, 3.0, 3.0, 0.0]]), epsilon=0.2)
    np.testing.assert_allclose(probs, [[0.05, 0.45, 0.45, 0.05]])
    greedy = ope.epsilon_greedy_policy(np.array([[0.0, 2.0]]), epsilon=0.0)
    np.testing.assert_allclose(greedy, [[0.0, 1.0]])


def test_softmax_matches_closed_form_and_is_stable_for_large_scores() -> None:
    probs = ope.softmax_policy(np.array([[0.0, np.log(3.0)]]), temperature=1.0)
    np.testing.assert_allclose(probs, [[0.25, 0.75]])
    big = ope.softmax_policy(np.array([[1000.0, 1001.0]]), temperature=1.0)
    assert np.all(np.isfinite(big))


def test_best_single_action_uses_column_means() -> None:
    scores = np.array([[0.0, 1.0, 0.5], [0.0, -0.8, 0.5]])
    assert ope.best_single_action(scores) == 2
    mask = np.array([[True, True, False], [True, True, False]])
    assert ope.best_single_action(scores, mask) == 1


# --------------------------------------------------------------------------- validation


@pytest.mark.parametrize(
    ("override", "match"),
    [
        ({"rewards": np.array([1.0, np.nan, 0.0, 1.0])}, "rewards"),
        ({"rewards": np.ones((4, 1))}, "rewards"),
        ({"actions": np.array([0, 1, 2, 0])}, "actions"),
        ({"actions": np.array([0.0, 1.5, 1.0, 0.0])}, "actions"),
        ({"actions": np.array([0, 1, 1])}, "actions"),
        ({"logging_propensity": np.array([0.5, 0.0, 0.5, 0.8])}, "logging_propensity"),
        ({"logging_propensity": np.array([0.5, 1.2, 0.5, 0.8])}, "logging_propensity"),
        ({"target_probs": TARGET * 0.9}, "target_probs"),
        ({"target_probs": TARGET[:3]}, "target_probs"),
        ({"target_probs": np.array([[1.2, -0.2]] * 4)}, "target_probs"),
        ({"q_hat": Q_HAT[:, :1]}, "q_hat"),
        ({"q_hat": np.where(Q_HAT > 1.2, np.nan, Q_HAT)}, "q_hat"),
        ({"n_bootstrap": -1}, "n_bootstrap"),
        ({"n_bootstrap": 1.5}, "n_bootstrap"),
        ({"confidence": 1.0}, "confidence"),
        ({"weight_cap": 0.0}, "weight_cap"),
    ],
)
def test_dr_value_rejects_bad_inputs_naming_the_argument(
    override: dict[str, object], match: str
) -> None:
    kwargs: dict[str, object] = {
        "rewards": REWARDS,
        "actions": ACTIONS,
        "logging_propensity": PROPENSITY,
        "target_probs": TARGET,
        "q_hat": Q_HAT,
        "n_bootstrap": 10,
    }
    kwargs.update(override)
    with pytest.raises(ValueError, match=match):
        ope.dr_value(**kwargs)


def test_builders_reject_bad_inputs_naming_the_argument() -> None:
    with pytest.raises(ValueError, match="mask"):
        ope.uniform_policy(2, 2, np.array([[True, False], [False, False]]))
    with pytest.raises(ValueError, match="mask"):
        ope.uniform_policy(2, 2, np.ones((3, 2), dtype=bool))
    with pytest.raises(ValueError, match="action"):
        ope.single_action_policy(5, 3, 4)
    with pytest.raises(ValueError, match="epsilon"):
        ope.epsilon_greedy_policy(np.zeros((2, 2)), epsilon=1.5)
    with pytest.raises(ValueError, match="temperature"):
        ope.softmax_policy(np.zeros((2, 2)), temperature=0.0)
    with pytest.raises(ValueError, match="scores"):
        ope.softmax_policy(np.zeros(3))
    with pytest.raises(ValueError, match="n_rounds"):
        ope.uniform_policy(0, 3)
    with pytest.raises(ValueError, match="target_b"):
        ope.dr_value_difference(TARGET, TARGET[:2], REWARDS, ACTIONS, PROPENSITY, Q_HAT)


def test_evaluate_policies_output_is_a_dataframe_even_for_one_policy() -> None:
    table = ope.evaluate_policies(
        {"target": TARGET}, REWARDS, ACTIONS, PROPENSITY, n_bootstrap=0, logging_policy_name=None
    )
    assert isinstance(table, pd.DataFrame) and len(table) == 2
