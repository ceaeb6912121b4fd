"""The manager-period table built from a tiny hand-made dataset."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from recommender.features import FeatureSpec, build_manager_periods


def _row(table: pd.DataFrame, manager: str, start: str) -> pd.Series:
    match = table[(table["manager_id"] == manager) & (table["period_start"] == pd.Timestamp(start))]
    assert len(match) == 1
    return match.iloc[0]


def test_one_row_per_manager_wave_with_next_wave_as_period_end(tiny):
    table = build_manager_periods(tiny).table
    assert len(table) == 6
    row = _row(table, "m1", "2023-01-01")
    assert row["period_end"] == pd.Timestamp("2023-07-01")
    assert pd.isna(_row(table, "m1", "2024-01-01")["period_end"])


def test_outcomes_are_next_wave_minus_this_wave(tiny):
    table = build_manager_periods(tiny).table
    first = _row(table, "m1", "2023-01-01")
    # non-self means: c1 3.0 -> 3.5, c2 3.5 -> 3.6; overall = mean over competencies
    assert first["delta_360"] == pytest.approx(0.3)
    assert first["delta_engagement"] == pytest.approx(4.0)
    # recognition targets c1 in o1
    assert first["delta_360_targeted"] == pytest.approx(0.5)
    # control period and an untargeted global type: targeted change equals the overall change
    assert _row(table, "m1", "2023-07-01")["delta_360_targeted"] == pytest.approx(0.3)
    assert _row(table, "m2", "2023-01-01")["delta_360_targeted"] == pytest.approx(0.0)


def test_360_features_use_non_self_raters_and_competency_weights(tiny):
    row = _row(build_manager_periods(tiny).table, "m1", "2023-07-01")
    assert row["score_overall"] == pytest.approx((3.5 + 3.6) / 2)
    assert row["score_weighted"] == pytest.approx(0.6 * 3.5 + 0.4 * 3.6)
    assert row["model_gap"] == pytest.approx((0.6 * 1.5 + 0.4 * 1.4) / 4)
    assert row["self_other_gap"] == pytest.approx(4.0 - 3.55)
    assert row["gap_recognition"] == pytest.approx(3.5 - 3.55)
    assert row["score_change_prev"] == pytest.approx(0.3)
    assert row["engagement_trend"] == pytest.approx(4.0)


def test_treatment_and_propensity_come_from_the_periods_decision(tiny):
    table = build_manager_periods(tiny).table
    assert _row(table, "m1", "2023-01-01")[["treatment", "propensity"]].tolist() == [
        "recognition",
        0.4,
    ]
    control = _row(table, "m1", "2023-07-01")
    assert control["treatment"] == "none"
    assert control["propensity"] == pytest.approx(0.3)
    undecided = _row(table, "m2", "2023-07-01")
    assert undecided["treatment"] == "none"
    assert np.isnan(undecided["propensity"])
    assert undecided["n_decisions"] == 0


def test_nudge_history_uses_only_deliveries_before_the_period(tiny):
    table = build_manager_periods(tiny).table
    first = _row(table, "m1", "2023-01-01")
    assert first["hist_n_recognition"] == 0
    assert first["hist_n_nudges"] == 0
    assert np.isnan(first["hist_acted_rate"])
    second = _row(table, "m1", "2023-07-01")
    assert second["hist_n_recognition"] == 1
    assert second["hist_n_control"] == 0  # the control decision of 2023-07-05 is not yet past
    assert second["hist_acted_rate"] == 1.0
    third = _row(table, "m1", "2024-01-01")
    assert third["hist_n_control"] == 1
    assert _row(table, "m2", "2023-07-01")["hist_acted_rate"] == 0.0


def test_history_of_a_period_is_unchanged_by_later_deliveries(tiny):
    before = build_manager_periods(tiny).table
    late = tiny["deliveries"].iloc[[0]].copy()
    late["delivery_id"] = pd.array(["d9"], dtype="string")
    late["delivered_at"] = pd.to_datetime(["2023-12-20"]).astype("datetime64[ns]")
    tiny["deliveries"] = pd.concat([tiny["deliveries"], late], ignore_index=True)
    after = build_manager_periods(tiny).table
    cols = [c for c in before.columns if c.startswith("hist_")]
    first_two = before["period_start"] < pd.Timestamp("2024-01-01")
    pd.testing.assert_frame_equal(before.loc[first_two, cols], after.loc[first_two, cols])
    assert _row(after, "m1", "2024-01-01")["hist_n_recognition"] == 2


def test_modelling_rows_are_finished_periods_and_snapshot_is_latest(tiny):
    periods = build_manager_periods(tiny)
    assert len(periods.modelling_rows()) == 4
    snapshot = periods.snapshot()
    assert sorted(snapshot["manager_id"]) == ["m1", "m2"]
    assert (snapshot["period_start"] == pd.Timestamp("2024-01-01")).all()


def test_leavers_are_not_in_the_serving_snapshot(tiny):
    tiny["managers"].loc[1, "leave_date"] = pd.Timestamp("2024-01-01")
    assert "m2" in set(build_manager_periods(tiny).snapshot()["manager_id"])
    tiny["managers"].loc[1, "leave_date"] = pd.Timestamp("2023-12-31")
    tiny["feedback_360"] = tiny["feedback_360"][
        ~(
            (tiny["feedback_360"]["manager_id"] == "m2")
            & (tiny["feedback_360"]["wave_date"] > pd.Timestamp("2023-12-31"))
        )
    ]
    assert "m2" not in set(build_manager_periods(tiny).snapshot()["manager_id"])


def test_spec_encodes_frames_and_round_trips(tiny):
    periods = build_manager_periods(tiny)
    spec = periods.spec
    assert spec.nudge_types == ("planning", "recognition")
    X = spec.encode_frame(periods.table)
    assert X.shape == (6, len(spec.names))
    level = spec.names.index("level")
    assert X[0, level] == spec.categories["level"].index("middle")
    assert FeatureSpec.from_dict(spec.to_dict()) == spec


def test_encode_mapping_names_the_bad_field(tiny):
    spec = build_manager_periods(tiny).spec
    profile = {
        "org_id": "o1",
        "function": "sales",
        "level": "senior",
        "region": "emea",
        "tenure_months": 10,
        "team_size": 5,
        "openness": 40.0,
        "conscientiousness": 40.0,
        "extraversion": 40.0,
        "agreeableness": 40.0,
        "neuroticism": 40.0,
    }
    row = spec.encode_mapping(profile)
    assert row.shape == (len(spec.names),)
    assert row[spec.names.index("hist_n_nudges")] == 0.0
    assert np.isnan(row[spec.names.index("score_overall")])
    with pytest.raises(ValueError, match=r"^team_size: required"):
        spec.encode_mapping({k: v for k, v in profile.items() if k != "team_size"})
    with pytest.raises(ValueError, match=r"^level: 'boss' is not one of"):
        spec.encode_mapping({**profile, "level": "boss"})
    with pytest.raises(ValueError, match=r"^openness: must be within 0-100"):
        spec.encode_mapping({**profile, "openness": 120})
    with pytest.raises(ValueError, match=r"^shoe_size: unknown feature"):
        spec.encode_mapping({**profile, "shoe_size": 42})
