"""Closed loop: served decisions reach the world, exports load, values and MLflow runs."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from recommender.closed_loop import (
    Exploration,
    RoundDecisions,
    ServingHarness,
    format_table,
    true_values,
)
from recommender.closed_loop.run import (
    _write_training_folder,
    offered_nudges,
    period_reactions,
    read_deliveries,
    run_loop,
    to_assignment,
)
from recommender.closed_loop.serve import read_decisions
from recommender.constants import CONTROL
from recommender.data import load_dataset
from recommender.evaluation import Objective
from recommender.events import export_deliveries
from recommender.simulation import ARMS, World
from tests.loop.conftest import TEST_CONFIG


@dataclass
class Served:
    """One period served through the API and run in the world."""

    start: np.datetime64
    frame: pd.DataFrame
    ranked: pd.DataFrame
    probs: np.ndarray
    reactions: pd.DataFrame
    n_events: int
    exported: pd.DataFrame
    history_deliveries: pd.DataFrame


def _serve_one_period(world: World, tmp_path: Path) -> Served:
    """Serve the world's current period through the API on the uniform fallback (no model)."""
    history = world.tables()
    nudges_file = tmp_path / "nudges.parquet"
    history["nudges"].to_parquet(nudges_file, index=False)
    start = world.period_start
    decided_at = dt.datetime.fromisoformat(str(start)).replace(hour=9, tzinfo=dt.UTC)
    frame = world.decision_frame()
    db = tmp_path / "events.db"
    harness = ServingHarness(
        db, "", nudges_file, world.catalogue.org_ids, Exploration(holdout_share=0.2), seed=1
    )
    with harness as api:
        ranked = api.rank_all(frame, decided_at, offered_nudges(world))
        decisions = read_decisions(db, decided_at)
        assignment, probs = to_assignment(frame, decisions)
        world.run_period(assignment)
        reactions = period_reactions(world.tables()["deliveries"], ranked, start)
        n_events = api.report_events(reactions)
    exported = read_deliveries(export_deliveries(db, tmp_path / "export"))
    return Served(
        start=start,
        frame=frame,
        ranked=ranked,
        probs=probs,
        reactions=reactions,
        n_events=n_events,
        exported=exported,
        history_deliveries=history["deliveries"],
    )


def test_served_decisions_reach_the_world_with_the_logged_propensities(
    world: World, tmp_path: Path
) -> None:
    served = _serve_one_period(world, tmp_path)
    exported: pd.DataFrame = served.exported
    frame: pd.DataFrame = served.frame
    assert len(exported) == len(frame)  # one decision per manager, none empty
    nudge_type = world.tables()["nudges"].set_index("nudge_id")["nudge_type"].astype(str)
    logged = exported.set_index("manager_id")
    logged_type = logged["nudge_id"].map(nudge_type).fillna(CONTROL)

    start = pd.Timestamp(served.start)
    sim = world.tables()["deliveries"]
    sim = sim.loc[
        (sim["delivered_at"] >= start) & (sim["delivered_at"] < start + pd.Timedelta(days=31))
    ]
    first = sim.sort_values("delivered_at").groupby("manager_id").first()
    sim_type = first["nudge_id"].map(nudge_type).fillna(CONTROL)
    assert set(first.index) == set(logged.index)
    np.testing.assert_allclose(
        first["propensity"].to_numpy(), logged.loc[first.index, "propensity"].to_numpy()
    )
    assert (sim_type == logged_type.loc[sim_type.index]).all()
    assert (logged["policy"] == "uniform+holdout(0.2)@fallback").all()
    assert {"none", *logged_type} > {"none"}  # both arms occur
    # the logged arm probabilities of each decision sum to 1 and hold the logged propensity
    probs: np.ndarray = served.probs
    np.testing.assert_allclose(probs.sum(axis=1), 1.0)
    arm = pd.Index(ARMS).get_indexer(logged_type.loc[frame["manager_id"]].to_numpy())
    np.testing.assert_allclose(
        probs[np.arange(len(arm)), arm], logged.loc[frame["manager_id"], "propensity"].to_numpy()
    )


