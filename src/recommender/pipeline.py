"""Training pipeline: load -> manager-period table -> time split -> fit -> evaluate -> log ->
register -> promotion gate. ``run_train`` and ``run_promote`` are the CLI/MLproject bodies.

Training never reads simulation ground truth; only the evaluation step reads
``<data>/truth/ground_truth.parquet`` when present.
"""

from __future__ import annotations

import contextlib
import json
import re
import tempfile
import time
import warnings
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from recommender.config import ConfigError, TrainConfig, load_config
from recommender.constants import CONTROL, MIN_GROUP_SIZE, OUTCOMES, TRAITS
from recommender.evaluation import (
    EvalContext,
    Evaluation,
    Objective,
    RewardModel,
    available_types,
    choose_best_single_type,
    evaluate,
    make_context,
    read_truth,
)
from recommender.features import FeatureSpec, ManagerPeriods, build_manager_periods
from recommender.splits import TimeSplit, time_split

if TYPE_CHECKING:
    from recommender.bundle import RankerBundle
    from recommender.registry import GateDecision

# --------------------------------------------------------------------------- progress


class _Steps:
    """Rich progress over the pipeline's named steps (silent when disabled)."""

    def __init__(self, total: int, enabled: bool) -> None:
        self.enabled = enabled
        self.total = total
        self.timings: dict[str, float] = {}
        self._progress: Any = None
        self._task: Any = None

    def __enter__(self) -> _Steps:
        if self.enabled:
            from rich.console import Console
            from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

            self._progress = Progress(
                TextColumn("[bold]{task.description:<28}"),
                BarColumn(),
                TextColumn("{task.completed}/{task.total}"),
                TimeElapsedColumn(),
                console=Console(stderr=True),
            )
            self._progress.__enter__()
            self._task = self._progress.add_task("starting", total=self.total)
        return self

    def __exit__(self, *exc: object) -> None:
        if self._progress is not None:
            self._progress.__exit__(*exc)

    @contextlib.contextmanager
    def step(self, name: str) -> Iterator[None]:
        """Time a step and advance the bar."""
        if self._progress is not None:
            self._progress.update(self._task, description=name)
        start = time.perf_counter()
        yield
        self.timings[name] = time.perf_counter() - start
        if self._progress is not None:
            self._progress.advance(self._task)


# --------------------------------------------------------------------------- preparation


@dataclass
class Prepared:
    """Data of one training run after features and split (no model yet)."""

    periods: ManagerPeriods
    split: TimeSplit
    objective: Objective
    action_names: tuple[str, ...]
    available: dict[str, frozenset[str]]
    train: EvalContext
    evaluation: EvalContext
    fit_rows: pd.DataFrame
    dropped_types: tuple[str, ...]
    n_undecided: int
    catalogue: pd.DataFrame

    @property
    def spec(self) -> FeatureSpec:
        """The feature spec."""
        return self.periods.spec


def make_estimator(config: TrainConfig) -> Any:
    """``MultiTreatmentUplift`` from ``model.params``; unknown keys fail naming the key."""
    from recommender.uplift import MultiTreatmentUplift

    known = set(MultiTreatmentUplift().get_params())
    unknown = sorted(set(config.model.params) - known)
    if unknown:
        raise ConfigError(
            f"model.params.{unknown[0]}: unknown key; expected one of {sorted(known)}"
        )
    params = {"random_state": config.seed, **config.model.params}
    estimator = MultiTreatmentUplift(**params)
    try:
        estimator._check_params()
    except ValueError as error:
        raise ConfigError(f"model.params: {error}") from None
    return estimator


def _min_rows_per_arm(estimator: Any) -> int:
    from recommender.uplift.config import MIN_ROWS_PER_ARM_PER_FOLD

    return int(estimator.n_folds) * MIN_ROWS_PER_ARM_PER_FOLD


