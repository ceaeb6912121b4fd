"""PEHE, oracle-normalised value, Qini curves, calibration and privacy-safe segment tables."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from recommender import evaluation_metrics as em
from recommender import ope
from recommender.constants import MIN_GROUP_SIZE

# --------------------------------------------------------------------------- PEHE


def test_pehe_is_zero_for_perfect_predictions() -> None:
    true = np.random.default_rng(0).normal(size=(100, 3))
    result = em.pehe(true, true.copy())
    np.testing.assert_allclose(result.per_type, 0.0)
    assert result.mean == 0.0
    assert result.per_type_ci is None and result.mean_ci is None


def test_pehe_is_per_type_rmse_with_mean() -> None:
    true = np.zeros((4, 2))
    pred = np.array([[1.0, 2.0], [-1.0, -2.0], [1.0, 2.0], [-1.0, 2.0]])
    # type 0: errors +-1 -> RMSE 1; type 1: errors +-2 -> RMSE 2; mean (1 + 2) / 2 = 1.5
    result = em.pehe(pred, true, n_bootstrap=50)
    np.testing.assert_allclose(result.per_type, [1.0, 2.0])
    assert result.mean == pytest.approx(1.5)
    assert result.per_type_ci is not None and result.per_type_ci.shape == (2, 2)
    assert result.to_dict(["a", "b"])["pehe_b"] == pytest.approx(2.0)


def test_pehe_rejects_mismatched_shapes_and_nan() -> None:
    with pytest.raises(ValueError, match="effect_true"):
        em.pehe(np.zeros((3, 2)), np.zeros((3, 1)))
    with pytest.raises(ValueError, match="effect_pred"):
        em.pehe(np.array([np.nan, 1.0]), np.zeros(2))


# --------------------------------------------------------------------------- policy value


def test_normalised_value_is_one_for_oracle_and_zero_for_random() -> None:
    rng = np.random.default_rng(0)
    true_outcome = rng.normal(size=(300, 4))
    n, k = true_outcome.shape
    v_random = em.true_policy_value(true_outcome, ope.uniform_policy(n, k))
    v_oracle = em.oracle_policy_value(true_outcome)
    oracle_policy = ope.deterministic_policy(np.argmax(true_outcome, axis=1), k)
    assert em.true_policy_value(true_outcome, oracle_policy) == pytest.approx(v_oracle)
    assert em.normalised_policy_value(v_oracle, v_random, v_oracle) == pytest.approx(1.0)
    assert em.normalised_policy_value(v_random, v_random, v_oracle) == pytest.approx(0.0)
    assert em.regret(v_oracle, v_oracle) == 0.0
    assert em.regret(v_random, v_oracle) > 0


def test_normalised_value_is_nan_with_warning_when_oracle_equals_random() -> None:
    with pytest.warns(RuntimeWarning, match="v_oracle equals v_random"):
        assert np.isnan(em.normalised_policy_value(0.3, 1.0, 1.0))
    with pytest.raises(ValueError, match="v_policy"):
        em.normalised_policy_value(float("nan"), 0.0, 1.0)


def test_oracle_value_respects_mask() -> None:
    true_outcome = np.array([[0.0, 5.0], [1.0, 2.0]])
    mask = np.array([[True, False], [True, True]])
    assert em.oracle_policy_value(true_outcome, mask) == pytest.approx((0.0 + 2.0) / 2)


def test_true_policy_value_rejects_bad_target_probs() -> None:
    with pytest.raises(ValueError, match="target_probs"):
        em.true_policy_value(np.zeros((2, 2)), np.array([[0.5, 0.4], [1.0, 0.0]]))


# --------------------------------------------------------------------------- Qini


def _randomised_trial(n: int = 4000, seed: int = 0) -> tuple[np.ndarray, ...]:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=n)
    tau = 0.5 * x  # true individual effect
    treated = rng.random(n) < 0.5
    rewards = x + treated * tau + rng.normal(size=n)
    return tau, rewards, treated, rng.normal(size=n)


def test_qini_of_perfect_ranking_beats_random_ranking() -> None:
    tau, rewards, treated, noise_scores = _randomised_trial()
    perfect = em.qini_coefficient(tau, rewards, treated)
    random = em.qini_coefficient(noise_scores, rewards, treated)
    assert perfect > 0.05
    assert abs(random) < 0.03
    assert em.uplift_at_k(tau, rewards, treated, k=0.2) > 0.5  # mean tau in top 20% ~ 0.7
    assert em.uplift_at_k(-tau, rewards, treated, k=0.2) < -0.5


def test_qini_curve_runs_from_zero_to_the_overall_effect() -> None:
    tau, rewards, treated, _ = _randomised_trial(500)
    curve = em.qini_curve(tau, rewards, treated)
    assert list(curve.columns) == ["fraction", "incremental_gain", "random_gain"]
    assert curve["fraction"].iloc[0] == 0.0 and curve["fraction"].iloc[-1] == 1.0
    overall = rewards[treated].mean() - rewards[~treated].mean()
    assert curve["incremental_gain"].iloc[-1] == pytest.approx(overall)
    assert curve["random_gain"].iloc[-1] == pytest.approx(overall)
    assert curve["fraction"].is_monotonic_increasing


def test_qini_curve_keeps_tied_predictions_together() -> None:
    rewards = np.array([1.0, 0.0, 1.0, 0.0])
    treated = np.array([True, False, True, False])
    curve = em.qini_curve(np.array([1.0, 1.0, 0.0, 0.0]), rewards, treated)
    np.testing.assert_allclose(curve["fraction"], [0.0, 0.5, 1.0])
    # top half: treated mean 1, control mean 0 -> gain 0.5 * (1 - 0) = 0.5
    np.testing.assert_allclose(curve["incremental_gain"], [0.0, 0.5, 1.0])


def test_qini_inverse_propensity_weighting_removes_confounding() -> None:
    rng = np.random.default_rng(3)
    n = 20000
    x = rng.normal(size=n)
    p_treat = 1 / (1 + np.exp(-1.5 * x))  # units with high x (high baseline) are treated more
    treated = rng.random(n) < p_treat
    rewards = 2.0 * x + 0.3 * treated + rng.normal(size=n)  # true effect 0.3 for everyone
    received = np.where(treated, p_treat, 1 - p_treat)
    naive = em.qini_curve(x, rewards, treated)["incremental_gain"].iloc[-1]
    weighted = em.qini_curve(x, rewards, treated, received)["incremental_gain"].iloc[-1]
    assert naive > 1.0
    assert weighted == pytest.approx(0.3, abs=0.15)


def test_qini_rejects_bad_inputs_naming_the_argument() -> None:
    with pytest.raises(ValueError, match="treated"):
        em.qini_curve(np.zeros(3), np.zeros(3), np.array([True, True, True]))
    with pytest.raises(ValueError, match="rewards"):
        em.qini_curve(np.zeros(3), np.zeros(2), np.array([True, False, True]))
    with pytest.raises(ValueError, match="propensity"):
        em.qini_curve(np.zeros(2), np.zeros(2), np.array([True, False]), np.array([0.5, 0.0]))
    with pytest.raises(ValueError, match="k must"):
        em.uplift_at_k(np.zeros(2), np.zeros(2), np.array([True, False]), k=0.0)


# --------------------------------------------------------------------------- calibration


def test_calibration_by_decile_tracks_well_calibrated_predictions() -> None:
    rng = np.random.default_rng(0)
    pred = rng.normal(size=2000)
    pseudo = pred + rng.normal(size=2000)
    table = em.calibration_by_decile(pred, pseudo)
    assert list(table.columns) == [
        "decile",
        "n",
        "n_units",
        "mean_predicted",
        "mean_observed",
        "ci_low",
        "ci_high",
        "suppressed",
    ]
    assert len(table) == 10 and not table["suppressed"].any()
    assert (table["n"] == 200).all()
    assert table["mean_predicted"].is_monotonic_increasing
    inside = (table["ci_low"] <= table["mean_predicted"]) & (
        table["mean_predicted"] <= table["ci_high"]
    )
    assert inside.sum() >= 8


def test_calibration_suppresses_deciles_with_few_managers_and_a_complement() -> None:
    rng = np.random.default_rng(1)
    pred = np.arange(100, dtype=float)
    pseudo = rng.normal(size=100)
    units = np.array([f"m{i}" for i in range(100)], dtype=object)
    units[:10] = ["m0", "m1", "m2"] * 3 + ["m0"]  # lowest decile: 3 distinct managers
    table = em.calibration_by_decile(pred, pseudo, unit_ids=units)
    assert table["suppressed"].sum() == 2
    assert bool(table.loc[0, "suppressed"])
    hidden = table[table["suppressed"]]
    assert hidden.drop(columns=["decile", "suppressed"]).isna().all().all()


def test_calibration_rejects_bad_inputs() -> None:
    with pytest.raises(ValueError, match="dr_pseudo_outcome"):
        em.calibration_by_decile(np.zeros(10), np.zeros(9))
    with pytest.raises(ValueError, match="unit_ids"):
        em.calibration_by_decile(np.zeros(10), np.zeros(10), unit_ids=np.arange(9))
    with pytest.raises(ValueError, match="n_bins"):
        em.calibration_by_decile(np.zeros(10), np.zeros(10), n_bins=0)


# --------------------------------------------------------------------------- segments


def _segment_frame(sizes: dict[tuple[str, str], int], seed: int = 0) -> pd.DataFrame:
    """Two rows (periods) per manager; score around a segment-specific level."""
    rng = np.random.default_rng(seed)
    rows = []
    counter = 0
    for (region, level), n_units in sizes.items():
        base = 0.1 * counter
        for _ in range(n_units):
            manager = f"m{counter:04d}"
            counter += 1
            for _period in range(2):
                rows.append(
                    {
                        "manager_id": manager,
                        "region": region,
                        "level": level,
                        "score": base + rng.normal(),
                    }
                )
    return pd.DataFrame(rows)


def test_segment_table_suppresses_small_groups_and_the_next_smallest() -> None:
    sizes = {("a", "x"): 20, ("b", "x"): 3, ("c", "x"): 8, ("d", "x"): 30}
    frame = _segment_frame(sizes)
    table = em.segment_table(frame, ["region"], ["score"]).set_index("region")
    assert table.loc["b", "suppressed"] and table.loc["c", "suppressed"]
    assert not table.loc["a", "suppressed"] and not table.loc["d", "suppressed"]
    assert table.loc["b", "n_units_display"] == f"<{MIN_GROUP_SIZE}"
    assert table.loc["c", "n_units_display"] == "suppressed"
    assert table.loc["a", "n_units"] == 20 and table.loc["a", "n_units_display"] == "20"
    for region in ("b", "c"):
        assert (
            table.loc[region, ["n_units", "score_mean", "score_ci_low", "score_ci_high"]]
            .isna()
            .all()
        )
    # the small group's true numbers appear nowhere in the output
    small_mean = frame.loc[frame["region"] == "b", "score"].mean()
    numbers = table.select_dtypes("number").to_numpy().ravel()
    assert not np.any(np.isclose(numbers, small_mean)) and not np.any(numbers == 3)
    visible = frame.loc[frame["region"] == "a", "score"].mean()
    assert table.loc["a", "score_mean"] == pytest.approx(visible)
    assert table.loc["a", "score_ci_low"] < visible < table.loc["a", "score_ci_high"]


def test_segment_table_complementary_suppression_in_two_dimensions() -> None:
    # region x level; partitions are rows (same region) and columns (same level).
    # n-x is small -> its row partner n-y and the smallest of column x (s-x: 12 < e-x: 15)
    # are suppressed; s-x is then alone in row s -> s-y too. e-* stay visible.
    sizes = {
        ("n", "x"): 3,
        ("n", "y"): 10,
        ("s", "x"): 12,
        ("s", "y"): 20,
        ("e", "x"): 15,
        ("e", "y"): 25,
    }
    table = em.segment_table(_segment_frame(sizes), ["region", "level"], ["score"])
    hidden = {
        (r, lv)
        for r, lv, s in zip(table["region"], table["level"], table["suppressed"], strict=True)
        if s
    }
    assert hidden == {("n", "x"), ("n", "y"), ("s", "x"), ("s", "y")}
    shown = table[~table["suppressed"]]
    assert shown["score_mean"].notna().all() and (shown["n_units"] >= MIN_GROUP_SIZE).all()
    assert table.loc[table["suppressed"], ["n_units", "score_mean"]].isna().all().all()


def test_segment_table_without_complementary_suppression_only_hides_small_groups() -> None:
    sizes = {("a", "x"): 20, ("b", "x"): 3, ("c", "x"): 8}
    table = em.segment_table(_segment_frame(sizes), ["region"], ["score"], complementary=False)
    assert list(table["suppressed"]) == [False, True, False]


def test_segment_table_counts_distinct_managers_not_rows() -> None:
    frame = _segment_frame({("a", "x"): 4, ("b", "x"): 30})  # a: 8 rows but 4 managers
    table = em.segment_table(frame, ["region"], ["score"], complementary=False)
    assert list(table["suppressed"]) == [True, False]


def test_segment_table_blanks_a_value_column_observed_for_few_managers() -> None:
    frame = _segment_frame({("a", "x"): 10, ("b", "x"): 10})
    frame["sparse"] = np.where(frame["manager_id"] < "m0003", 1.0, np.nan)
    table = em.segment_table(frame, ["region"], ["score", "sparse"])
    assert table["score_mean"].notna().all()
    assert table["sparse_mean"].isna().all()


def test_segment_table_rejects_missing_columns_and_non_numeric_values() -> None:
    frame = _segment_frame({("a", "x"): 5})
    with pytest.raises(ValueError, match="missing columns"):
        em.segment_table(frame, ["team"], ["score"])
    with pytest.raises(ValueError, match="numeric"):
        em.segment_table(frame, ["region"], ["level"])
    with pytest.raises(ValueError, match="by"):
        em.segment_table(frame, [], ["score"])
    with pytest.raises(ValueError, match="min_group"):
        em.segment_table(frame, ["region"], ["score"], min_group=0)


# --------------------------------------------------------------------------- bands


def test_trait_bands_label_low_mid_high() -> None:
    bands = em.trait_bands(np.array([0.0, 32.9, 33.0, 66.9, 67.0, 100.0, np.nan]))
    assert list(bands.categories) == ["low", "mid", "high"] and bands.ordered
    assert list(bands[:6]) == ["low", "low", "mid", "mid", "high", "high"]
    assert pd.isna(bands[6])
    with pytest.raises(ValueError, match="values"):
        em.trait_bands(np.array([101.0]))
    with pytest.raises(ValueError, match="labels"):
        em.trait_bands(np.array([1.0]), labels=("a", "b"))
