"""Training benchmark: wall time, peak memory and quality vs single learners and baselines.

For each size (simulated managers) the data is generated once into the git-ignored
``data/generated/bench-N`` and trained in a fresh subprocess (so peak memory is that run's):
load + features + split + fit, then evaluation on the later window. Quality on the evaluation
window from the simulation's ground truth: NPV (0 = uniform random, 1 = oracle) and mean PEHE
(objective units) of the chosen model, of every single learner of the family (same fit, same
split), and of the baselines (best single type chosen on the training window, random).
MLflow logging/registration is not included in the timings. ``fit_cpu_s`` is the CPU time of the
fit over all threads: on a machine shared with other jobs it is the stabler figure (fit_cpu_s / 2
is the fit's wall time on 2 idle cores at best). Results: benchmarks/results/train.json.

    .venv/bin/python benchmarks/bench_train.py --sizes 2000 20000 [100000]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results" / "train.json"


def generate(n_managers: int, seed: int) -> Path:
    """Simulate ``n_managers`` (3 orgs, 3 years) into data/generated/bench-N unless present."""
    from recommender.simulation import SimulationConfig, simulate_organisation, write_simulation

    folder = ROOT / "data" / "generated" / f"bench-{n_managers}"
    if not (folder / "managers.parquet").is_file():
        result = simulate_organisation(SimulationConfig(n_managers=n_managers, seed=seed))
        write_simulation(result, folder, fmt="parquet")
    return folder


def _quality(
    prepared: Any, truth: Any, scores: Any, model_types: tuple[str, ...]
) -> dict[str, float]:
    """NPV and mean PEHE (objective units) of a greedy policy on per-type scores (n, n_types)."""
    import numpy as np

    from recommender import evaluation_metrics as em
    from recommender.evaluation import greedy_policy, model_action_scores, truth_matrix

    ctx = prepared.evaluation
    names = ctx.action_names
    mu_k = truth_matrix(ctx.rows, truth, names, prepared.objective.outcome_names)
    known = np.isfinite(mu_k).all(axis=2)
    mask = ctx.mask & known
    mu = np.where(mask, prepared.objective.score(np.nan_to_num(mu_k)), 0.0)
    action_scores = model_action_scores(scores, model_types, names)
    pi = greedy_policy(action_scores, mask)
    v_random = em.true_policy_value(mu, mask / mask.sum(axis=1, keepdims=True))
    v_oracle = em.oracle_policy_value(mu, mask)
    value = em.true_policy_value(mu, pi)
    errors = []
    for a in range(1, len(names)):
        ok = mask[:, a] & np.isfinite(action_scores[:, a])
        if ok.sum() >= 5:
            errors.append(em.pehe(action_scores[ok, a], mu[ok, a] - mu[ok, 0]).mean)
    return {
        "true_value": value,
        "npv": em.normalised_policy_value(value, v_random, v_oracle),
        "pehe_mean": float(np.mean(errors)) if errors else float("nan"),
    }


def worker(data: Path, n_jobs: int) -> dict[str, Any]:
    """One size, in this (fresh) process."""
    import numpy as np

    from recommender import evaluation_metrics as em
    from recommender.config import parse_config
    from recommender.data import load_dataset
    from recommender.evaluation import choose_best_single_type, read_truth, truth_matrix
    from recommender.features import build_manager_periods
    from recommender.pipeline import _min_rows_per_arm, fit_model, make_estimator, prepare

    config = parse_config({"model": {"params": {"n_jobs": n_jobs}}})
    estimator = make_estimator(config)
    timings: dict[str, float] = {}
    start = time.perf_counter()
    tables = load_dataset(data).tables()
    timings["load_s"] = time.perf_counter() - start
    t = time.perf_counter()
    periods = build_manager_periods(tables)
    prepared = prepare(periods, tables["nudges"], config, _min_rows_per_arm(estimator))
    timings["features_split_s"] = time.perf_counter() - t
    t, cpu = time.perf_counter(), time.process_time()
    model = fit_model(prepared, estimator, config)
    timings["fit_s"] = time.perf_counter() - t
    timings["fit_cpu_s"] = time.process_time() - cpu
    timings["train_total_s"] = time.perf_counter() - start

    truth = read_truth(data)
    assert truth is not None, "benchmark data must be simulated (truth/ missing)"
    X = prepared.evaluation.X
    types = tuple(str(t) for t in model.treatments_)
    coef = prepared.objective.coefficients()
    quality: dict[str, dict[str, Any]] = {
        "chosen": _quality(prepared, truth, model.predict_effects(X) @ coef, types)
    }
    for learner in getattr(model, "learners", ("s", "t", "x", "dr")):
        try:
            effect = model.predict_learner_effects(X, learner)
        except ValueError:
            continue
        quality[f"learner_{learner}"] = _quality(prepared, truth, effect @ coef, types)
    best, _ = choose_best_single_type(prepared.train, seed=config.seed)
    ctx = prepared.evaluation
    names = ctx.action_names
    mu_k = truth_matrix(ctx.rows, truth, names, prepared.objective.outcome_names)
    mask = ctx.mask & np.isfinite(mu_k).all(axis=2)
    mu = np.where(mask, prepared.objective.score(np.nan_to_num(mu_k)), 0.0)
    v_random = em.true_policy_value(mu, mask / mask.sum(axis=1, keepdims=True))
    v_oracle = em.oracle_policy_value(mu, mask)
    j = names.index(best)
    single = np.where(mask[:, j], j, 0)
    v_best = em.true_policy_value(mu, np.eye(len(names))[single])
    quality["best_single_type"] = {
        "type": best,
        "true_value": v_best,
        "npv": em.normalised_policy_value(v_best, v_random, v_oracle),
    }
    quality["uniform_random"] = {"true_value": v_random, "npv": 0.0}
    quality["oracle"] = {"true_value": v_oracle, "npv": 1.0}
    peak_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return {
        "n_managers_in_data": int(tables["managers"].shape[0]),
        "n_train_rows": len(prepared.fit_rows),
        "n_eval_rows": prepared.evaluation.n,
        "timings": timings,
        "peak_memory_mb": peak_kb / 1024,
        "chosen": {k: v for k, v in model.chosen_.items()},
        "quality": quality,
    }


def main() -> None:
    """Run the sizes, each in a fresh subprocess, and write benchmarks/results/train.json."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[2000, 20000])
    parser.add_argument("--n-jobs", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--worker", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker is not None:
        print(json.dumps(worker(args.worker, args.n_jobs), default=float))
        return
    results: dict[str, Any] = {
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
        "n_jobs": args.n_jobs,
        "runs": {},
    }
    if RESULTS.is_file():
        results["runs"] = json.loads(RESULTS.read_text()).get("runs", {})
    for size in args.sizes:
        data = generate(size, args.seed)
        started = time.perf_counter()
        proc = subprocess.run(
            [sys.executable, __file__, "--worker", str(data), "--n-jobs", str(args.n_jobs)],
            capture_output=True,
            text=True,
            check=False,
        )
        if proc.returncode != 0:
            print(proc.stderr[-3000:], file=sys.stderr)
            raise SystemExit(f"size {size} failed")
        run = json.loads(proc.stdout.strip().splitlines()[-1])
        run["subprocess_wall_s"] = time.perf_counter() - started
        results["runs"][str(size)] = run
        q = run["quality"]
        print(
            f"{size:>7} managers: train {run['timings']['train_total_s']:.1f}s "
            f"(fit {run['timings']['fit_s']:.1f}s, {run['timings']['fit_cpu_s']:.1f}s CPU), "
            f"peak {run['peak_memory_mb']:.0f} MB, "
            f"NPV chosen {q['chosen']['npv']:.3f}, PEHE {q['chosen']['pehe_mean']:.3f}, "
            + ", ".join(f"{k} NPV {v['npv']:.3f}" for k, v in q.items() if k.startswith("learner_"))
            + f", best single {q['best_single_type']['npv']:.3f}"
        )
        RESULTS.parent.mkdir(parents=True, exist_ok=True)
        RESULTS.write_text(json.dumps(results, indent=1, default=float))


if __name__ == "__main__":
    main()
