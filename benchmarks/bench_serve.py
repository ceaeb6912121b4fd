"""Benchmark the ranking API over real HTTP: rps, p50 and p99 latency at 1 and 32 clients.

The server runs in its own process (uvicorn, 1 worker, 127.0.0.1) with a LightGBM model of
realistic size: an S-learner per outcome (3 boosters x 300 trees x 31 leaves over 30 features
plus the treatment), 10 nudge types, 20,000 managers in the snapshot, 60 nudges per org, events
in SQLite (WAL). Each request ranks 50 explicit candidates for a random manager. The load runs
with httpx (async) and is bounded in requests and seconds per phase. Latency is measured
client-side (includes the client's own overhead). Targets: p50 < 3 ms at 1 client,
p99 < 50 ms at 32 clients.

    .venv/bin/python benchmarks/bench_serve.py        # writes benchmarks/results/serve.json
    .venv/bin/python benchmarks/bench_serve.py --requests 500 --concurrent-requests 2000

``--mlflow-model-uri URI`` also loads ``mlflow models serve -m URI`` (env-manager local) with the
same harness on ``/invocations``, sending the JSON body in ``--mlflow-payload FILE`` (the trained
pyfunc's input signature belongs to the training side); without it that comparison is skipped.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import random
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

RESULTS = Path(__file__).resolve().parent / "results" / "serve.json"
N_FEATURES = 30
N_TYPES = 10
N_MANAGERS = 20_000
N_NUDGES = 60
N_CANDIDATES = 50
TARGETS = {"p50_ms_1_client": 3.0, "p99_ms_32_clients": 50.0}
API_KEY = "bench-key-org-01"


# ------------------------------------------------------------------------------ server side


class BoosterEffectModel:
    """EffectModel over LightGBM S-learners: one booster per outcome on [features, treatment].

    effect[i, t, o] = f_o(x_i, t) - f_o(x_i, none); std is a fixed share of |effect| + floor.
    """

    def __init__(self, seed: int = 0, n_trees: int = 300) -> None:
        import lightgbm as lgb

        from recommender.constants import CONTEXTS, GLOBAL_ORG, OUTCOMES
        from recommender.effect_model import CatalogueEntry

        rng = np.random.default_rng(seed)
        self.outcome_names = OUTCOMES
        self.nudge_types = tuple(f"type_{j:02d}" for j in range(N_TYPES))
        n_train = 20_000
        X = rng.normal(size=(n_train, N_FEATURES))
        treatment = rng.integers(0, N_TYPES + 1, size=n_train)
        uplift = rng.normal(0.0, 0.3, size=(N_TYPES + 1, N_FEATURES))
        uplift[0] = 0.0
        self.boosters = []
        for o in range(len(OUTCOMES)):
            signal = X[:, o] + np.einsum("nf,nf->n", X, uplift[treatment]) * 0.2
            y = signal + rng.normal(0.0, 1.0, size=n_train)
            data = lgb.Dataset(np.column_stack([X, treatment]), y, categorical_feature=[N_FEATURES])
            params = {
                "objective": "regression",
                "num_leaves": 31,
                "learning_rate": 0.05,
                "verbose": -1,
                "num_threads": 1,
                "seed": seed + o,
            }
            self.boosters.append(lgb.train(params, data, num_boost_round=n_trees))
        self.scales = np.array([0.1, 0.12, 2.0])
        self.coef = np.array([1.0, 0.5, 1.0]) / self.scales
        self.snapshot = rng.normal(size=(N_MANAGERS, N_FEATURES))
        self.rows = {("org-01", f"m-{i:05d}"): i for i in range(N_MANAGERS)}
        own = [
            CatalogueEntry(
                f"n-{j:03d}",
                "org-01",
                self.nudge_types[j % N_TYPES],
                f"c-{j % 6}",
                frozenset(rng.choice(CONTEXTS, size=2, replace=False).tolist()),
            )
            for j in range(N_NUDGES - 5)
        ]
        shared = [
            CatalogueEntry(f"g-{j:02d}", GLOBAL_ORG, self.nudge_types[j], None, frozenset(CONTEXTS))
            for j in range(5)
        ]
        self._catalogue = tuple(own + shared)
        self.metrics = {"n_trees": float(n_trees * len(OUTCOMES))}

    @property
    def version(self) -> str:
        return "bench-1"

    def catalogue(self, org_id: str) -> tuple[Any, ...]:
        return self._catalogue if org_id == "org-01" else ()

    def manager_row(self, org_id: str, manager_id: str) -> np.ndarray | None:
        index = self.rows.get((org_id, manager_id))
        return None if index is None else self.snapshot[index].copy()

    def encode(self, features: Mapping[str, object]) -> np.ndarray:
        raise ValueError("features: not supported by the benchmark model")

    def predict(self, rows: np.ndarray) -> Any:
        from recommender.effect_model import EffectPrediction

        X = np.atleast_2d(rows)
        n = X.shape[0]
        arms = N_TYPES + 1
        design = np.column_stack(
            [np.repeat(X, arms, axis=0), np.tile(np.arange(arms, dtype=np.float64), n)]
        )
        outcomes = np.stack(
            [np.asarray(b.predict(design, num_threads=1)).reshape(n, arms) for b in self.boosters],
            axis=-1,
        )
        effect = outcomes[:, 1:, :] - outcomes[:, :1, :]
        std = 0.25 * np.abs(effect) + 0.01 * self.scales
        return EffectPrediction(effect=effect, effect_std=std, score=effect @ self.coef)

    def reason(self, org_id: str, row: np.ndarray, nudge_type: str) -> str:
        return f"Managers with a profile like yours did better after {nudge_type} nudges."


def serve(port: int, workdir: Path, n_trees: int) -> None:
    """Server process: build the model, then uvicorn on 127.0.0.1:port until killed."""
    import logging

    import uvicorn

    from serving.app import create_app
    from serving.settings import ServeSettings, hash_api_key

    model = BoosterEffectModel(n_trees=n_trees)
    settings = ServeSettings(
        api_keys=f"{hash_api_key(API_KEY)}=org-01",
        db_path=workdir / "events.db",
        model_poll_seconds=0,
        log_level="warning",
    )
    logging.basicConfig(level=logging.WARNING)
    app = create_app(settings, lambda uri: (model.version, model))
    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning", access_log=False)


# ------------------------------------------------------------------------------ client side


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def summarise(latencies: list[float], elapsed: float, errors: int) -> dict[str, Any]:
    ms = np.asarray(latencies) * 1000.0
    return {
        "requests": len(latencies),
        "errors": errors,
        "elapsed_s": round(elapsed, 3),
        "rps": round(len(latencies) / elapsed, 1),
        "p50_ms": round(float(np.percentile(ms, 50)), 3),
        "p90_ms": round(float(np.percentile(ms, 90)), 3),
        "p99_ms": round(float(np.percentile(ms, 99)), 3),
        "max_ms": round(float(ms.max()), 3),
    }


async def load(
    url: str,
    make_body: Any,
    headers: dict[str, str],
    *,
    clients: int,
    requests: int,
    max_seconds: float,
    warmup: int = 100,
) -> dict[str, Any]:
    """``clients`` concurrent loops share ``requests`` POSTs (after ``warmup``), <= max_seconds."""
    import httpx

    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    async with httpx.AsyncClient(limits=limits, timeout=10.0) as client:
        for _ in range(warmup):
            await client.post(url, json=make_body(), headers=headers)
        latencies: list[float] = []
        errors = 0
        remaining = requests
        deadline = time.perf_counter() + max_seconds

        async def worker() -> None:
            nonlocal remaining, errors
            while remaining > 0 and time.perf_counter() < deadline:
                remaining -= 1
                body = make_body()
                start = time.perf_counter()
                response = await client.post(url, json=body, headers=headers)
                latencies.append(time.perf_counter() - start)
                if response.status_code != 200:
                    errors += 1

        start = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(clients)))
        return summarise(latencies, time.perf_counter() - start, errors)


def server_histogram(base: str) -> dict[float, float]:
    """Cumulative bucket counts of the server's /v1/rank latency histogram (le -> count)."""
    import httpx

    text = httpx.get(f"{base}/metrics", timeout=5.0).text
    buckets: dict[float, float] = {}
    for line in text.splitlines():
        if line.startswith("nudge_http_request_duration_seconds_bucket") and "/v1/rank" in line:
            le = line.split('le="', 1)[1].split('"', 1)[0]
            buckets[float("inf") if le == "+Inf" else float(le)] = float(line.rsplit(" ", 1)[1])
    return buckets