def test_manager_reactions_are_reported_as_events_and_exported(
    world: World, tmp_path: Path
) -> None:
    served = _serve_one_period(world, tmp_path)
    exported: pd.DataFrame = served.exported
    reactions: pd.DataFrame = served.reactions
    nudged = exported.loc[exported["nudge_id"].notna()].set_index("delivery_id")
    by_event = reactions.set_index("event_id")
    assert served.n_events > 0
    assert (nudged["opened"].astype(bool) == by_event.loc[nudged.index, "opened"]).all()
    assert (nudged["acted"].astype(bool) == by_event.loc[nudged.index, "acted"]).all()
    control = exported.loc[exported["nudge_id"].isna()]
    assert control["opened"].isna().all() and control["rating"].isna().all()


def test_loop_deliveries_merged_with_history_pass_load_dataset_without_truth(
    world: World, tmp_path: Path
) -> None:
    served = _serve_one_period(world, tmp_path)
    deliveries = pd.concat(
        [served.history_deliveries, served.exported],
        ignore_index=True,
    )
    folder = _write_training_folder(world, deliveries, tmp_path / "data" / "round_01")
    dataset = load_dataset(folder)
    assert len(dataset.deliveries) == len(deliveries)
    assert not (folder / "truth").exists()
    assert not list(folder.rglob("*truth*"))
    assert not any(p.name.endswith(".staging") for p in folder.parent.iterdir())


def test_to_assignment_rejects_a_manager_without_decision(world: World) -> None:
    frame = world.decision_frame()
    decisions = pd.DataFrame(
        {
            "manager_id": frame["manager_id"].iloc[1:],
            "kind": "control",
            "policy": "p",
            "model_version": "1",
            "chosen_nudge_type": None,
            "propensity": 0.1,
            "holdout_share": 0.1,
            "type_probs": [{}] * (len(frame) - 1),
        }
    )
    with pytest.raises(ValueError, match="no decision"):
        to_assignment(frame, decisions)


def _objective() -> Objective:
    return Objective(
        outcome_names=("delta_360", "delta_360_targeted", "delta_engagement"),
        weights=np.array([1.0, 0.5, 1.0]),
        scales=np.array([0.2, 0.3, 4.0]),
    )


def test_true_values_rank_oracle_above_served_and_match_a_hand_computation(
    world: World,
) -> None:
    truth = world.ground_truth()
    start = world.calendar.waves_360[1]
    frame = truth.loc[truth["period_start"] == pd.Timestamp(start)]
    ids = frame["manager_id"].drop_duplicates().to_numpy()
    keys = pd.DataFrame({"manager_id": ids, "period_start": pd.Timestamp(start)})
    keys["period_start"] = keys["period_start"].astype("datetime64[ns]")
    n = len(ids)
    control_only = np.zeros((n, len(ARMS)))
    control_only[:, 0] = 1.0
    decided = RoundDecisions(keys, np.zeros(n, dtype=np.int64), control_only, control_only)
    values = true_values(decided, truth, _objective())
    none = frame.loc[frame["nudge_type"] == CONTROL].set_index("manager_id").loc[ids]
    expected = _objective().score(
        none[["delta_360", "delta_360_targeted", "delta_engagement"]].to_numpy()
    )
    assert values["true_value_served"] == pytest.approx(expected.mean())
    assert values["true_value_none"] == pytest.approx(expected.mean())
    assert values["true_value_oracle"] >= values["true_value_uniform"] >= -np.inf
    assert values["true_value_oracle"] > values["true_value_served"]
    assert values["served_minus_logging"] == pytest.approx(0.0)
    assert values["gap_closed_served"] == pytest.approx(0.0)
    assert values["n_manager_periods"] == n