def prepare(
    periods: ManagerPeriods,
    catalogue: pd.DataFrame,
    config: TrainConfig,
    min_rows_per_arm: int,
    objective: Objective | None = None,
) -> Prepared:
    """Split by time, standardise outcomes, build the OPE contexts of both windows.

    objective: reuse a model's objective (weights and scales) instead of fitting one on the
    training window (the promotion gate compares policies on the candidate's objective).
    """
    spec = periods.spec
    rows = periods.modelling_rows()
    decided = rows["propensity"].notna().to_numpy() & (rows["n_decisions"] > 0).to_numpy()
    n_undecided = int((~decided).sum())
    if config.model.use_logged_propensity:
        rows = rows.loc[decided].reset_index(drop=True)
    split = time_split(rows, config.split.eval_fraction, config.split.eval_start)
    if objective is None:
        objective = Objective.fit(split.train[list(OUTCOMES)], config.objective.weights)
    action_names = (CONTROL, *spec.nudge_types)
    orgs = spec.categories["org_id"]
    available = available_types(catalogue, orgs, spec.nudge_types)

    counts = split.train["treatment"].value_counts()
    dropped = tuple(t for t in spec.nudge_types if 0 < int(counts.get(t, 0)) < min_rows_per_arm)
    fit_rows = split.train.loc[~split.train["treatment"].isin(dropped)].reset_index(drop=True)

    def context(frame: pd.DataFrame) -> EvalContext:
        logged = frame.loc[frame["propensity"].notna()].reset_index(drop=True)
        return make_context(logged, spec.encode_frame(logged), action_names, objective, available)

    return Prepared(
        periods=periods,
        split=split,
        objective=objective,
        action_names=action_names,
        available=available,
        train=context(split.train),
        evaluation=context(split.evaluation),
        fit_rows=fit_rows,
        dropped_types=dropped,
        n_undecided=n_undecided,
        catalogue=catalogue,
    )


def fit_model(prepared: Prepared, estimator: Any, config: TrainConfig) -> Any:
    """Fit the uplift estimator on the training window."""
    rows = prepared.fit_rows
    X = pd.DataFrame(prepared.spec.encode_frame(rows), columns=list(prepared.spec.names))
    propensity = None
    if config.model.use_logged_propensity:
        propensity = rows["propensity"].to_numpy(dtype=np.float64)
    return estimator.fit(
        X, rows["treatment"].astype(str).to_numpy(), rows[list(OUTCOMES)], propensity=propensity
    )


def catalogue_entries(nudges: pd.DataFrame) -> list[dict[str, Any]]:
    """Catalogue rows without the text (what the bundle may carry)."""
    out = []
    for row in nudges.itertuples(index=False):
        comp = row.competency_id
        contexts = str(row.contexts) if isinstance(row.contexts, str) else ""
        out.append(
            {
                "nudge_id": str(row.nudge_id),
                "org_id": str(row.org_id),
                "nudge_type": str(row.nudge_type),
                "competency_id": None
                if comp is None or comp is pd.NA or comp != comp
                else str(comp),
                "contexts": [c for c in contexts.split(";") if c],
            }
        )
    return out


def segment_evidence(
    snapshot: pd.DataFrame, effect: np.ndarray, score: np.ndarray, types: tuple[str, ...]
) -> list[dict[str, Any]]:
    """Mean predicted effect of each type per org x segment (function, level, trait bands) of
    the current managers; groups under ``MIN_GROUP_SIZE`` managers are left out."""
    from recommender.bundle import trait_band

    frame = pd.DataFrame(
        {
            "org_id": snapshot["org_id"].astype(str).to_numpy(),
            "function": snapshot["function"].astype(str).to_numpy(),
            "level": snapshot["level"].astype(str).to_numpy(),
        }
    )
    for trait in TRAITS:
        frame[f"{trait}_band"] = [trait_band(float(v)) for v in snapshot[trait]]
    out: list[dict[str, Any]] = []
    for dimension in ("function", "level", *[f"{t}_band" for t in TRAITS]):
        for (org, value), index in frame.groupby(["org_id", dimension]).groups.items():
            idx = np.asarray(frame.index.get_indexer(index))
            if len(idx) < MIN_GROUP_SIZE:
                continue
            for t, nudge_type in enumerate(types):
                out.append(
                    {
                        "org_id": str(org),
                        "dimension": dimension,
                        "segment": str(value),
                        "nudge_type": nudge_type,
                        "n_managers": len(idx),
                        "effect": [float(v) for v in effect[idx, t, :].mean(axis=0)],
                        "score": float(score[idx, t].mean()),
                    }
                )
    return out