def server_quantiles(before: dict[float, float], after: dict[float, float]) -> dict[str, Any]:
    """Server-side p50/p99 upper bounds (bucket edges, ms) for the requests between snapshots."""
    counts = {le: after[le] - before.get(le, 0.0) for le in sorted(after)}
    total = counts[float("inf")]
    out: dict[str, Any] = {"requests": int(total)}
    for name, q in (("p50_ms_at_most", 0.5), ("p99_ms_at_most", 0.99)):
        edge = next(le for le, c in counts.items() if c >= q * total)
        out[name] = None if edge == float("inf") else edge * 1000.0
    return out


def wait_ready(url: str, process: subprocess.Popen[bytes], timeout: float = 180.0) -> None:
    import httpx

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"server exited with {process.returncode}")
        try:
            if httpx.get(url, timeout=1.0).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    raise TimeoutError(f"{url} not ready after {timeout} s")


def bench_api(args: argparse.Namespace) -> dict[str, Any]:
    """Start the server process, run both phases, stop it."""
    port = free_port()
    rng = random.Random(0)
    nudge_ids = [f"n-{j:03d}" for j in range(N_NUDGES - 5)] + [f"g-{j:02d}" for j in range(5)]

    def make_body() -> dict[str, Any]:
        return {
            "manager_id": f"m-{rng.randrange(N_MANAGERS):05d}",
            "candidates": rng.sample(nudge_ids, N_CANDIDATES),
            "k": 5,
        }

    with tempfile.TemporaryDirectory() as workdir:
        process = subprocess.Popen(
            [
                sys.executable,
                __file__,
                "--serve",
                str(port),
                "--workdir",
                workdir,
                "--trees",
                str(args.trees),
            ],
            env={**os.environ, "PYTHONUNBUFFERED": "1", "OMP_NUM_THREADS": "1"},
        )
        try:
            base = f"http://127.0.0.1:{port}"
            wait_ready(f"{base}/readyz", process)
            headers = {"X-API-Key": API_KEY}
            url = f"{base}/v1/rank"
            start = server_histogram(base)
            one = asyncio.run(
                load(
                    url,
                    make_body,
                    headers,
                    clients=1,
                    requests=args.requests,
                    max_seconds=args.max_seconds,
                )
            )
            middle = server_histogram(base)
            many = asyncio.run(
                load(
                    url,
                    make_body,
                    headers,
                    clients=32,
                    requests=args.concurrent_requests,
                    max_seconds=args.max_seconds,
                )
            )
            end = server_histogram(base)
            one["server_side"] = server_quantiles(start, middle)  # includes warm-up requests
            many["server_side"] = server_quantiles(middle, end)
        finally:
            process.terminate()
            process.wait(15)
    return {"1_client": one, "32_clients": many}


