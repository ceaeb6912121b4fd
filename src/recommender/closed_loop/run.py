"""``run_loop``: the system run against the simulator as if in production, round after round.

Round 0: the simulator's historical logging policy decides the first ``history_periods``
periods; the tables are written (without ground truth) and a ranker is trained and passed
through the promotion gate. Round r >= 1: the champion serves the next period through the
ranking API (``serve.ServingHarness``: real app, exploration, holdout, event store); each
decision becomes the manager's period-level assignment in the world, with the logged
type-level propensity; the world produces outcomes and the managers' reactions, which are
reported as events; the store is exported as ``deliveries``, merged with the history, and the
ranker is retrained on everything so far and gated again.

MLflow: one parent run (``closed-loop``) with a nested run per round holding the true values
(``values.true_values``), the serving champion's version and the gate's decision; the parent
holds the table (``loop_values.csv``) and the plots (``loop_values.png``: true gain over no
nudge per round; ``loop_values_absolute.png``: true values). Each round's training
run is nested under its round run. Only this module's evaluation reads ground truth; it is kept
in ``<work_dir>/truth``, never in the folders training reads.
"""

from __future__ import annotations

import datetime as dt
import logging
import math
import os
import shutil
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import numpy as np
import pandas as pd
import yaml

from recommender.closed_loop.serve import Exploration, ServingHarness, read_decisions
from recommender.closed_loop.values import RoundDecisions, true_values
from recommender.config import TrainConfig, load_config
from recommender.constants import CONTROL, GLOBAL_ORG, TABLES
from recommender.evaluation import Objective
from recommender.simulation import (
    ARMS,
    Assignment,
    SimulatedOrganisation,
    SimulationConfig,
    World,
    write_simulation,
)
from recommender.simulation.policy import POLICY_NAME, logging_probabilities

logger = logging.getLogger(__name__)

DECISION_HOUR: Final = 9
"""Decisions of a period are made on its opening 360 wave at 09:00 UTC."""
LOOP_MODEL: Final = "nudge-ranker-loop"
LOOP_EXPERIMENT: Final = "nudge-recommender-loop"
PLOTTED: Final = {
    "served_expected": "served (champion, with exploration)",
    "greedy": "champion's top type (no exploration)",
    "logging": "historical logging policy",
    "oracle": "oracle",
}
"""Policies drawn in the plots: metric suffix -> legend label."""


@dataclass(frozen=True)
class LoopResult:
    """What ``run_loop`` did.

    table: one row per round (0 = logging-policy history) with the true values, their
        intervals, the serving and trained versions and the gate decision.
    parent_run_id: MLflow run holding the nested round runs, the CSV and the plots.
    plot_path: true gain over no nudge per round (``loop_values_absolute.png`` beside it).
    registered_model: registry name of this loop's rankers.
    """

    table: pd.DataFrame
    parent_run_id: str
    registered_model: str
    work_dir: Path
    csv_path: Path
    plot_path: Path


def loop_train_config() -> TrainConfig:
    """Built-in training config of the loop (same as ``training/configs/loop.yaml``)."""
    base = TrainConfig()
    return base.model_copy(
        update={
            "evaluation": base.evaluation.model_copy(
                update={"n_bootstrap": 200, "q_model_estimators": 100}
            ),
            "promotion": base.promotion.model_copy(update={"registered_model": LOOP_MODEL}),
            "tracking": base.tracking.model_copy(update={"experiment": LOOP_EXPERIMENT}),
        }
    )


def years_for(periods: int) -> int:
    """Whole years from 1 January holding at least ``periods`` 360 periods (2 waves a year)."""
    return math.ceil((periods + 1) / 2)


