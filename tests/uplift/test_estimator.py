"""Behaviour of MultiTreatmentUplift: effect recovery, inputs, selection, shrinkage, contract."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import pytest
from sklearn.base import clone
from sklearn.exceptions import NotFittedError

from recommender.uplift import MultiTreatmentUplift
from recommender.uplift.synthetic import UpliftProblem, make_uplift_problem, pehe


def test_recovers_sign_and_rank_of_average_effects(
    strong_problem: UpliftProblem, strong_model: MultiTreatmentUplift
) -> None:
    effect = strong_model.predict_effects(strong_problem.X)
    for o in range(2):
        est = effect[:, :, o].mean(axis=0)
        truth = strong_problem.true_effect[:, :, o].mean(axis=0)
        assert np.array_equal(np.sign(est), np.sign(truth))
        assert np.array_equal(np.argsort(est), np.argsort(truth))


def test_per_row_effects_correlate_with_truth_when_signal_is_strong(
    strong_problem: UpliftProblem, strong_model: MultiTreatmentUplift
) -> None:
    effect = strong_model.predict_effects(strong_problem.X)
    for k in range(3):
        corr = np.corrcoef(effect[:, k, 0], strong_problem.true_effect[:, k, 0])[0, 1]
        assert corr > 0.75


def test_blend_is_not_worse_than_constant_effect_on_held_out_loss(
    strong_model: MultiTreatmentUplift,
) -> None:
    report = strong_model.selection_report_
    for name in strong_model.outcome_names_:
        assert report.loc["shrunk", (name, "loss")] <= report.loc["constant", (name, "loss")]
        assert report.loc["blend", (name, "loss")] <= report[(name, "loss")].iloc[:4].min() + 1e-12


def test_chosen_model_never_loses_to_the_best_single_learner_and_drops_small_weights(
    strong_model: MultiTreatmentUplift,
) -> None:
    report = strong_model.selection_report_
    for name in strong_model.outcome_names_:
        weights = report.loc[["s", "t", "x", "dr"], (name, "weight")]
        assert ((weights == 0) | (weights >= 0.05)).all()
        losses = report.loc[["s", "t", "x", "dr"], (name, "loss")]
        if (weights == 1.0).any():
            assert losses[weights == 1.0].iloc[0] == losses.min()
        else:
            assert report.loc["blend_cv", (name, "loss")] < losses.min()


def test_fitted_attributes_and_prediction_shapes(
    strong_problem: UpliftProblem, strong_model: MultiTreatmentUplift
) -> None:
    m = strong_model
    assert m.treatments_ == ("type_01", "type_02", "type_03")
    assert m.outcome_names_ == ("y0", "y1")
    assert m.n_features_in_ == strong_problem.X.shape[1]
    assert list(m.feature_names_in_) == list(strong_problem.X.columns)
    effect, std = m.predict_effects_with_std(strong_problem.X.iloc[:50])
    assert effect.shape == std.shape == (50, 3, 2)
    assert np.all(std > 0)
    np.testing.assert_allclose(effect, m.predict_effects(strong_problem.X.iloc[:50]))


def test_selection_report_lists_every_candidate_with_simplex_weights(
    strong_model: MultiTreatmentUplift,
) -> None:
    report = strong_model.selection_report_
    assert list(report.index) == ["s", "t", "x", "dr", "blend", "blend_cv", "constant", "shrunk"]
    for name in strong_model.outcome_names_:
        weights = report.loc[["s", "t", "x", "dr"], (name, "weight")]
        assert (weights >= 0).all()
        assert weights.sum() == pytest.approx(1.0)
        chosen = strong_model.chosen_[name]
        assert chosen["shrinkage"] in (0.0, 0.25, 0.5, 0.75, 1.0)
        assert chosen["weights"] == pytest.approx(weights.to_dict())


def test_overlap_report_describes_each_arm(strong_model: MultiTreatmentUplift) -> None:
    report = strong_model.overlap_report_
    assert list(report.index) == ["none", "type_01", "type_02", "type_03"]
    assert (report["source"] == "fitted").all()
    assert ((report["min"] > 0) & (report["max"] <= 1)).all()
    assert report["share_clipped"].between(0, 1).all()


def test_works_with_numpy_features_integer_labels_and_1d_outcome(
    fast: dict[str, Any],
    strong_problem: UpliftProblem,
) -> None:
    p = strong_problem
    X = p.X.drop(columns="segment").to_numpy()
    labels = {"none": 0, "type_01": 1, "type_02": 2, "type_03": 3}
    treatment = np.array([labels[t] for t in p.treatment])
    m = MultiTreatmentUplift(control=0, learners=("s", "t"), **fast)
    m.fit(X, treatment, p.y[:, 0])
    assert m.treatments_ == (1, 2, 3)
    assert m.outcome_names_ == ("y",)
    assert not hasattr(m, "feature_names_in_")
    assert m.predict_effects(X[:10]).shape == (10, 3, 1)


def test_dataframe_outcomes_name_the_outcome_axis(
    fast: dict[str, Any], strong_problem: UpliftProblem
) -> None:
    p = strong_problem
    y = pd.DataFrame(p.y, columns=["delta_360", "delta_engagement"])
    m = MultiTreatmentUplift(learners=("s",), **fast).fit(p.X, p.treatment, y)
    assert m.outcome_names_ == ("delta_360", "delta_engagement")
    assert set(m.chosen_) == {"delta_360", "delta_engagement"}


def test_categorical_levels_map_by_value_at_predict_time(
    strong_problem: UpliftProblem, strong_model: MultiTreatmentUplift
) -> None:
    X = strong_problem.X.iloc[:200].copy()
    reordered = X.copy()
    reordered["segment"] = X["segment"].cat.reorder_categories(["d", "c", "b", "a"])
    as_strings = X.copy()
    as_strings["segment"] = X["segment"].astype(str)
    base = strong_model.predict_effects(X)
    np.testing.assert_array_equal(base, strong_model.predict_effects(reordered))
    np.testing.assert_array_equal(base, strong_model.predict_effects(as_strings))
    np.testing.assert_array_equal(base, strong_model.predict_effects(X[X.columns[::-1]]))


def test_string_feature_columns_are_treated_as_categorical(
    fast: dict[str, Any],
    strong_problem: UpliftProblem,
) -> None:
    p = strong_problem
    X = p.X.assign(segment=p.X["segment"].astype(str))
    m = MultiTreatmentUplift(learners=("s",), **fast).fit(X, p.treatment, p.y)
    assert m.feature_spec_.categories["segment"] == ["a", "b", "c", "d"]
    unseen = X.iloc[:5].assign(segment="zz")
    assert np.isfinite(m.predict_effects(unseen)).all()


def test_logged_propensities_are_used_for_the_received_arm(
    fast: dict[str, Any],
    strong_problem: UpliftProblem,
) -> None:
    p = strong_problem
    m = MultiTreatmentUplift(**fast).fit(p.X, p.treatment, p.y, propensity=p.propensity)
    assert (m.overlap_report_["source"] == "logged").all()
    none_rows = p.treatment == "none"
    assert m.overlap_report_.loc["none", "min"] == pytest.approx(p.propensity[none_rows].min())
    effect = m.predict_effects(p.X)
    corr = np.corrcoef(effect[:, 2, 0], p.true_effect[:, 2, 0])[0, 1]
    assert corr > 0.75


def test_r_loss_selection_and_learner_subsets_work(
    fast: dict[str, Any], strong_problem: UpliftProblem
) -> None:
    p = strong_problem
    m = MultiTreatmentUplift(learners=("dr", "s"), selection="r", **fast)
    m.fit(p.X, p.treatment, p.y[:, 0])
    assert list(m.selection_report_.index) == ["s", "dr", "blend", "blend_cv", "constant", "shrunk"]
    with pytest.raises(ValueError, match="not available"):
        m.predict_learner_effects(p.X, "t")


def test_shrinkage_collapses_to_mean_effect_without_heterogeneity(
    fast: dict[str, Any],
) -> None:
    p = make_uplift_problem(n=3000, n_treatments=3, effect_sd=0.0, noise_sd=3.0, seed=3)
    m = MultiTreatmentUplift(**fast).fit(p.X, p.treatment, p.y)
    assert m.chosen_["y0"]["shrinkage"] == 0.0
    effect = m.predict_effects(p.X)
    assert np.allclose(effect.std(axis=0), 0.0)
    np.testing.assert_allclose(effect[0, :, 0], m.mean_effect_[:, 0])


def test_shrinkage_false_keeps_full_personalisation(
    fast: dict[str, Any], strong_problem: UpliftProblem
) -> None:
    p = strong_problem
    m = MultiTreatmentUplift(learners=("s",), shrinkage=False, **fast)
    m.fit(p.X, p.treatment, p.y[:, 0])
    assert m.chosen_["y"]["shrinkage"] == 1.0
    np.testing.assert_allclose(m.predict_effects(p.X), m.predict_learner_effects(p.X, "s"))


def test_blend_beats_worst_single_learner_on_pehe(
    strong_problem: UpliftProblem, strong_model: MultiTreatmentUplift
) -> None:
    p = strong_problem
    blend = pehe(strong_model.predict_effects(p.X), p.true_effect).mean()
    singles = [
        pehe(strong_model.predict_learner_effects(p.X, c), p.true_effect).mean()
        for c in ("s", "t", "x", "dr")
    ]
    assert blend < max(singles)
    assert blend < 1.15 * min(singles)


def test_sklearn_contract_clone_params_repr_and_not_fitted(
    strong_problem: UpliftProblem,
) -> None:
    m = MultiTreatmentUplift(n_folds=4, lgbm_params={"num_leaves": 7})
    assert vars(m) == m.get_params()
    twin = clone(m)
    assert twin.get_params() == m.get_params() and twin is not m
    twin.set_params(selection="r", n_estimators=10)
    assert twin.selection == "r" and m.selection == "dr"
    assert "n_folds=4" in repr(m)
    with pytest.raises(NotFittedError):
        m.predict_effects(strong_problem.X)
    with pytest.raises(NotFittedError):
        m.predict_effects_with_std(strong_problem.X)


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"learners": ("s", "zz")}, "unknown learners"),
        ({"learners": ()}, "non-empty"),
        ({"selection": "mse"}, "selection"),
        ({"n_folds": 2}, "n_folds"),
        ({"propensity_clip": 0.0}, "propensity_clip"),
        ({"n_estimators": 0}, "n_estimators"),
        ({"lgbm_params": {"objective": "binary"}}, "lgbm_params"),
    ],
)
def test_invalid_parameters_are_rejected_at_fit(
    strong_problem: UpliftProblem, params: dict[str, object], message: str
) -> None:
    p = strong_problem
    with pytest.raises(ValueError, match=message):
        MultiTreatmentUplift(**params).fit(p.X, p.treatment, p.y)  # type: ignore[arg-type]


def test_bad_inputs_are_rejected_with_clear_errors(
    fast: dict[str, Any], strong_problem: UpliftProblem
) -> None:
    p = strong_problem
    m = MultiTreatmentUplift(**fast)
    with pytest.raises(ValueError, match="treatment has 2999 rows, X has 3000"):
        m.fit(p.X, p.treatment[:-1], p.y)
    with pytest.raises(ValueError, match="y has 2999 rows"):
        m.fit(p.X, p.treatment, p.y[:-1])
    with pytest.raises(ValueError, match="no control rows"):
        m.fit(p.X, np.where(p.treatment == "none", "type_01", p.treatment), p.y)
    few = p.treatment.copy()
    few[np.flatnonzero(few == "type_02")[5:]] = "type_01"
    with pytest.raises(ValueError, match="'type_02' has 5 rows"):
        m.fit(p.X, few, p.y)
    y_nan = p.y.copy()
    y_nan[7, 1] = np.nan
    with pytest.raises(ValueError, match=r"NaN .* \['y1'\]"):
        m.fit(p.X, p.treatment, y_nan)
    for bad in (np.zeros(3000), np.full(3000, 1.5), p.propensity[:-1]):
        with pytest.raises(ValueError, match="propensity"):
            m.fit(p.X, p.treatment, p.y, propensity=bad)
    with pytest.raises(ValueError, match="must be numeric"):
        m.fit(p.X.to_numpy(), p.treatment, p.y)


def test_prediction_rejects_mismatched_features(
    strong_problem: UpliftProblem, strong_model: MultiTreatmentUplift
) -> None:
    X = strong_problem.X
    with pytest.raises(ValueError, match="missing feature columns"):
        strong_model.predict_effects(X.drop(columns="x1"))
    with pytest.raises(ValueError, match="unseen at fit"):
        strong_model.predict_effects(X.assign(extra=1.0))
    with pytest.raises(ValueError, match="categorical"):
        strong_model.predict_effects(X.drop(columns="segment").to_numpy())


@pytest.mark.slow
def test_blend_matches_best_single_learner_on_a_noisy_larger_problem() -> None:
    kw: dict[str, Any] = {"n_treatments": 4, "effect_sd": 1.0, "noise_sd": 3.0}
    train = make_uplift_problem(n=20_000, seed=5, **kw)
    test = make_uplift_problem(n=5_000, seed=6, **kw)
    m = MultiTreatmentUplift(n_jobs=2).fit(train.X, train.treatment, train.y)
    blend = pehe(m.predict_effects(test.X), test.true_effect).mean()
    singles = {
        c: pehe(m.predict_learner_effects(test.X, c), test.true_effect).mean()
        for c in ("s", "t", "x", "dr")
    }
    constant = pehe(np.broadcast_to(m.mean_effect_[None], test.true_effect.shape), test.true_effect)
    assert m.chosen_["y0"]["shrinkage"] > 0
    assert blend < constant.mean()
    assert blend <= 1.05 * min(singles.values())


def test_same_data_and_seed_give_identical_models(fast: dict[str, Any]) -> None:
    problem = make_uplift_problem(n=1500, seed=3)
    first = MultiTreatmentUplift(**fast).fit(problem.X, problem.treatment, problem.y)
    second = MultiTreatmentUplift(**fast).fit(problem.X, problem.treatment, problem.y)
    np.testing.assert_array_equal(
        first.predict_effects(problem.X[:100]), second.predict_effects(problem.X[:100])
    )
