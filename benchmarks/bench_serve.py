"""Benchmark POST /v1/rank against `mlflow models serve` of the same registered model.

Both servers run the REAL trained model (a registered ``nudge-ranker`` version) on 127.0.0.1
with one worker:

- the ranking API, started exactly as shipped: ``python -m serving`` (uvicorn via
  ``run_serve``), settings from ``NUDGE_*``, events in SQLite (WAL, synchronous NORMAL);
- ``mlflow models serve -m models:/nudge-ranker/<v> --env-manager local -w 1`` (mlflow 3.x's
  scoring server is uvicorn; ``-w/--workers`` is passed to uvicorn as ``--workers``).

Requests. API: a random snapshot manager of a random tenant org, 50 distinct candidate nudges
drawn from that org's catalogue (own + global nudges of scored types), ``k=5``; the frequency cap
is raised (``NUDGE_FREQUENCY_CAP``) so every request takes the full path (history query,
scoring, sampling, durable decision write) instead of short-circuiting on the cap. mlflow: the
pyfunc's input is one row of encoded features per manager and its output scores every nudge
type, i.e. every candidate type, so the equivalent request is that manager's feature row as
``dataframe_split`` (the mlflow server does strictly less: no rules, sampling or logging).

Load. The client is a separate process with its own event loop and a minimal HTTP/1.1
keep-alive client over asyncio streams (request bytes pre-built, so the client costs little of
the 2 shared cores); ``clients`` loops share a bounded number of requests and stop at a
deadline. Phases alternate API/mlflow and repeat (``--repeats``); the medians are reported, with
the load average (1 min) before every phase. Latency is client-side, end to end.

    MLFLOW_TRACKING_URI=sqlite:////tmp/x/mlflow.db .venv/bin/python benchmarks/bench_serve.py \\
        --model-uri models:/nudge-ranker@candidate
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import random
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import numpy as np

RESULTS = Path(__file__).resolve().parent / "results" / "serve.json"
N_CANDIDATES = 50
K = 5
TARGETS = {"p50_ms_1_client": 3.0, "p99_ms_32_clients": 50.0, "rps_ratio_32_clients": 5.0}
HOST = "127.0.0.1"


# ------------------------------------------------------------------------------ client process


async def _one_connection(
    port: int,
    requests: list[bytes],
    state: dict[str, Any],
    latencies: list[float],
    statuses: dict[int, int],
    deadline: float,
) -> None:
    """One keep-alive connection sending requests until the shared budget or the deadline ends."""
    reader, writer = await asyncio.open_connection(HOST, port)
    try:
        while state["remaining"] > 0 and time.perf_counter() < deadline:
            state["remaining"] -= 1
            request = requests[state["next"] % len(requests)]
            state["next"] += 1
            start = time.perf_counter()
            writer.write(request)
            head = await reader.readuntil(b"\r\n\r\n")
            length = None
            close = False
            for line in head.split(b"\r\n")[1:]:
                name, _, value = line.partition(b":")
                name = name.strip().lower()
                if name == b"content-length":
                    length = int(value)
                elif name == b"connection" and value.strip().lower() == b"close":
                    close = True
            if length is None:
                raise RuntimeError("response without Content-Length")
            await reader.readexactly(length)
            latencies.append(time.perf_counter() - start)
            status = int(head.split(b" ", 2)[1])
            statuses[status] = statuses.get(status, 0) + 1
            if close:
                writer.close()
                reader, writer = await asyncio.open_connection(HOST, port)
    finally:
        writer.close()


async def _load(
    port: int, requests: list[bytes], clients: int, n: int, max_seconds: float, warmup: int
) -> dict[str, Any]:
    warm: list[float] = []
    await _one_connection(
        port, requests, {"remaining": warmup, "next": 0}, warm, {}, time.perf_counter() + 60
    )
    state = {"remaining": n, "next": warmup}
    latencies: list[float] = []
    statuses: dict[int, int] = {}
    start = time.perf_counter()
    deadline = start + max_seconds
    await asyncio.gather(
        *(
            _one_connection(port, requests, state, latencies, statuses, deadline)
            for _ in range(clients)
        )
    )
    elapsed = time.perf_counter() - start
    ms = np.asarray(latencies) * 1000.0
    return {
        "requests": len(latencies),
        "statuses": {str(k): v for k, v in sorted(statuses.items())},
        "elapsed_s": round(elapsed, 3),
        "rps": round(len(latencies) / elapsed, 1),
        "p50_ms": round(float(np.percentile(ms, 50)), 3),
        "p90_ms": round(float(np.percentile(ms, 90)), 3),
        "p99_ms": round(float(np.percentile(ms, 99)), 3),
        "max_ms": round(float(ms.max()), 3),
    }


def client_main(spec_file: Path) -> None:
    """Client process: run one phase described by ``spec_file``, print its summary as JSON."""
    spec = json.loads(spec_file.read_text())
    requests = [r.encode("latin-1") for r in spec["requests"]]
    result = asyncio.run(
        _load(
            spec["port"],
            requests,
            spec["clients"],
            spec["n"],
            spec["max_seconds"],
            spec["warmup"],
        )
    )
    print(json.dumps(result))


def tree_cpu_seconds(root: int) -> float:
    """User + system CPU seconds of ``root`` and its live descendants (Linux /proc; else 0)."""
    proc = Path("/proc")
    if not proc.is_dir():
        return 0.0
    parent: dict[int, int] = {}
    times: dict[int, float] = {}
    tick = os.sysconf("SC_CLK_TCK")
    for entry in proc.iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        parent[int(entry.name)] = int(fields[1])
        times[int(entry.name)] = (int(fields[11]) + int(fields[12])) / tick
    total = 0.0
    for pid, cpu in times.items():
        p = pid
        while p > 1 and p != root:
            p = parent.get(p, 0)
        if p == root:
            total += cpu
    return total


def run_phase(
    workdir: Path,
    port: int,
    requests: list[str],
    clients: int,
    n: int,
    args: argparse.Namespace,
    server_pid: int,
) -> dict[str, Any]:
    """Run the client process for one phase; its summary plus the load average and the server's
    CPU milliseconds per request (all its processes; warm-up requests included)."""
    spec = workdir / "phase.json"
    spec.write_text(
        json.dumps(
            {
                "port": port,
                "requests": requests,
                "clients": clients,
                "n": n,
                "max_seconds": args.max_seconds,
                "warmup": args.warmup,
            }
        )
    )
    load_before = os.getloadavg()[0]
    cpu_before = tree_cpu_seconds(server_pid)
    done = subprocess.run(
        [sys.executable, __file__, "--client", str(spec)],
        check=True,
        capture_output=True,
        text=True,
        timeout=args.max_seconds + 120,
    )
    cpu = tree_cpu_seconds(server_pid) - cpu_before
    result: dict[str, Any] = json.loads(done.stdout)
    result["load_avg_1min_before"] = round(load_before, 2)
    result["server_cpu_ms_per_request"] = round(
        1000.0 * cpu / (result["requests"] + args.warmup), 3
    )
    return result


def http_request(method: str, url: str, body: bytes | None, headers: dict[str, str]) -> bytes:
    """One plain HTTP request (set-up and checks only, not the measured load)."""
    request = urllib.request.Request(url, data=body, headers=headers, method=method)
    with urllib.request.urlopen(request, timeout=30) as response:
        data: bytes = response.read()
        return data


def raw_post(port: int, path: str, body: bytes, headers: dict[str, str]) -> str:
    """Pre-built HTTP/1.1 keep-alive POST (latin-1 text, so it survives the JSON spec file)."""
    lines = [f"POST {path} HTTP/1.1", f"Host: {HOST}:{port}", "Content-Type: application/json"]
    lines += [f"{name}: {value}" for name, value in headers.items()]
    lines.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode().decode("latin-1") + body.decode("latin-1")


# ------------------------------------------------------------------------------ servers


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


def wait_ready(url: str, process: subprocess.Popen[bytes], timeout: float) -> float:
    """Seconds until ``url`` answers 200; raises if the process dies or the timeout passes."""
    start = time.monotonic()
    while time.monotonic() - start < timeout:
        if process.poll() is not None:
            raise RuntimeError(f"server exited with {process.returncode}")
        try:
            http_request("GET", url, None, {})
            return time.monotonic() - start
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            time.sleep(0.25)
    raise TimeoutError(f"{url} not ready after {timeout} s")


def stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(5)


def server_counters(port: int) -> dict[str, Any]:
    """Server-side /v1/rank latency histogram (le -> cumulative count) and decisions by kind."""
    text = http_request("GET", f"http://{HOST}:{port}/metrics", None, {}).decode()
    buckets: dict[float, float] = {}
    decisions: dict[str, float] = {}
    for line in text.splitlines():
        if line.startswith("nudge_http_request_duration_seconds_bucket") and "/v1/rank" in line:
            le = line.split('le="', 1)[1].split('"', 1)[0]
            buckets[float("inf") if le == "+Inf" else float(le)] = float(line.rsplit(" ", 1)[1])
        elif line.startswith("nudge_decisions_total"):
            kind = line.split('kind="', 1)[1].split('"', 1)[0]
            decisions[kind] = decisions.get(kind, 0.0) + float(line.rsplit(" ", 1)[1])
    return {"buckets": buckets, "decisions": decisions}


def server_side(before: dict[str, Any], after: dict[str, Any]) -> dict[str, Any]:
    """Server-side p50/p99 upper bounds (bucket edges, ms) and decision kinds between snapshots."""
    counts = {le: after["buckets"][le] - before["buckets"].get(le, 0.0) for le in after["buckets"]}
    total = counts[float("inf")]
    out: dict[str, Any] = {"requests_incl_warmup": int(total)}
    for name, q in (("p50_ms_at_most", 0.5), ("p99_ms_at_most", 0.99)):
        edge = next(le for le in sorted(counts) if counts[le] >= q * total)
        out[name] = None if edge == float("inf") else round(edge * 1000.0, 3)
    out["decisions"] = {
        kind: int(n - before["decisions"].get(kind, 0.0)) for kind, n in after["decisions"].items()
    }
    return out


# ------------------------------------------------------------------------------ requests


def resolve_model(model_uri: str) -> tuple[str, Path]:
    """(registry version, local bundle folder) of ``model_uri`` (tracking URI already set)."""
    import mlflow

    from recommender.bundle import _resolve_version, find_bundle_dir

    version = _resolve_version(model_uri)
    local = mlflow.artifacts.download_artifacts(artifact_uri=model_uri)
    return version, find_bundle_dir(Path(local))


def build_requests(
    bundle_dir: Path,
    keys: dict[str, str],
    ports: tuple[int, int],
    n: int,
    n_candidates: int,
    seed: int,
) -> tuple[list[str], list[str], dict[str, Any]]:
    """``n`` API requests and the ``n`` equivalent mlflow requests (same managers), from the
    bundle's snapshot, feature spec and catalogue (read as files; the model is not loaded).

    Managers are drawn from the tenant orgs with at least ``n_candidates`` scorable nudges.
    ports: (API port, mlflow port), written into the Host headers."""
    api_port, mlflow_port = ports
    meta = json.loads((bundle_dir / "meta.json").read_text())
    names = json.loads((bundle_dir / "feature_spec.json").read_text())["names"]
    catalogue = json.loads((bundle_dir / "catalogue.json").read_text())
    scored = set(meta.get("nudge_types") or [item["nudge_type"] for item in catalogue])
    with np.load(bundle_dir / "snapshot.npz", allow_pickle=False) as snap:
        orgs = snap["org_id"].astype(str)
        managers = snap["manager_id"].astype(str)
        X = np.asarray(snap["X"], dtype=np.float64)
    candidates = {
        org: [
            item["nudge_id"]
            for item in catalogue
            if item["org_id"] in (org, "global") and item["nudge_type"] in scored
        ]
        for org in keys
    }
    usable = {org for org, ids in candidates.items() if len(ids) >= n_candidates}
    if not usable:
        sizes = {org: len(ids) for org, ids in candidates.items()}
        raise SystemExit(f"no org has {n_candidates} scorable nudges: {sizes}")
    rng = random.Random(seed)
    rows = [i for i in range(len(managers)) if orgs[i] in usable]
    api: list[str] = []
    ml: list[str] = []
    for _ in range(n):
        i = rng.choice(rows)
        body = {
            "manager_id": str(managers[i]),
            "candidates": rng.sample(candidates[orgs[i]], n_candidates),
            "k": K,
        }
        api.append(
            raw_post(api_port, "/v1/rank", json.dumps(body).encode(), {"X-API-Key": keys[orgs[i]]})
        )
        row = [None if not np.isfinite(v) else float(v) for v in X[i]]
        payload = {"dataframe_split": {"columns": names, "data": [row]}}
        ml.append(raw_post(mlflow_port, "/invocations", json.dumps(payload).encode(), {}))
    info = {
        "snapshot_managers": len(managers),
        "tenant_orgs": sorted(keys),
        "orgs_in_requests": sorted(usable),
        "managers_in_requests": len(rows),
        "scorable_nudges_per_org": {org: len(ids) for org, ids in candidates.items()},
        "n_features": len(names),
        "nudge_types": len(scored),
        "distinct_request_bodies": n,
    }
    return api, ml, info


# ------------------------------------------------------------------------------ orchestration


def median_of(runs: list[dict[str, Any]]) -> dict[str, Any]:
    keys = (
        "rps",
        "p50_ms",
        "p90_ms",
        "p99_ms",
        "max_ms",
        "server_cpu_ms_per_request",
        "load_avg_1min_before",
    )
    return {key: round(statistics.median(r[key] for r in runs), 3) for key in keys}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model-uri", default="models:/nudge-ranker@candidate")
    parser.add_argument("--tracking-uri", help="MLflow tracking URI (default: the environment's)")
    parser.add_argument("--requests", type=int, default=2000, help="measured requests, 1 client")
    parser.add_argument("--concurrent-requests", type=int, default=4000, help="at 32 clients")
    parser.add_argument("--max-seconds", type=float, default=30.0, help="bound per phase")
    parser.add_argument("--warmup", type=int, default=100, help="requests before each phase")
    parser.add_argument("--repeats", type=int, default=3, help="alternating runs; medians kept")
    parser.add_argument("--skip-mlflow", action="store_true", help="API only")
    parser.add_argument("--candidates", type=int, default=N_CANDIDATES, help="per request")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument("--client", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.client is not None:
        client_main(args.client)
        return

    import mlflow

    from serving.settings import hash_api_key

    if args.tracking_uri:
        os.environ["MLFLOW_TRACKING_URI"] = args.tracking_uri
    mlflow.set_tracking_uri(os.environ.get("MLFLOW_TRACKING_URI") or mlflow.get_tracking_uri())
    version, bundle_dir = resolve_model(args.model_uri)
    registered = args.model_uri.removeprefix("models:/").split("@")[0].split("/")[0]
    mlflow_uri = f"models:/{registered}/{version}"
    with np.load(bundle_dir / "snapshot.npz", allow_pickle=False) as snap:
        org_ids = sorted(set(snap["org_id"].astype(str)))
    keys = {org: f"bench-key-{org}" for org in org_ids}
    api_port, ml_port = free_port(), free_port()
    api_requests, ml_requests, info = build_requests(
        bundle_dir, keys, (api_port, ml_port), 2000, args.candidates, args.seed
    )
    phases = [(1, args.requests), (32, args.concurrent_requests)]
    runs: dict[str, dict[str, list[dict[str, Any]]]] = {
        "api": {"1_client": [], "32_clients": []},
        "mlflow": {"1_client": [], "32_clients": []},
    }
    with tempfile.TemporaryDirectory(prefix="bench_serve_") as tmp:
        workdir = Path(tmp)
        base_env = {**os.environ, "PYTHONUNBUFFERED": "1", "OMP_NUM_THREADS": "1"}
        # mlflow's scoring server execs `uvicorn` by name: put this interpreter's bin first.
        bin_dir = str(Path(sys.executable).parent)
        base_env["PATH"] = os.pathsep.join([bin_dir, base_env.get("PATH", "")])
        api_env = {
            **base_env,
            "NUDGE_MODEL_URI": f"models:/{registered}/{version}",
            "NUDGE_MODEL_POLL_SECONDS": "0",
            "NUDGE_MODEL_TIMEOUT_SECONDS": "600",
            "NUDGE_API_KEYS": ",".join(f"{hash_api_key(k)}={org}" for org, k in keys.items()),
            "NUDGE_DB_PATH": str(workdir / "events.db"),
            "NUDGE_FREQUENCY_CAP": "1000000",
            "NUDGE_LOG_LEVEL": "warning",
        }
        api = subprocess.Popen(
            [sys.executable, "-m", "serving", "--host", HOST, "--port", str(api_port)],
            env=api_env,
            stdout=subprocess.DEVNULL,
            stderr=(workdir / "api.log").open("wb"),
        )
        ml: subprocess.Popen[bytes] | None = None
        try:
            api_start = wait_ready(f"http://{HOST}:{api_port}/readyz", api, timeout=600)
            check = json.loads(
                http_request(
                    "POST",
                    f"http://{HOST}:{api_port}/v1/rank",
                    api_requests[0].split("\r\n\r\n", 1)[1].encode("latin-1"),
                    _headers_of(api_requests[0]),
                )
            )
            if check.get("model_version") != version or check.get("fallback"):
                raise SystemExit(f"API is not serving version {version}: {check}")
            ml_start = None
            if not args.skip_mlflow:
                ml = subprocess.Popen(
                    [
                        *(sys.executable, "-m", "mlflow", "models", "serve"),
                        *("-m", mlflow_uri, "--env-manager", "local"),
                        *("-h", HOST, "-p", str(ml_port), "-w", "1"),
                    ],
                    env=base_env,
                    stdout=subprocess.DEVNULL,
                    stderr=(workdir / "mlflow.log").open("wb"),
                )
                ml_start = wait_ready(f"http://{HOST}:{ml_port}/ping", ml, timeout=600)
                answer = json.loads(
                    http_request(
                        "POST",
                        f"http://{HOST}:{ml_port}/invocations",
                        ml_requests[0].split("\r\n\r\n", 1)[1].encode("latin-1"),
                        {"Content-Type": "application/json"},
                    )
                )
                if len(answer.get("predictions", [])) != 1:
                    raise SystemExit(f"unexpected mlflow answer: {str(answer)[:300]}")
            for repeat in range(args.repeats):
                for clients, n in phases:
                    label = "1_client" if clients == 1 else f"{clients}_clients"
                    before = server_counters(api_port)
                    result = run_phase(workdir, api_port, api_requests, clients, n, args, api.pid)
                    result["server_side"] = server_side(before, server_counters(api_port))
                    runs["api"][label].append(result)
                    print(f"[{repeat}] api    {label}: {_brief(result)}", file=sys.stderr)
                    if ml is not None:
                        result = run_phase(workdir, ml_port, ml_requests, clients, n, args, ml.pid)
                        runs["mlflow"][label].append(result)
                        print(f"[{repeat}] mlflow {label}: {_brief(result)}", file=sys.stderr)
        finally:
            stop(api)
            if ml is not None:
                stop(ml)

    medians = {
        server: {label: median_of(rs) for label, rs in phases_.items() if rs}
        for server, phases_ in runs.items()
    }
    api_m = medians["api"]
    ratios = None
    if not args.skip_mlflow:
        ml_m = medians["mlflow"]
        ratios = {
            label: {
                "rps_api_over_mlflow": round(api_m[label]["rps"] / ml_m[label]["rps"], 2),
                "p50_mlflow_over_api": round(ml_m[label]["p50_ms"] / api_m[label]["p50_ms"], 2),
                "p99_mlflow_over_api": round(ml_m[label]["p99_ms"] / api_m[label]["p99_ms"], 2),
            }
            for label in api_m
        }
    results: dict[str, Any] = {
        "benchmark": "serve: POST /v1/rank vs mlflow models serve, same registered model",
        "command": " ".join(["benchmarks/bench_serve.py", *sys.argv[1:]]),
        "setup": {
            "model_uri": args.model_uri,
            "registered_version": version,
            "mlflow_serve": f"mlflow models serve -m {mlflow_uri} --env-manager local -w 1",
            "api_serve": "python -m serving (run_serve: uvicorn, 1 worker), SQLite WAL events",
            "uvicorn_http_loop": _uvicorn_impl(),
            "candidates_per_request": args.candidates,
            "k": K,
            "frequency_cap": "raised to 1e6 so every request takes the full path",
            "mlflow_request": "dataframe_split, 1 row: the manager's encoded features "
            "(output: score and effects for every nudge type)",
            "client": "separate process, asyncio streams, raw HTTP/1.1 keep-alive, "
            "1 connection per client, latency client-side",
            "startup_s": {"api": round(api_start, 1), "mlflow": _round(ml_start)},
            "requests": {"1_client": args.requests, "32_clients": args.concurrent_requests},
            "max_seconds_per_phase": args.max_seconds,
            "warmup_per_phase": args.warmup,
            "repeats": args.repeats,
            **info,
            "cpu_count": os.cpu_count(),
            "python": platform.python_version(),
            "platform": platform.platform(),
        },
        "medians": medians,
        "ratios": ratios,
        "targets": TARGETS,
        "meets_targets": {
            "p50_ms_1_client": api_m["1_client"]["p50_ms"] < TARGETS["p50_ms_1_client"],
            "p99_ms_32_clients": api_m["32_clients"]["p99_ms"] < TARGETS["p99_ms_32_clients"],
            "rps_ratio_32_clients": None
            if ratios is None
            else ratios["32_clients"]["rps_api_over_mlflow"] >= TARGETS["rps_ratio_32_clients"],
        },
        "runs": runs,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    tmp_out = args.out.with_suffix(".json.tmp")
    tmp_out.write_text(json.dumps(results, indent=2) + "\n")
    tmp_out.replace(args.out)
    print(json.dumps({k: results[k] for k in ("medians", "ratios", "meets_targets")}, indent=2))


def _headers_of(raw: str) -> dict[str, str]:
    head = raw.split("\r\n\r\n", 1)[0].split("\r\n")[1:]
    pairs = (line.split(": ", 1) for line in head)
    return {name: value for name, value in pairs if name not in ("Host", "Content-Length")}


def _brief(result: dict[str, Any]) -> str:
    return (
        f"rps={result['rps']} p50={result['p50_ms']}ms p99={result['p99_ms']}ms "
        f"cpu/req={result['server_cpu_ms_per_request']}ms statuses={result['statuses']} "
        f"load={result['load_avg_1min_before']}"
    )


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 1)


def _uvicorn_impl() -> dict[str, bool]:
    import importlib.util

    return {
        "httptools_installed": importlib.util.find_spec("httptools") is not None,
        "uvloop_installed": importlib.util.find_spec("uvloop") is not None,
    }


if __name__ == "__main__":
    main()
