"""Benchmark MultiTreatmentUplift: fit/predict time, memory and PEHE per learner vs the blend.

Synthetic problem (``recommender.uplift.synthetic``): 10 nudge types + control, 3 outcomes,
40 features (38 numeric, a 4-level categorical, an integer), planted heterogeneous effects with
SD 1 per type, outcome noise SD 3 (3x the heterogeneity), confounded logging policy. PEHE
(root mean squared error of tau_k(x), averaged over types) is measured on an independent test
sample drawn from the same process; the training never sees the truth.

    .venv/bin/python benchmarks/bench_uplift.py                 # 3 runs at 80k rows (median)
    .venv/bin/python benchmarks/bench_uplift.py --large         # plus one run at 400k rows

Writes benchmarks/results/uplift.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import time
from pathlib import Path
from typing import Any

import lightgbm as lgb
import numpy as np

from recommender.uplift import MultiTreatmentUplift
from recommender.uplift.synthetic import make_uplift_problem, pehe

LEARNERS = ("s", "t", "x", "dr")
PROBLEM = {
    "n_treatments": 10,
    "n_outcomes": 3,
    "n_numeric": 38,
    "effect_sd": 1.0,
    "noise_sd": 3.0,
    "ate_scale": 0.3,
}


def run_once(n: int, n_test: int, seed: int, n_jobs: int) -> dict[str, Any]:
    """Fit on ``n`` rows, score PEHE on ``n_test`` fresh rows; times in seconds."""
    train = make_uplift_problem(n=n, seed=seed, **PROBLEM)  # type: ignore[arg-type]
    test = make_uplift_problem(n=n_test, seed=10_000 + seed, **PROBLEM)  # type: ignore[arg-type]
    model = MultiTreatmentUplift(random_state=seed, n_jobs=n_jobs)
    start, cpu = time.perf_counter(), time.process_time()
    model.fit(train.X, train.treatment, train.y)
    fit_s, fit_cpu = time.perf_counter() - start, time.process_time() - cpu
    start = time.perf_counter()
    effect = model.predict_effects(test.X)
    predict_s = time.perf_counter() - start
    result: dict[str, Any] = {
        "n_train": n,
        "n_test": n_test,
        "seed": seed,
        "fit_seconds": fit_s,
        "fit_cpu_seconds": fit_cpu,
        "predict_seconds": predict_s,
        "predict_ms_per_row": 1000 * predict_s / n_test,
        "pehe": {"blend_shrunk": float(pehe(effect, test.true_effect).mean())},
        "pehe_per_outcome": {"blend_shrunk": pehe(effect, test.true_effect).mean(0).tolist()},
        "chosen": model.chosen_,
    }
    constant = np.broadcast_to(model.mean_effect_[None], effect.shape)
    result["pehe"]["constant_mean_effect"] = float(pehe(constant, test.true_effect).mean())
    for c in LEARNERS:
        est = model.predict_learner_effects(test.X, c)
        result["pehe"][c] = float(pehe(est, test.true_effect).mean())
        result["pehe_per_outcome"][c] = pehe(est, test.true_effect).mean(0).tolist()
    truth_sd = test.true_effect.std(axis=0).mean()
    result["true_effect_sd"] = float(truth_sd)
    result["max_rss_gb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6
    return result


def main() -> None:
    """Run the benchmark and write the JSON report."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=80_000, help="training rows (small size)")
    parser.add_argument("--runs", type=int, default=3, help="runs at the small size (median)")
    parser.add_argument("--n-test", type=int, default=10_000, help="test rows for PEHE")
    parser.add_argument("--n-jobs", type=int, default=2, help="threads")
    parser.add_argument("--large", action="store_true", help="also one run at 400k rows")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/uplift.json"))
    args = parser.parse_args()

    runs = []
    for seed in range(args.runs):
        r = run_once(args.n, args.n_test, seed, args.n_jobs)
        print(
            f"n={args.n} seed={seed} fit={r['fit_seconds']:.1f}s cpu={r['fit_cpu_seconds']:.1f}s "
            f"predict={r['predict_seconds']:.1f}s pehe={r['pehe']}",
            flush=True,
        )
        runs.append(r)
    keys = runs[0]["pehe"].keys()
    summary: dict[str, Any] = {
        "fit_seconds_median": statistics.median(r["fit_seconds"] for r in runs),
        "fit_cpu_seconds_median": statistics.median(r["fit_cpu_seconds"] for r in runs),
        "predict_seconds_median": statistics.median(r["predict_seconds"] for r in runs),
        "pehe_median": {k: statistics.median(r["pehe"][k] for r in runs) for k in keys},
        "pehe_range": {
            k: [min(r["pehe"][k] for r in runs), max(r["pehe"][k] for r in runs)] for k in keys
        },
    }
    report: dict[str, Any] = {
        "problem": PROBLEM,
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform()},
        "versions": {"lightgbm": lgb.__version__, "numpy": np.__version__},
        "note": (
            "wall times on a shared 2-core machine with other jobs running; "
            "fit_cpu_seconds / 2 is the wall time on 2 idle cores at best"
        ),
        "small": {"runs": runs, "summary": summary},
    }
    if args.large:
        big = run_once(400_000, args.n_test, 0, args.n_jobs)
        print(
            f"n=400000 fit={big['fit_seconds']:.1f}s cpu={big['fit_cpu_seconds']:.1f}s "
            f"rss={big['max_rss_gb']:.2f}GB",
            flush=True,
        )
        report["large"] = big
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=1))
    print(json.dumps(summary, indent=1))


if __name__ == "__main__":
    main()