def run_loop(
    rounds: int,
    managers: int,
    seed: int,
    work_dir: Path,
    *,
    config_path: Path | None = None,
    history_periods: int = 3,
    n_orgs: int = 3,
    exploration: Exploration | None = None,
    show_progress: bool = False,
    on_round: Callable[[dict[str, Any]], None] | None = None,
) -> LoopResult:
    """Run ``rounds`` closed-loop rounds on a simulated organisation of ``managers`` managers.

    work_dir: empty or new folder for the training folders (``data/round_NN``), the event store
        (``events.db``), ground truth (``truth/``, evaluation only) and the results.
    config_path: training config (default: ``loop_train_config()``); its registered model name
        gets this loop's parent-run id appended, so a loop never moves another model's alias.
    history_periods: periods decided by the historical logging policy before round 1 (>= 2).
    exploration: serving policy, epsilon, temperature and holdout share (API defaults).
    show_progress: show the training pipeline's progress bars.
    on_round: called with each round's row of the results table as soon as it is known.
    Raises ValueError on bad arguments, FileExistsError when ``work_dir`` holds a previous loop.
    """
    import mlflow

    from recommender import tracking

    if isinstance(rounds, bool) or not isinstance(rounds, int) or rounds < 1:
        raise ValueError(f"rounds: must be an integer >= 1, got {rounds!r}")
    if isinstance(history_periods, bool) or not isinstance(history_periods, int):
        raise ValueError(f"history_periods: must be an integer, got {history_periods!r}")
    if history_periods < 2:
        raise ValueError(f"history_periods: must be >= 2, got {history_periods}")
    sim = SimulationConfig(
        n_managers=managers, n_orgs=n_orgs, years=years_for(history_periods + rounds), seed=seed
    )
    exploration = exploration or Exploration()
    work = Path(work_dir).absolute()
    if (work / "events.db").exists() or (work / "data").exists():
        raise FileExistsError(f"work_dir: {work} already holds a loop; use a new folder")
    work.mkdir(parents=True, exist_ok=True)
    config = loop_train_config() if config_path is None else load_config(config_path)

    experiment_id = tracking.configure(config.tracking.experiment)
    with mlflow.start_run(experiment_id=experiment_id, run_name="closed-loop") as parent:
        parent_id = parent.info.run_id
        name = f"{config.promotion.registered_model}-{parent_id[:8]}"
        mlflow.log_params(
            {
                "rounds": rounds,
                "managers": managers,
                "n_orgs": n_orgs,
                "seed": seed,
                "history_periods": history_periods,
                "registered_model": name,
                **{f"serving.{k}": v for k, v in exploration.__dict__.items()},
            }
        )
        mlflow.set_tag("closed_loop", "true")
    config = config.model_copy(
        update={"promotion": config.promotion.model_copy(update={"registered_model": name})}
    )
    config_file = work / "train_config.yaml"
    config_file.write_text(yaml.safe_dump(config.model_dump(mode="json")), encoding="utf-8")
    try:
        table = _run(
            rounds,
            history_periods,
            sim,
            work,
            config_file,
            name,
            exploration,
            parent_id,
            show_progress,
            on_round,
        )
        csv_path, plot_path, absolute_path = _write_results(table, work)
        with mlflow.start_run(run_id=parent_id):
            for path in (csv_path, plot_path, absolute_path):
                mlflow.log_artifact(str(path))
            last = table.iloc[-1]
            mlflow.log_metrics(
                {
                    f"final_{k}": float(last[k])
                    for k in (
                        "true_value_served",
                        "true_value_served_expected",
                        "gain_served_expected",
                        "gap_closed_served",
                    )
                    if np.isfinite(float(last[k]))
                }
            )
    except BaseException:
        mlflow.MlflowClient().set_terminated(parent_id, "FAILED")
        raise
    return LoopResult(
        table=table,
        parent_run_id=parent_id,
        registered_model=name,
        work_dir=work,
        csv_path=csv_path,
        plot_path=plot_path,
    )


