"""Tests of recommender.exploration: suppression of small groups, tables and plots."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from recommender import exploration as ex
from recommender.constants import CONTROL, MIN_GROUP_SIZE, OUTCOMES, TRAITS
from recommender.data import Dataset

# --------------------------------------------------------------------------- suppression


def test_group_summary_never_shows_numbers_for_a_group_of_4_managers(
    groups_4_and_big: pd.DataFrame,
) -> None:
    table = ex.group_summary(groups_4_and_big, ["segment"], ["value", "score"])
    small = table.loc[table["segment"] == "small"].iloc[0]
    assert small["suppressed"]
    assert small["n_units_display"] == f"<{MIN_GROUP_SIZE}"
    numbers = small.drop(["segment", "n_units_display", "suppressed"])
    assert numbers.isna().all()


def test_group_summary_hides_a_second_group_so_the_small_one_cannot_be_differenced(
    groups_4_and_big: pd.DataFrame,
) -> None:
    table = ex.group_summary(groups_4_and_big, ["segment"], ["value"])
    assert table["suppressed"].sum() == 2
    assert table.loc[table["segment"] == "b", "n_rows"].isna().all()
    big = table.loc[table["segment"] == "a"].iloc[0]
    assert big["n_units"] == 30 and big["n_rows"] == 60
    assert big["value_ci_low"] < big["value_mean"] < big["value_ci_high"]


def test_group_summary_without_by_summarises_everything_as_one_group(
    groups_4_and_big: pd.DataFrame,
) -> None:
    table = ex.group_summary(groups_4_and_big, (), ["value"])
    assert len(table) == 1
    assert table.loc[0, "n_units"] == 46 and table.loc[0, "n_rows"] == len(groups_4_and_big)


def test_group_summary_of_an_empty_frame_is_an_empty_table() -> None:
    frame = pd.DataFrame({"segment": [], "manager_id": [], "value": []})
    table = ex.group_summary(frame, ["segment"], ["value"])
    assert table.empty and "value_mean" in table.columns


def test_group_summary_rejects_a_missing_column(groups_4_and_big: pd.DataFrame) -> None:
    with pytest.raises(ValueError, match="missing columns"):
        ex.group_summary(groups_4_and_big, ["segment"], ["nope"])


def test_format_summary_shows_dashes_for_suppressed_cells(groups_4_and_big: pd.DataFrame) -> None:
    view = ex.format_summary(ex.group_summary(groups_4_and_big, ["segment"], ["value"]), ["value"])
    small = view.loc[view["segment"] == "small"].iloc[0]
    assert small["managers"] == f"<{MIN_GROUP_SIZE}"
    assert small["rows"] == ex.SUPPRESSED and small["value"] == ex.SUPPRESSED
    assert view.loc[view["segment"] == "a", "value"].iloc[0].count("[") == 1


def test_format_summary_clips_percent_intervals_to_0_100() -> None:
    frame = pd.DataFrame({"g": ["x"] * 20, "manager_id": [f"m{i}" for i in range(20)]})
    frame["hit"] = [1.0] * 19 + [0.0]
    view = ex.format_summary(ex.group_summary(frame, ["g"], ["hit"]), ["hit"], percent=["hit"])
    assert view.loc[0, "hit"].endswith("100.0]")


def test_category_counts_shares_are_within_group_and_small_categories_blanked(
    groups_4_and_big: pd.DataFrame,
) -> None:
    frame = groups_4_and_big.assign(org="o1")
    table = ex.category_counts(frame, "segment", by=["org"])
    a = table.loc[table["segment"] == "a"].iloc[0]
    assert a["share"] == pytest.approx(60 / len(frame))
    assert table.loc[table["segment"] == "small", ["n_rows", "share"]].isna().all(axis=None)


def test_value_distribution_bins_and_suppresses_bins_of_few_managers() -> None:
    managers = pd.DataFrame(
        {"manager_id": [f"m{i}" for i in range(24)], "score": [5.0] * 20 + [55.0] * 4}
    )
    table = ex.value_distribution(managers, "score", bins=(0, 50, 100))
    assert list(table["bin"].astype(str)) == ["[0, 50)", "[50, 100]"]
    assert table["suppressed"].all()  # 4 managers in the top bin, so its complement too
    managers.loc[20:, "score"] = 100.0
    more = pd.concat([managers, pd.DataFrame({"manager_id": ["x1", "x2"], "score": [99.0, 70.0]})])
    table = ex.value_distribution(more, "score", bins=(0, 50, 100))
    assert not table["suppressed"].any()
    assert table["n_units"].tolist() == [20, 6] and table["share"].sum() == pytest.approx(1.0)


def test_value_distribution_rejects_values_outside_the_bins() -> None:
    frame = pd.DataFrame({"manager_id": ["m1"], "x": [120.0]})
    with pytest.raises(ValueError, match="outside the bins"):
        ex.value_distribution(frame, "x", bins=(0, 100))
    with pytest.raises(ValueError, match="strictly increasing"):
        ex.value_distribution(frame, "x", bins=(10, 0))


def test_numeric_profile_blanks_groups_of_fewer_than_5_managers(
    groups_4_and_big: pd.DataFrame,
) -> None:
    table = ex.numeric_profile(groups_4_and_big, ["score"], by=["segment"])
    small = table.loc[table["segment"] == "small"].iloc[0]
    assert small[["n_units", "mean", "median", "p90"]].isna().all()
    a = table.loc[table["segment"] == "a"].iloc[0]
    assert a["p10"] <= a["median"] <= a["p90"] and "min" not in table and "max" not in table


def test_control_first_keeps_groups_together() -> None:
    table = pd.DataFrame(
        {"org_id": ["o1", "o1", "o2", "o2"], "treatment": ["b", CONTROL, "a", CONTROL]}
    )
    out = ex.control_first(table, within=["org_id"])
    assert out["treatment"].tolist() == [CONTROL, "b", CONTROL, "a"]


# --------------------------------------------------------------------------- data folder


def test_resolve_data_dir_prefers_argument_then_env_then_repo_sample(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, sample_dir: Path
) -> None:
    monkeypatch.delenv(ex.DATA_DIR_ENV, raising=False)
    assert ex.resolve_data_dir(tmp_path) == tmp_path.resolve()
    monkeypatch.setenv(ex.DATA_DIR_ENV, str(tmp_path))
    assert ex.resolve_data_dir() == tmp_path.resolve()
    monkeypatch.delenv(ex.DATA_DIR_ENV)
    assert ex.resolve_data_dir(start=sample_dir.parent.parent / "notebooks") == sample_dir


def test_resolve_data_dir_rejects_a_missing_folder(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="does not exist"):
        ex.resolve_data_dir(tmp_path / "nope")


# --------------------------------------------------------------------------- on an export


def _shown_numbers_respect_min_group(table: pd.DataFrame) -> bool:
    """Every unsuppressed row covers at least MIN_GROUP_SIZE managers."""
    shown = table.loc[~table["suppressed"].astype(bool)]
    return bool((shown["n_units"] >= MIN_GROUP_SIZE).all())


def test_quality_tables_cover_every_table_and_expected_missingness(
    small_dataset: Dataset,
) -> None:
    overview = ex.table_overview(small_dataset)
    assert overview["table"].tolist() == list(small_dataset.tables())
    assert (overview["rows"] > 0).all()
    missing = ex.missing_values(small_dataset)
    assert (missing["reason"] != "unexpected").all()
    assert set(ex.date_ranges(small_dataset)["table"]) == {
        "feedback_360",
        "engagement",
        "deliveries",
    }


def test_coverage_and_response_tables_are_shares_over_enough_managers(
    small_dataset: Dataset,
) -> None:
    coverage = ex.wave_coverage(small_dataset)
    assert set(coverage["survey"]) == {"feedback_360", "engagement"}
    assert coverage["covered_mean"].dropna().between(0, 1).all()
    raters = ex.rater_response(small_dataset)
    assert set(raters["rater_role"]) <= {"self", "manager", "peer", "direct_report"}
    assert raters.loc[raters["rater_role"] == "self", "few_raters_mean"].isna().all()
    engagement = ex.engagement_response(small_dataset, by=["org_id"])
    for table in (coverage, raters, engagement):
        assert _shown_numbers_respect_min_group(table)


def test_decision_table_has_one_treatment_and_propensity_per_decision(
    small_dataset: Dataset,
) -> None:
    decisions = ex.decision_table(small_dataset)
    assert not decisions.duplicated(["manager_id", "period_start"]).any()
    assert decisions["propensity"].between(0, 1, inclusive="right").all()
    control = decisions["treatment"] == CONTROL
    assert (decisions.loc[control, "n_sent"] == 0).all()
    assert (decisions.loc[~control, "n_sent"] >= 1).all()
    assert set(OUTCOMES) <= set(decisions.columns)
    deliveries = ex.delivery_table(small_dataset)
    assert CONTROL not in set(deliveries["treatment"])
    assert deliveries["opened"].isin([0.0, 1.0]).all()
    assert "text" not in deliveries.columns and "nudge_id" not in deliveries.columns


def test_propensity_overlap_reports_each_arm_and_blanks_small_ones(
    small_dataset: Dataset,
) -> None:
    decisions = ex.decision_table(small_dataset)
    overlap = ex.propensity_overlap(decisions, threshold=0.05)
    assert overlap.loc[0, "treatment"] == CONTROL
    assert set(overlap["treatment"]) == set(decisions["treatment"])
    assert _shown_numbers_respect_min_group(overlap)
    shown = overlap.loc[~overlap["suppressed"]]
    assert (shown["p_min"] <= shown["p_median"]).all()
    assert (shown["ess"] <= shown["n_decisions"] + 1e-9).all()
    hidden = overlap.loc[overlap["suppressed"]]
    assert hidden.drop(columns=["treatment", "suppressed"]).isna().all(axis=None)


def test_propensity_overlap_matches_the_kish_formula() -> None:
    decisions = pd.DataFrame(
        {
            "manager_id": [f"m{i}" for i in range(12)],
            "treatment": [CONTROL] * 6 + ["t"] * 6,
            "propensity": [0.5] * 6 + [0.04, 0.04, 0.2, 0.2, 0.2, 0.2],
        }
    )
    row = ex.propensity_overlap(decisions).set_index("treatment").loc["t"]
    w = 1 / np.array([0.04, 0.04, 0.2, 0.2, 0.2, 0.2])
    assert row["ess"] == pytest.approx(w.sum() ** 2 / (w**2).sum())
    assert row["ess_fraction"] == pytest.approx(row["ess"] / 12)
    assert row["share_below"] == pytest.approx(2 / 6)
    assert row["p_min"] == pytest.approx(0.04) and row["max_weight"] == pytest.approx(25)


def test_plots_draw_only_unsuppressed_groups(small_dataset: Dataset) -> None:
    decisions = ex.decision_table(small_dataset)
    table = ex.value_distribution(
        decisions, "propensity", bins=ex.PROPENSITY_BINS, by=["treatment"]
    )
    fig = ex.plot_distribution(table, facet="treatment", reference=0.05)
    drawn = sum(len(ax.patches) for ax in fig.axes)
    assert drawn == int((~table["suppressed"]).sum())
    counts = ex.category_counts(decisions, "treatment")
    fig = ex.plot_counts(counts, "treatment")
    assert len(fig.axes[0].patches) == int((~counts["suppressed"]).sum())
    naive = ex.group_summary(decisions, ["treatment"], OUTCOMES)
    fig = ex.plot_group_means(naive, "treatment", OUTCOMES, reference_label=CONTROL)
    assert len(fig.axes) == len(OUTCOMES)


def test_trait_frame_has_one_row_per_manager_and_trait(small_dataset: Dataset) -> None:
    traits = ex.trait_frame(small_dataset.managers)
    assert len(traits) == len(small_dataset.managers) * len(TRAITS)
    assert set(traits["band"].cat.categories) == {"low", "mid", "high"}