def test_true_values_refuse_a_served_arm_without_truth(world: World) -> None:
    truth = world.ground_truth()
    keys = pd.DataFrame({"manager_id": ["nobody"], "period_start": [pd.Timestamp("2023-03-01")]})
    keys["period_start"] = keys["period_start"].astype("datetime64[ns]")
    probs = np.zeros((1, len(ARMS)))
    probs[0, 0] = 1.0
    with pytest.raises(ValueError, match="ground-truth"):
        true_values(
            RoundDecisions(keys, np.zeros(1, dtype=np.int64), probs, probs), truth, _objective()
        )


def test_round_decisions_check_shapes() -> None:
    keys = pd.DataFrame({"manager_id": ["m"], "period_start": [pd.Timestamp("2023-03-01")]})
    with pytest.raises(ValueError, match="served_probs"):
        RoundDecisions(keys, np.zeros(1, dtype=np.int64), np.ones((1, 2)), np.ones((1, len(ARMS))))


def test_run_loop_rejects_bad_arguments_and_a_used_work_dir(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="rounds"):
        run_loop(0, 250, 0, tmp_path / "a")
    with pytest.raises(ValueError, match="history_periods"):
        run_loop(1, 250, 0, tmp_path / "a", history_periods=1)
    (tmp_path / "b").mkdir()
    (tmp_path / "b" / "events.db").touch()
    with pytest.raises(FileExistsError, match="already holds a loop"):
        run_loop(1, 250, 0, tmp_path / "b")


def test_run_loop_logs_nested_rounds_with_values_plot_and_keeps_truth_out_of_training(
    tmp_path: Path, mlflow_uri: str
) -> None:
    from mlflow import MlflowClient

    seen: list[int] = []
    result = run_loop(
        2,
        250,
        3,
        tmp_path / "loop",
        config_path=TEST_CONFIG,
        n_orgs=2,
        on_round=lambda row: seen.append(int(row["round"])),
    )
    table = result.table
    assert seen == [0, 1, 2]
    assert "served_exp" in format_table(table)
    assert table["round"].tolist() == [0, 1, 2]
    assert (table["true_value_oracle"] >= table["true_value_served_expected"]).all()
    assert (table["gain_oracle"] >= table["gain_served_expected"]).all()
    assert table.loc[0, "gap_closed_served"] == pytest.approx(0.0)  # round 0 is the logging policy
    assert table.loc[1:, "served_version"].ne("").all()  # rounds 1-2 served by a champion
    assert result.csv_path.is_file() and result.plot_path.is_file()

    client = MlflowClient(mlflow_uri)
    parent = client.get_run(result.parent_run_id)
    children = client.search_runs(
        [parent.info.experiment_id],
        filter_string=f"tags.mlflow.parentRunId = '{result.parent_run_id}'",
    )
    assert sorted(r.info.run_name for r in children) == ["round-0", "round-1", "round-2"]
    for run in children:
        metrics = run.data.metrics
        for key in ("true_value_served", "true_value_logging", "true_value_oracle", "promoted"):
            assert key in metrics
        assert "champion_version" in metrics
        trained = client.search_runs(
            [parent.info.experiment_id],
            filter_string=f"tags.mlflow.parentRunId = '{run.info.run_id}'",
        )
        assert [t.info.run_id for t in trained] == [run.data.tags["train_run_id"]]
    artifacts = {a.path for a in client.list_artifacts(result.parent_run_id)}
    assert {"loop_values.csv", "loop_values.png", "loop_values_absolute.png"} <= artifacts

    data = tmp_path / "loop" / "data"
    folders = sorted(p.name for p in data.iterdir())
    assert folders == ["round_00", "round_01", "round_02"]
    assert not list(data.rglob("*truth*"))
    assert (tmp_path / "loop" / "truth" / "ground_truth.parquet").is_file()
    final = load_dataset(data / "round_02")
    loop_rows = final.deliveries["policy"].str.contains("@")
    assert loop_rows.any() and (final.deliveries.loc[loop_rows, "propensity"] > 0).all()