def _run(
    rounds: int,
    history_periods: int,
    sim: SimulationConfig,
    work: Path,
    config_file: Path,
    name: str,
    exploration: Exploration,
    parent_id: str,
    show_progress: bool,
    on_round: Callable[[dict[str, Any]], None] | None,
) -> pd.DataFrame:
    from recommender.bundle import load_effect_model
    from recommender.events import export_deliveries
    from recommender.pipeline import run_train
    from recommender.registry import CHAMPION, alias_version

    world = World(sim)
    if world.calendar.n_periods < history_periods + rounds:  # pragma: no cover - years_for
        raise ValueError("rounds: the simulated window is too short")
    history = []
    for _ in range(history_periods):
        frame, log_probs = _frame(world)
        assignment = world.logging_assignment()
        arm = pd.Index(ARMS).get_indexer(assignment.nudge_type)
        history.append(RoundDecisions(_keys(frame, world), arm, log_probs, log_probs))
        world.run_period(assignment)
    history_deliveries = world.tables()["deliveries"]
    orgs = [str(o) for o in world.catalogue.org_ids]
    offered = offered_nudges(world)

    folder = _write_training_folder(world, history_deliveries, work / "data" / "round_00")
    logger.info("round 0: training on the logging policy's %d periods", history_periods)
    result = run_train(folder, config_file, promote=True, show_progress=show_progress)
    model = load_effect_model(result.model_uri)
    objective = Objective(
        outcome_names=tuple(model.outcome_names), weights=model.weights, scales=model.scales
    )
    values = true_values(RoundDecisions.concat(history), world.ground_truth(), objective)
    rows = [
        _log_round(
            parent_id,
            0,
            history[0].keys["period_start"].iloc[0],
            POLICY_NAME,
            None,
            result,
            alias_version(name, CHAMPION),
            values,
            {"n_decisions": float(len(RoundDecisions.concat(history).keys))},
        )
    ]
    if on_round is not None:
        on_round(rows[-1])
    db = work / "events.db"
    export_dir = work / "export"
    for r in range(1, rounds + 1):
        start = world.period_start
        decided_at = dt.datetime.fromisoformat(str(start)).replace(
            hour=DECISION_HOUR, tzinfo=dt.UTC
        )
        frame, log_probs = _frame(world)
        harness = ServingHarness(
            db,
            f"models:/{name}@{CHAMPION}",
            folder / "nudges.parquet",
            orgs,
            exploration,
            seed=sim.seed * 1000 + r,
        )
        with harness as api:
            served_version = api.served_version
            ranked = api.rank_all(frame, decided_at, offered)
            decisions = read_decisions(db, decided_at)
            assignment, served_probs = to_assignment(frame, decisions)
            world.run_period(assignment)
            reactions = period_reactions(world.tables()["deliveries"], ranked, start)
            n_events = api.report_events(reactions)
        exported = read_deliveries(export_deliveries(db, export_dir))
        deliveries = pd.concat([history_deliveries, exported], ignore_index=True)
        folder = _write_training_folder(world, deliveries, work / "data" / f"round_{r:02d}")
        logger.info("round %d: served by %s, retraining", r, served_version or "fallback")
        result = run_train(folder, config_file, promote=True, show_progress=show_progress)
        arm = pd.Index(ARMS).get_indexer(assignment.nudge_type)
        decided = RoundDecisions(_keys(frame, world, start), arm, served_probs, log_probs)
        values = true_values(decided, world.ground_truth(), objective)
        counts = {
            "n_decisions": float(len(ranked)),
            "n_nudge": float((ranked["kind"] == "nudge").sum()),
            "n_control": float((ranked["kind"] == "control").sum()),
            "n_empty": float((ranked["kind"] == "empty").sum()),
            "n_explicit_features": float(ranked["explicit_features"].sum()),
            "n_events": float(n_events),
        }
        rows.append(
            _log_round(
                parent_id,
                r,
                pd.Timestamp(start),
                assignment.policy,
                served_version,
                result,
                alias_version(name, CHAMPION),
                values,
                counts,
            )
        )
        if on_round is not None:
            on_round(rows[-1])
    truth_dir = work / "truth"
    truth_dir.mkdir(exist_ok=True)
    world.ground_truth().to_parquet(truth_dir / "ground_truth.parquet", index=False)
    return pd.DataFrame(rows)


def offered_nudges(world: World) -> dict[str, list[str]]:
    """org -> catalogue nudge ids (own and global) of the types the org uses in the world: what
    the delivery layer offers the ranking API as candidates."""
    nudges = world.tables()["nudges"]
    types = np.asarray(ARMS[1:], dtype=object)
    out = {}
    for i, org in enumerate(world.catalogue.org_ids):
        used = set(types[world.catalogue.type_available[i]])
        rows = nudges["org_id"].astype(str).isin([str(org), GLOBAL_ORG]) & nudges[
            "nudge_type"
        ].astype(str).isin(used)
        out[str(org)] = nudges.loc[rows, "nudge_id"].astype(str).tolist()
    return out


def _frame(world: World) -> tuple[pd.DataFrame, np.ndarray]:
    """Decision frame of the current period and the logging policy's arm probabilities."""
    frame = world.decision_frame()
    return frame, logging_probabilities(frame, world.available_types())


def _keys(frame: pd.DataFrame, world: World, start: np.datetime64 | None = None) -> pd.DataFrame:
    day = world.period_start if start is None else start
    return pd.DataFrame(
        {
            "manager_id": frame["manager_id"].astype(str).to_numpy(),
            "period_start": pd.Series([pd.Timestamp(day)] * len(frame), dtype="datetime64[ns]"),
        }
    )


