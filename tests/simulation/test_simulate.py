"""The simulated organisation honours data/README.md and plants the effects the issue asks for."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from recommender.constants import CONTEXTS, CONTROL, GLOBAL_ORG, RATER_ROLES, TABLES, TRAITS
from recommender.simulation import SimulatedOrganisation, SimulationConfig, simulate_organisation

STR = "str"
DATE = "datetime64[ns]"
CONTRACT: dict[str, dict[str, str]] = {
    "competencies": {"org_id": STR, "competency_id": STR, "name": STR, "weight": "float64"},
    "managers": {
        "org_id": STR,
        "manager_id": STR,
        "function": STR,
        "level": STR,
        "tenure_months": "int64",
        "team_size": "int64",
        "region": STR,
        **dict.fromkeys(TRAITS, "float64"),
        "hire_date": DATE,
        "leave_date": DATE,
    },
    "feedback_360": {
        "manager_id": STR,
        "wave_date": DATE,
        "competency_id": STR,
        "rater_role": STR,
        "score": "float64",
        "n_raters": "int64",
    },
    "engagement": {
        "manager_id": STR,
        "wave_date": DATE,
        "engagement": "float64",
        "n_respondents": "int64",
    },
    "nudges": {
        "nudge_id": STR,
        "org_id": STR,
        "nudge_type": STR,
        "competency_id": STR,
        "contexts": STR,
        "text": STR,
    },
    "deliveries": {
        "delivery_id": STR,
        "manager_id": STR,
        "nudge_id": STR,
        "delivered_at": DATE,
        "policy": STR,
        "propensity": "float64",
        "opened": "boolean",
        "acted": "boolean",
        "rating": "Int64",
    },
}
TRUTH_COLUMNS = [
    "manager_id",
    "period_start",
    "period_end",
    "nudge_type",
    "delta_360",
    "delta_360_targeted",
    "delta_engagement",
]


def _decisions(org: SimulatedOrganisation) -> pd.DataFrame:
    """One row per logged decision: manager, period start, arm, propensity, rows sent."""
    d = org.tables["deliveries"].merge(
        org.tables["nudges"][["nudge_id", "nudge_type"]], on="nudge_id", how="left"
    )
    d["nudge_type"] = d["nudge_type"].fillna(CONTROL)
    waves = np.sort(org.ground_truth["period_start"].unique())
    d["period_start"] = waves[np.searchsorted(waves, d["delivered_at"], side="right") - 1]
    return (
        d.groupby(["manager_id", "period_start"], sort=True)
        .agg(
            nudge_type=("nudge_type", "first"),
            n_types=("nudge_type", "nunique"),
            propensity=("propensity", "first"),
            n_propensities=("propensity", "nunique"),
            rows=("delivery_id", "size"),
        )
        .reset_index()
    )


def test_tables_have_exactly_the_contract_columns_and_dtypes(
    small_org: SimulatedOrganisation,
) -> None:
    assert list(small_org.tables) == list(TABLES)
    for name, columns in CONTRACT.items():
        frame = small_org.tables[name]
        assert list(frame.columns) == list(columns), name
        assert {c: str(frame[c].dtype) for c in frame.columns} == columns, name
        assert len(frame) > 0, name
    assert list(small_org.ground_truth.columns) == TRUTH_COLUMNS


def test_keys_are_unique(small_org: SimulatedOrganisation) -> None:
    keys = {
        "competencies": ["competency_id"],
        "managers": ["manager_id"],
        "feedback_360": ["manager_id", "wave_date", "competency_id", "rater_role"],
        "engagement": ["manager_id", "wave_date"],
        "nudges": ["nudge_id"],
        "deliveries": ["delivery_id"],
    }
    for name, key in keys.items():
        assert not small_org.tables[name].duplicated(key).any(), name
    truth_key = ["manager_id", "period_start", "nudge_type"]
    assert not small_org.ground_truth.duplicated(truth_key).any()


def test_ids_are_pseudonymous_and_orgs_have_their_own_models(
    small_org: SimulatedOrganisation,
) -> None:
    t = small_org.tables
    assert t["managers"]["manager_id"].str.fullmatch(r"m[0-9a-f]{12}").all()
    assert t["managers"]["org_id"].str.fullmatch(r"org-\d{2}").all()
    comps = t["competencies"]
    assert comps["competency_id"].str.fullmatch(r"o\d+-c\d+").all()
    assert comps.groupby("org_id").size().between(5, 8).all()
    assert np.allclose(comps.groupby("org_id")["weight"].sum(), 1.0, atol=0.01)
    assert comps["weight"].between(0.0, 1.0, inclusive="right").all()
    nudges = t["nudges"]
    own = nudges[nudges["org_id"] != GLOBAL_ORG]
    assert own.groupby("org_id")["nudge_type"].nunique().between(6, 10).all()
    assert (own.groupby(["org_id", "nudge_type"])["competency_id"].nunique() == 1).all()
    assert (own.groupby(["org_id", "nudge_type"]).size() >= 3).all()
    assert nudges.loc[nudges["org_id"] == GLOBAL_ORG, "competency_id"].isna().all()
    tags = nudges["contexts"].str.split(";").explode()
    assert tags.isin(CONTEXTS).all()


def test_profiles_and_scores_stay_in_range(small_org: SimulatedOrganisation) -> None:
    t = small_org.tables
    m = t["managers"]
    assert m["level"].isin(["first_line", "middle", "senior"]).all()
    assert m["tenure_months"].between(0, 600).all() and m["team_size"].between(1, 500).all()
    assert m[list(TRAITS)].stack().between(0, 100).all()
    f = t["feedback_360"]
    assert f["score"].between(1, 5).all() and (f["n_raters"] >= 1).all()
    assert f["rater_role"].isin(RATER_ROLES).all()
    e = t["engagement"]
    assert e["engagement"].between(0, 100).all() and (e["n_respondents"] >= 1).all()
    assert t["deliveries"]["rating"].dropna().between(1, 5).all()


def test_360_raters_vary_and_self_ratings_are_inflated(small_org: SimulatedOrganisation) -> None:
    f = small_org.tables["feedback_360"]
    roles_per_rating = f.groupby(["manager_id", "wave_date"])["rater_role"].nunique()
    assert (roles_per_rating < len(RATER_ROLES)).any()  # a role sometimes missing
    assert f.loc[f["rater_role"] == "peer", "n_raters"].nunique() > 3
    by_role = f.groupby("rater_role")["score"].mean()
    assert by_role["self"] > by_role[["manager", "peer", "direct_report"]].max()


def test_engagement_is_quarterly_and_noisier_for_small_teams(
    small_org: SimulatedOrganisation,
) -> None:
    e = small_org.tables["engagement"]
    assert sorted(e["wave_date"].dt.month.unique()) == [3, 6, 9, 12]
    change = e.sort_values("wave_date").groupby("manager_id")["engagement"].diff()
    small = e["n_respondents"] <= 3
    assert change[small].std() > 1.5 * change[e["n_respondents"] >= 8].std()


def test_every_date_lies_within_employment(small_org: SimulatedOrganisation) -> None:
    t = small_org.tables
    m = t["managers"].set_index("manager_id")
    leave = m["leave_date"].fillna(pd.Timestamp.max.normalize())
    assert (m["leave_date"].dropna() >= m["hire_date"][m["leave_date"].notna()]).all()
    for name, column in (
        ("feedback_360", "wave_date"),
        ("engagement", "wave_date"),
        ("deliveries", "delivered_at"),
    ):
        frame = t[name]
        ids = frame["manager_id"]
        day = frame[column].dt.normalize()
        assert (day >= m.loc[ids, "hire_date"].to_numpy()).all(), name
        assert (day <= leave.loc[ids].to_numpy()).all(), name


def test_references_stay_within_the_managers_org(small_org: SimulatedOrganisation) -> None:
    t = small_org.tables
    org_of = t["managers"].set_index("manager_id")["org_id"]
    comp_org = t["competencies"].set_index("competency_id")["org_id"]
    f = t["feedback_360"]
    assert (
        comp_org.loc[f["competency_id"]].to_numpy() == org_of.loc[f["manager_id"]].to_numpy()
    ).all()
    d = t["deliveries"].dropna(subset=["nudge_id"])
    nudge_org = t["nudges"].set_index("nudge_id")["org_id"].loc[d["nudge_id"]].to_numpy()
    manager_org = org_of.loc[d["manager_id"]].to_numpy()
    assert ((nudge_org == manager_org) | (nudge_org == GLOBAL_ORG)).all()


def test_control_rows_are_empty_and_acting_needs_opening(small_org: SimulatedOrganisation) -> None:
    d = small_org.tables["deliveries"]
    control = d["nudge_id"].isna()
    assert control.any() and (~control).any()
    assert d.loc[control, ["opened", "acted", "rating"]].isna().all().all()
    sent = d[~control]
    assert sent["opened"].notna().all() and sent["acted"].notna().all()
    assert not (sent["acted"] & ~sent["opened"]).any()
    assert sent["acted"].any() and sent["rating"].notna().any() and sent["rating"].isna().any()


def test_one_decision_per_manager_period_with_a_handful_of_nudges_of_one_type(
    small_org: SimulatedOrganisation,
) -> None:
    decisions = _decisions(small_org)
    assert (decisions["n_types"] == 1).all() and (decisions["n_propensities"] == 1).all()
    control = decisions["nudge_type"] == CONTROL
    assert (decisions.loc[control, "rows"] == 1).all()
    sent = decisions.loc[~control, "rows"]
    assert sent.min() >= 1 and sent.max() <= 12 and sent.nunique() >= 4 and sent.median() >= 2
    truth_keys = small_org.ground_truth[["manager_id", "period_start"]].drop_duplicates()
    assert len(truth_keys) == len(decisions)


def test_propensities_respect_the_floor_and_none_is_always_possible(
    small_org: SimulatedOrganisation,
) -> None:
    decisions = _decisions(small_org)
    assert decisions["propensity"].between(0.02, 1.0).all()
    counts = decisions["nudge_type"].value_counts(normalize=True)
    assert counts[CONTROL] > 0.1
    assert len(counts) == decisions["nudge_type"].nunique() >= 8


def test_logged_propensities_are_honest_inverse_weights(small_org: SimulatedOrganisation) -> None:
    # E[sum over decisions with arm a of 1/p] = number of decisions able to choose a
    decisions = _decisions(small_org)
    org_of = small_org.tables["managers"].set_index("manager_id")["org_id"]
    nudges = small_org.tables["nudges"]
    decisions["org_id"] = org_of.loc[decisions["manager_id"]].to_numpy()
    for arm, group in decisions.groupby("nudge_type"):
        if arm == CONTROL:
            able = len(decisions)
        else:
            orgs = nudges.loc[
                (nudges["nudge_type"] == arm) & (nudges["org_id"] != GLOBAL_ORG), "org_id"
            ]
            able = int(decisions["org_id"].isin(orgs).sum())
        p = group["propensity"].to_numpy()
        estimate = (1.0 / p).sum()
        sd = np.sqrt(((1.0 - p) / p**2).sum() * able / max(len(p), 1))
        assert abs(estimate - able) < 4.5 * sd + 1e-9, arm


def test_type_best_on_average_is_not_best_for_a_fifth_of_managers(
    small_org: SimulatedOrganisation,
) -> None:
    truth = small_org.ground_truth
    wide = truth.pivot_table(
        index=["manager_id", "period_start"], columns="nudge_type", values="delta_360"
    )
    effect = wide.sub(wide[CONTROL], axis=0).drop(columns=CONTROL)
    best_on_average = effect.mean().idxmax()
    best = wide.idxmax(axis=1)
    assert (best != best_on_average).mean() >= 0.2
    hurts_some = (effect < -0.005).mean() > 0.05
    helps_some = (effect > 0.005).mean() > 0.05
    assert (hurts_some & helps_some).sum() >= 2  # some types help some profiles, hurt others


def test_truth_for_none_targets_the_overall_score(small_org: SimulatedOrganisation) -> None:
    none = small_org.ground_truth[small_org.ground_truth["nudge_type"] == CONTROL]
    assert np.array_equal(none["delta_360"], none["delta_360_targeted"])
    truth = small_org.ground_truth
    assert truth[["delta_360", "delta_360_targeted", "delta_engagement"]].notna().all().all()


def test_attrition_and_joiners_both_happen(small_org: SimulatedOrganisation) -> None:
    m = small_org.tables["managers"]
    start = pd.Timestamp(small_org.config.start_date)
    assert m["leave_date"].notna().sum() >= 10
    joiners = m["hire_date"] > start
    assert joiners.sum() >= 10
    rated = small_org.tables["feedback_360"]["manager_id"].unique()
    assert m.loc[joiners, "manager_id"].isin(rated).any()


def test_same_seed_gives_equal_tables_and_another_seed_differs(
    small_org: SimulatedOrganisation, small_config: SimulationConfig
) -> None:
    again = simulate_organisation(small_config)
    for name in TABLES:
        pd.testing.assert_frame_equal(again.tables[name], small_org.tables[name])
    pd.testing.assert_frame_equal(again.ground_truth, small_org.ground_truth)
    other = simulate_organisation(
        SimulationConfig(
            n_managers=small_config.n_managers,
            n_orgs=small_config.n_orgs,
            years=small_config.years,
            seed=small_config.seed + 1,
        )
    )
    assert not other.tables["managers"]["manager_id"].equals(
        small_org.tables["managers"]["manager_id"]
    )
    assert not other.tables["feedback_360"]["score"].equals(
        small_org.tables["feedback_360"]["score"]
    )


@pytest.mark.parametrize("n_orgs", [1, 4])
def test_every_org_gets_managers_and_decisions(n_orgs: int) -> None:
    org = simulate_organisation(SimulationConfig(n_managers=60, n_orgs=n_orgs, years=1.0, seed=5))
    orgs = org.tables["competencies"]["org_id"].unique()
    assert len(orgs) == n_orgs
    assert set(org.tables["managers"]["org_id"]) == set(orgs)
    assert org.tables["deliveries"]["manager_id"].nunique() >= 5 * n_orgs
