"""Benchmark ``simulate_organisation`` + ``write_simulation``: wall time and peak memory.

Each run happens in a fresh subprocess (so peak RSS, ``ru_maxrss``, is that run's alone).
Small sizes are repeated and the median reported. Targets (2 cores): 2,000 managers < 10 s;
100,000 managers < 3 min and < 4 GB peak RSS.

    .venv/bin/python benchmarks/bench_simulate.py            # 2k, 20k, 100k managers, 2 years
    .venv/bin/python benchmarks/bench_simulate.py --sizes 2000 --repeats 1
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).resolve().parent / "results" / "simulate.json"
DEFAULT_SIZES = (2_000, 20_000, 100_000)
TARGETS = {2_000: {"total_s": 10.0}, 100_000: {"total_s": 180.0, "peak_rss_mb": 4096.0}}


def run_worker(n_managers: int, years: float, seed: int) -> dict[str, Any]:
    """Simulate and write one organisation in this process; timings in s, memory in MB."""
    from recommender.simulation import SimulationConfig, simulate_organisation, write_simulation

    config = SimulationConfig(n_managers=n_managers, n_orgs=3, years=years, seed=seed)
    start = time.perf_counter()
    result = simulate_organisation(config)
    simulated = time.perf_counter()
    with tempfile.TemporaryDirectory() as folder:
        write_simulation(result, Path(folder) / "org", fmt="parquet")
        written = time.perf_counter()
    return {
        "n_managers": n_managers,
        "years": years,
        "simulate_s": simulated - start,
        "write_s": written - simulated,
        "total_s": written - start,
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0,
        "rows": {name: len(frame) for name, frame in result.tables.items()}
        | {"ground_truth": len(result.ground_truth)},
    }


def run_in_subprocess(n_managers: int, years: float, seed: int) -> dict[str, Any]:
    """One fresh-interpreter run of ``run_worker``."""
    completed = subprocess.run(
        [
            sys.executable,
            __file__,
            "--worker",
            str(n_managers),
            "--years",
            str(years),
            "--seed",
            str(seed),
        ],
        check=True,
        capture_output=True,
        text=True,
    )
    return dict(json.loads(completed.stdout.strip().splitlines()[-1]))


def main() -> None:
    """Run every size, print a table, write ``benchmarks/results/simulate.json``."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=list(DEFAULT_SIZES))
    parser.add_argument("--repeats", type=int, default=3, help="runs of sizes <= 20,000")
    parser.add_argument("--years", type=float, default=2.0)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument("--worker", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker is not None:
        print(json.dumps(run_worker(args.worker, args.years, args.seed)))
        return

    summary = []
    print(
        f"{'managers':>9} {'runs':>4} {'simulate s':>10} {'write s':>8} {'total s':>8} "
        f"{'peak RSS MB':>11} {'360 rows':>11} {'target':>7}"
    )
    for n in args.sizes:
        repeats = args.repeats if n <= 20_000 else 1
        runs = [run_in_subprocess(n, args.years, args.seed) for _ in range(repeats)]
        row = {
            "n_managers": n,
            "years": args.years,
            "runs": repeats,
            **{
                key: statistics.median(run[key] for run in runs)
                for key in ("simulate_s", "write_s", "total_s", "peak_rss_mb")
            },
            "rows": runs[0]["rows"],
            "all_total_s": [run["total_s"] for run in runs],
        }
        target = TARGETS.get(n, {})
        row["meets_target"] = all(row[key] < limit for key, limit in target.items())
        summary.append(row)
        verdict = ("ok" if row["meets_target"] else "MISSED") if target else "-"
        print(
            f"{n:>9,} {repeats:>4} {row['simulate_s']:>10.2f} {row['write_s']:>8.2f} "
            f"{row['total_s']:>8.2f} {row['peak_rss_mb']:>11.0f} "
            f"{row['rows']['feedback_360']:>11,} {verdict:>7}"
        )
    report = {
        "benchmark": "simulate_organisation + write_simulation (parquet), median of runs",
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "platform": platform.platform(),
        },
        "targets": {str(k): v for k, v in TARGETS.items()},
        "results": summary,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    tmp = args.out.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(report, indent=2) + "\n")
    os.replace(tmp, args.out)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