def to_assignment(frame: pd.DataFrame, decisions: pd.DataFrame) -> tuple[Assignment, np.ndarray]:
    """The world's assignment for ``frame``'s managers from the service's logged decisions.

    A nudge decision assigns its nudge type with the logged propensity; a control decision
    assigns ``none`` with the holdout share; an empty decision (rules left nothing) assigns
    ``none`` with probability 1 (nothing could be sent; it is not exported for training).
    Returns the assignment and the deciding policy's arm probabilities, shape (n, len(ARMS)).
    Raises ValueError when a manager has no decision, or more than one.
    """
    by_manager = decisions.set_index("manager_id")
    if not by_manager.index.is_unique:
        raise ValueError("decisions: a manager has more than one decision in the period")
    ids = frame["manager_id"].astype(str)
    missing = sorted(set(ids) - set(by_manager.index))
    if missing:
        raise ValueError(f"decisions: {len(missing)} managers of the period have no decision")
    rows = by_manager.loc[ids]
    kind = rows["kind"].to_numpy(dtype=object)
    nudge_type = np.where(
        kind == "nudge", rows["chosen_nudge_type"].to_numpy(dtype=object), CONTROL
    )
    propensity = np.where(kind == "empty", 1.0, rows["propensity"].to_numpy(dtype=np.float64))
    column = {arm: j for j, arm in enumerate(ARMS)}
    probs = np.zeros((len(rows), len(ARMS)))
    for i, (type_probs, share, k) in enumerate(
        zip(rows["type_probs"], rows["holdout_share"], kind, strict=True)
    ):
        probs[i, 0] = 1.0 if k == "empty" else float(share)
        for nudge, p in type_probs.items():
            probs[i, column[nudge]] += p
    policies = sorted(set(rows["policy"] + "@" + rows["model_version"]))
    assignment = Assignment(
        manager_id=ids.to_numpy(dtype=object),
        nudge_type=nudge_type,
        propensity=propensity,
        policy="|".join(policies),
    )
    return assignment, probs


def period_reactions(
    world_deliveries: pd.DataFrame, ranked: pd.DataFrame, start: np.datetime64
) -> pd.DataFrame:
    """What each nudged manager did in the period starting ``start``, from the world's
    deliveries: opened / acted on any of the period's nudges, first rating given.

    Returns columns event_id, org_id, opened, acted, rating (Int64) for nudge decisions.
    """
    begin = pd.Timestamp(start)
    rows = world_deliveries.loc[
        (world_deliveries["delivered_at"] >= begin)
        & world_deliveries["nudge_id"].notna()
        & (world_deliveries["delivered_at"] < begin + pd.DateOffset(months=6))
    ].sort_values("delivered_at", kind="stable")
    grouped = rows.groupby(rows["manager_id"].astype(str), sort=False)
    per_manager = pd.DataFrame(
        {
            "opened": grouped["opened"].any(),
            "acted": grouped["acted"].any(),
            "rating": grouped["rating"].first(),
        }
    )
    nudged = ranked.loc[ranked["kind"] == "nudge", ["manager_id", "org_id", "event_id"]]
    out = nudged.merge(per_manager, left_on="manager_id", right_index=True, how="left")
    out["opened"] = out["opened"].fillna(False).astype(bool)
    out["acted"] = out["acted"].fillna(False).astype(bool)
    out["rating"] = out["rating"].astype("Int64")
    return out[["event_id", "org_id", "opened", "acted", "rating"]].reset_index(drop=True)


def read_deliveries(path: Path) -> pd.DataFrame:
    """An exported ``deliveries.parquet`` with the loader's dtypes (naive UTC timestamps)."""
    frame = pd.read_parquet(path)
    at = pd.to_datetime(frame["delivered_at"], utc=True)
    return pd.DataFrame(
        {
            "delivery_id": frame["delivery_id"].astype("str"),
            "manager_id": frame["manager_id"].astype("str"),
            "nudge_id": frame["nudge_id"].astype("str"),
            "delivered_at": at.dt.tz_localize(None).astype("datetime64[ns]"),
            "policy": frame["policy"].astype("str"),
            "propensity": frame["propensity"].astype(np.float64),
            "opened": frame["opened"].astype("boolean"),
            "acted": frame["acted"].astype("boolean"),
            "rating": frame["rating"].astype("Int64"),
        }
    )