def bench_mlflow(uri: str, payload_file: Path, args: argparse.Namespace) -> dict[str, Any]:
    """The same harness against ``mlflow models serve`` (hook; needs the trained pyfunc)."""
    port = free_port()
    payload = json.loads(payload_file.read_text())
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "mlflow",
            "models",
            "serve",
            "-m",
            uri,
            "-p",
            str(port),
            "-h",
            "127.0.0.1",
            "--env-manager",
            "local",
            "-w",
            "1",
        ],
    )
    try:
        base = f"http://127.0.0.1:{port}"
        wait_ready(f"{base}/ping", process, timeout=300)
        url = f"{base}/invocations"
        one = asyncio.run(
            load(
                url,
                lambda: payload,
                {},
                clients=1,
                requests=args.requests,
                max_seconds=args.max_seconds,
            )
        )
        many = asyncio.run(
            load(
                url,
                lambda: payload,
                {},
                clients=32,
                requests=args.concurrent_requests,
                max_seconds=args.max_seconds,
            )
        )
    finally:
        process.terminate()
        process.wait(15)
    return {"1_client": one, "32_clients": many}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=2000, help="requests at 1 client")
    parser.add_argument("--concurrent-requests", type=int, default=4000, help="at 32 clients")
    parser.add_argument("--max-seconds", type=float, default=60.0, help="bound per phase")
    parser.add_argument("--trees", type=int, default=300, help="trees per booster")
    parser.add_argument("--mlflow-model-uri", help="also benchmark `mlflow models serve -m URI`")
    parser.add_argument("--mlflow-payload", type=Path, help="JSON body for /invocations")
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument("--serve", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--workdir", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve is not None:
        serve(args.serve, args.workdir, args.trees)
        return
    load_before = os.getloadavg()
    api = bench_api(args)
    results: dict[str, Any] = {
        "benchmark": "serve",
        "setup": {
            "server": "uvicorn, 1 worker, 127.0.0.1, SQLite WAL events",
            "model": f"LightGBM S-learner, 3 boosters x {args.trees} trees x 31 leaves, "
            f"{N_FEATURES} features, {N_TYPES} nudge types",
            "candidates_per_request": N_CANDIDATES,
            "k": 5,
            "client": "httpx.AsyncClient, latency measured client-side",
            "cpu_count": os.cpu_count(),
            "load_average_1_5_15_min_before": load_before,
            "load_average_1_5_15_min_after": os.getloadavg(),
            "python": platform.python_version(),
            "platform": platform.platform(),
        },
        "api": api,
        "targets": TARGETS,
        "meets_targets": {
            "p50_ms_1_client": api["1_client"]["p50_ms"] < TARGETS["p50_ms_1_client"],
            "p99_ms_32_clients": api["32_clients"]["p99_ms"] < TARGETS["p99_ms_32_clients"],
        },
        "mlflow_models_serve": None,
    }
    if args.mlflow_model_uri:
        if args.mlflow_payload is None:
            parser.error("--mlflow-payload is required with --mlflow-model-uri")
        results["mlflow_models_serve"] = bench_mlflow(
            args.mlflow_model_uri, args.mlflow_payload, args
        )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    tmp = args.out.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(results, indent=2) + "\n")
    tmp.replace(args.out)
    print(json.dumps({"api": api, "meets_targets": results["meets_targets"]}, indent=2))


if __name__ == "__main__":
    main()