def build_bundle(folder: Path, prepared: Prepared, model: Any, meta: dict[str, Any]) -> Path:
    """Write the serving bundle of a fitted model."""
    from recommender.bundle import write_bundle

    spec = prepared.spec
    snapshot = prepared.periods.snapshot()
    X_snap = spec.encode_frame(snapshot)
    effect = model.predict_effects(X_snap) if len(snapshot) else np.zeros((0, 0, 0))
    coef = prepared.objective.coefficients()
    score = effect @ coef if len(snapshot) else np.zeros((0, 0))
    types = tuple(str(t) for t in model.treatments_)
    segments = segment_evidence(snapshot, effect, score, types) if len(snapshot) else []
    return write_bundle(
        folder,
        model=model,
        spec=spec,
        objective=prepared.objective.to_dict(),
        snapshot_org=snapshot["org_id"].astype(str).tolist(),
        snapshot_manager=snapshot["manager_id"].astype(str).tolist(),
        snapshot_X=X_snap,
        catalogue=catalogue_entries(prepared.catalogue),
        segments=segments,
        meta=meta,
    )


def evaluate_model(
    prepared: Prepared, model: Any, config: TrainConfig, truth: pd.DataFrame | None
) -> tuple[Evaluation, str, pd.DataFrame]:
    """q_hat from the training window, best single type chosen on it, then ``evaluate``."""
    ev = config.evaluation
    q_model = RewardModel.fit(prepared.train, ev.q_model_estimators, config.seed)
    prepared.evaluation.q_hat = q_model.predict(prepared.evaluation.X)
    best_single, single_table = choose_best_single_type(prepared.train, seed=config.seed)
    effect = model.predict_effects(prepared.evaluation.X)
    score = effect @ prepared.objective.coefficients()
    result = evaluate(
        prepared.evaluation,
        model_score=score,
        model_types=tuple(str(t) for t in model.treatments_),
        best_single=best_single,
        objective=prepared.objective,
        n_bootstrap=ev.n_bootstrap,
        confidence=ev.ci_level,
        clip=ev.propensity_clip,
        seed=config.seed,
        truth=truth,
        model_effect=effect,
    )
    return result, best_single, single_table


# --------------------------------------------------------------------------- train


@dataclass
class TrainResult:
    """What ``run_train`` did: MLflow run, registered version, metrics, gate decision."""

    run_id: str
    model_uri: str
    version: str
    metrics: dict[str, float]
    best_single_type: str
    promoted: bool | None
    gate_reason: str | None
    timings: dict[str, float] = field(default_factory=dict)


def _finite(metrics: dict[str, float]) -> dict[str, float]:
    return {k: float(v) for k, v in metrics.items() if v is not None and np.isfinite(v)}