def _write_training_folder(world: World, deliveries: pd.DataFrame, out: Path) -> Path:
    """The six tables observed so far (``deliveries`` replaced) in ``out``; no ground truth."""
    tables = {**world.tables(), "deliveries": deliveries.reset_index(drop=True)}
    result = SimulatedOrganisation(
        tables={t: tables[t] for t in TABLES}, ground_truth=pd.DataFrame(), config=world.config
    )
    staging = out.parent / f".{out.name}.{uuid.uuid4().hex}.staging"
    write_simulation(result, staging)
    shutil.rmtree(staging / "truth")  # the writer's (empty) truth file: training never sees it
    os.replace(staging, out)
    return out


def _log_round(
    parent_id: str,
    r: int,
    period_start: pd.Timestamp,
    policy: str,
    served_version: str | None,
    result: Any,
    champion_after: str | None,
    values: dict[str, float],
    counts: dict[str, float],
) -> dict[str, Any]:
    """Nested MLflow run of round ``r``; returns the round's row of the results table."""
    import mlflow

    row: dict[str, Any] = {
        "round": r,
        "period_start": period_start.date().isoformat(),
        "served_by": policy,
        "served_version": served_version or "",
        "trained_version": result.version,
        "promoted": bool(result.promoted),
        "champion_after": champion_after or "",
        **values,
        **counts,
    }
    with (
        mlflow.start_run(run_id=parent_id),
        mlflow.start_run(run_name=f"round-{r}", nested=True) as child,
    ):
        mlflow.log_params({"round": r, "period_start": row["period_start"], "served_by": policy})
        mlflow.log_metrics(
            {
                **{k: v for k, v in values.items() if np.isfinite(v)},
                **counts,
                "champion_version": float(served_version) if served_version else 0.0,
                "trained_version": float(result.version),
                "promoted": float(bool(result.promoted)),
            }
        )
        mlflow.set_tags(
            {
                "train_run_id": result.run_id,
                "gate_reason": str(result.gate_reason)[:4000],
                "champion_after": champion_after or "",
            }
        )
        child_id = child.info.run_id
    mlflow.MlflowClient().set_tag(result.run_id, "mlflow.parentRunId", child_id)
    logger.info(
        "round %d: served %.4f logging %.4f oracle %.4f (v%s trained, promoted=%s)",
        r,
        values["true_value_served"],
        values["true_value_logging"],
        values["true_value_oracle"],
        result.version,
        result.promoted,
    )
    return row


def _write_results(table: pd.DataFrame, work: Path) -> tuple[Path, Path, Path]:
    """``loop_values.csv`` (the table), ``loop_values.png`` (true gain over no nudge per round)
    and ``loop_values_absolute.png`` (true values per round)."""
    import matplotlib.pyplot as plt

    from recommender.plots import plot_values_over_rounds

    csv_path = work / "loop_values.csv"
    table.to_csv(csv_path, index=False)
    paths = []
    for prefix, name, title in (
        ("gain", "loop_values.png", "Closed loop: true gain over no nudge per manager-period"),
        ("true_value", "loop_values_absolute.png", "Closed loop: true value per manager-period"),
    ):
        long = pd.concat(
            [
                pd.DataFrame(
                    {
                        "round": table["round"],
                        "policy": label,
                        "value": table[f"{prefix}_{key}"],
                        "ci_low": table[f"{prefix}_{key}_ci_low"],
                        "ci_high": table[f"{prefix}_{key}_ci_high"],
                    }
                )
                for key, label in PLOTTED.items()
            ],
            ignore_index=True,
        )
        figure = plot_values_over_rounds(long, title=title)
        paths.append(work / name)
        figure.savefig(paths[-1], dpi=120, bbox_inches="tight")
        plt.close(figure)
    return csv_path, paths[0], paths[1]


def format_table(table: pd.DataFrame) -> str:
    """The per-round numbers as fixed-width text (what ``recommender loop`` prints)."""
    columns = {
        "round": "round",
        "period_start": "period",
        "served_version": "served_v",
        "true_value_served": "served",
        "true_value_served_expected": "served_exp",
        "true_value_logging": "logging",
        "true_value_none": "none",
        "true_value_oracle": "oracle",
        "gain_served_expected": "gain_exp",
        "gain_greedy": "gain_greedy",
        "gain_oracle": "gain_oracle",
        "gap_closed_served": "gap_closed",
        "served_minus_logging": "served-log",
        "served_minus_logging_ci_low": "ci_low",
        "served_minus_logging_ci_high": "ci_high",
        "trained_version": "trained_v",
        "promoted": "promoted",
    }
    view = table[list(columns)].rename(columns=columns)
    return str(view.to_string(index=False, float_format=lambda v: f"{v:.4f}"))