def run_train(
    data: Path,
    config_path: Path | None = None,
    *,
    promote: bool | None = None,
    show_progress: bool = True,
) -> TrainResult:
    """Train, evaluate, log and register a ranker on the tables in ``data``.

    config_path: YAML config (default: built-in defaults, same as
        ``training/configs/default.yaml``). promote: run the promotion gate at the end
        (default: the config's ``promotion.auto_promote``). Raises ``ConfigError`` (bad config,
        before any data is read), ``DataValidationError`` (bad tables) or ``ValueError``
        (data too small to split or fit).
    """
    import mlflow
    from mlflow.data.pandas_dataset import from_pandas

    from recommender import report, tracking
    from recommender.bundle import load_effect_model
    from recommender.data import load_dataset
    from recommender.registry import log_ranker

    config = load_config(config_path)
    estimator = make_estimator(config)
    data = Path(data)
    do_promote = config.promotion.auto_promote if promote is None else promote
    name = config.promotion.registered_model

    with _Steps(total=8 if do_promote else 7, enabled=show_progress) as steps:
        with steps.step("load and validate"):
            dataset = load_dataset(data)
            tables = dataset.tables()
        with steps.step("manager-period features"):
            periods = build_manager_periods(tables)
            prepared = prepare(periods, tables["nudges"], config, _min_rows_per_arm(estimator))
        with steps.step("fit uplift model"):
            model = fit_model(prepared, estimator, config)
        with steps.step("evaluate (later window)"):
            truth = read_truth(data)
            evaluation, best_single, single_table = evaluate_model(prepared, model, config, truth)
        experiment_id = tracking.configure(config.tracking.experiment)
        orgs = ",".join(prepared.spec.categories["org_id"])
        window = prepared.split.window()
        fingerprint = tracking.data_fingerprint(data, {t: len(f) for t, f in tables.items()})
        digest = tracking.fingerprint_digest(fingerprint)
        with (
            mlflow.start_run(experiment_id=experiment_id) as run,
            tempfile.TemporaryDirectory() as tmp,
        ):
            run_id = run.info.run_id
            with steps.step("log to MLflow"):
                tags = {
                    "org_ids": orgs,
                    "data_window": f"{window['train_start']}..{window['eval_end']}",
                    "train_window": f"{window['train_start']}..{window['train_end']}",
                    "eval_window": f"{window['eval_start']}..{window['eval_end']}",
                    "data_digest": digest,
                    "simulated": str(truth is not None).lower(),
                    "best_single_type": best_single,
                }
                mlflow.set_tags(tags)
                mlflow.log_params(config.flat())
                mlflow.log_params(
                    {
                        "split.cutoff": prepared.split.cutoff.date().isoformat(),
                        "model.chosen": json.dumps(_chosen_summary(model), sort_keys=True)[:6000],
                    }
                )
                mlflow.log_dict(config.model_dump(mode="json"), "config.json")
                with warnings.catch_warnings():
                    # The fingerprint's row counts are integers by nature; MLflow's hint about
                    # missing values in integer columns does not apply to this descriptive table.
                    warnings.filterwarnings("ignore", "Hint: Inferred schema contains integer")
                    input_tables = from_pandas(fingerprint, name="input-tables", digest=digest)
                mlflow.log_input(input_tables, context="training")
                counts = _counts(prepared, model)
                metrics = {**counts, **evaluation.metrics}
                mlflow.log_metrics(_finite(metrics))
                out = Path(tmp)
                figures = report.figures(evaluation)
                report.write_artifacts(out / "evaluation", evaluation, model, single_table, figures)
                summary = {
                    "run_id": run_id,
                    "org_ids": orgs,
                    **window,
                    "cutoff": prepared.split.cutoff.date().isoformat(),
                    "best_single_type": best_single,
                    "dropped_types": ", ".join(prepared.dropped_types) or "none",
                    **{k: f"{v:,.0f}" for k, v in counts.items()},
                }
                html = report.render_html(summary, evaluation, model, single_table, figures, None)
                (out / "evaluation" / "report.html").write_text(html, encoding="utf-8")
                mlflow.log_artifacts(str(out / "evaluation"), "evaluation")
            with steps.step("register model"):
                meta = {
                    "run_id": run_id,
                    "org_ids": list(prepared.spec.categories["org_id"]),
                    "cutoff": prepared.split.cutoff.date().isoformat(),
                    **window,
                    "best_single_type": best_single,
                    "data_digest": digest,
                }
                bundle_dir = build_bundle(out / "bundle", prepared, model, meta)
                model_uri, version = log_ranker(
                    bundle_dir,
                    name,
                    prepared.evaluation.X,
                    {**tags, "run_id": run_id},
                )
                mlflow.set_tag("model_version", version)
                mlflow.set_tag(
                    "mlflow.runName",
                    f"{name} v{version} · {orgs} · {window['train_start']}..{window['eval_end']}",
                )
            promoted: bool | None = None
            reason: str | None = None
            if do_promote:
                with steps.step("promotion gate"):
                    decision = _judge_and_record(
                        name, load_effect_model(model_uri), prepared, best_single, config
                    )
                    mlflow.set_tags({f"{k}": v for k, v in decision.tags().items()})
                    promoted, reason = decision.promoted, decision.reason
            mlflow.log_metrics(_timing_metrics(steps.timings))
    return TrainResult(
        run_id=run_id,
        model_uri=model_uri,
        version=version,
        metrics=metrics,
        best_single_type=best_single,
        promoted=promoted,
        gate_reason=reason,
        timings=dict(steps.timings),
    )


def _timing_metrics(timings: dict[str, float]) -> dict[str, float]:
    """Step durations as metrics ``time_<step>_s``."""
    return {
        f"time_{re.sub('[^a-z0-9]+', '_', k.lower()).strip('_')}_s": v for k, v in timings.items()
    }


def _chosen_summary(model: Any) -> dict[str, Any]:
    chosen = getattr(model, "chosen_", {})
    out: dict[str, Any] = {}
    for outcome, item in dict(chosen).items():
        weights = {k: round(float(v), 3) for k, v in dict(item.get("weights", {})).items()}
        out[str(outcome)] = {"weights": weights, "shrinkage": float(item.get("shrinkage", 1.0))}
    return out


def _counts(prepared: Prepared, model: Any) -> dict[str, float]:
    return {
        "n_manager_periods": float(len(prepared.periods.table)),
        "n_train_rows": float(len(prepared.fit_rows)),
        "n_eval_rows": float(prepared.evaluation.n),
        "n_dropped_straddling": float(prepared.split.n_dropped),
        "n_undecided_periods": float(prepared.n_undecided),
        "n_managers": float(prepared.periods.table["manager_id"].nunique()),
        "n_snapshot_managers": float(prepared.periods.snapshot().shape[0]),
        "n_types_modelled": float(len(model.treatments_)),
    }


# --------------------------------------------------------------------------- promote


def gate_context(
    tables: dict[str, pd.DataFrame], config: TrainConfig, estimator: Any
) -> tuple[Prepared, str]:
    """Evaluation context for the gate: the config's split and objective (scales from the
    training window), q_hat fitted on the training window, and the best single type chosen
    on it. Every model is judged on this one reward, so an objective change cannot game it."""
    periods = build_manager_periods(tables)
    prepared = prepare(periods, tables["nudges"], config, _min_rows_per_arm(estimator))
    q_model = RewardModel.fit(prepared.train, config.evaluation.q_model_estimators, config.seed)
    prepared.evaluation.q_hat = q_model.predict(prepared.evaluation.X)
    best_single, _ = choose_best_single_type(prepared.train, seed=config.seed)
    return prepared, best_single


def run_promote(
    data: Path,
    config_path: Path | None = None,
    *,
    version: str | None = None,
    show_progress: bool = True,
) -> GateDecision:
    """Run the promotion gate for ``version`` (default: the ``candidate`` alias) on the
    evaluation window it was trained with (``split.cutoff`` of its run), using ``data``.

    Returns the ``GateDecision`` (also written as tags on both versions; ``champion`` moves
    only if promoted).
    """
    from mlflow import MlflowClient
    from mlflow.exceptions import MlflowException

    from recommender import tracking
    from recommender.bundle import load_effect_model
    from recommender.data import load_dataset
    from recommender.registry import CANDIDATE, alias_version

    config = load_config(config_path)
    estimator = make_estimator(config)
    name = config.promotion.registered_model
    tracking.configure(config.tracking.experiment)
    client = MlflowClient()
    if version is None:
        version = alias_version(name, CANDIDATE)
        if version is None:
            raise ValueError(f"model {name!r} has no version with alias {CANDIDATE!r}")
    try:
        model_version = client.get_model_version(name, version)
    except MlflowException:
        raise ValueError(f"model {name!r} has no version {version!r}") from None
    if not model_version.run_id:
        raise ValueError(f"version {version} of {name!r} has no training run")
    run = client.get_run(model_version.run_id)
    cutoff = run.data.params.get("split.cutoff")
    if cutoff is None:
        raise ValueError(f"run {model_version.run_id} has no split.cutoff param")
    config = config.model_copy(
        update={
            "split": config.split.model_copy(update={"eval_start": pd.Timestamp(cutoff).date()})
        }
    )
    with _Steps(total=3, enabled=show_progress) as steps:
        with steps.step("load and validate"):
            tables = load_dataset(Path(data)).tables()
        with steps.step("manager-period features"):
            candidate = load_effect_model(f"models:/{name}/{version}")
            prepared, best_single = gate_context(tables, config, estimator)
        with steps.step("promotion gate"):
            decision = _judge_and_record(name, candidate, prepared, best_single, config)
    return decision


def _judge_and_record(
    name: str,
    candidate: RankerBundle,
    prepared: Prepared,
    best_single: str,
    config: TrainConfig,
) -> GateDecision:
    """Gate ``candidate`` against the current champion (if another version) and the best single
    type on ``prepared.evaluation``; tag the versions and move the alias if it passes."""
    from recommender.bundle import load_effect_model
    from recommender.registry import CHAMPION, alias_version, apply_decision, gate

    champion_version = alias_version(name, CHAMPION)
    champion = None
    if champion_version is not None and champion_version != candidate.version:
        champion = load_effect_model(f"models:/{name}/{champion_version}")
    decision = gate(
        prepared.evaluation,
        candidate,
        champion,
        best_single,
        config.evaluation.n_bootstrap,
        config.evaluation.ci_level,
        config.evaluation.propensity_clip,
        config.seed,
    )
    apply_decision(name, decision)
    return decision
