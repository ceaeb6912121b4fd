"""``recommender demo``: from a fresh machine to a served champion and the MLflow UI in one go.

Steps: simulate the default organisations into ``data`` (unless present), validate, train,
evaluate and promote (``run_train`` with the promotion gate; skipped when the champion was
trained on the same data fingerprint), then start the ranking API and the MLflow UI as child
processes and print their URLs, a demo API key and a ready-to-paste ``curl``.

Demo state lives in ``<data>/.demo/`` (git-ignored by its own ``.gitignore``): the API key
file holds only the SHA-256 of the key; the clear key is printed once per run and a new one
replaces it at every run. Nothing here runs at import.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import shlex
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import IO, Any

from rich.console import Console
from rich.panel import Panel

STATE_DIR = ".demo"
"""Folder inside the data folder that holds the demo's key hash, event store and logs."""
KEYS_FILE = "api_keys.json"
EVENTS_DB = "nudge_events.db"
READY_TIMEOUT_S = 120.0
STOP_TIMEOUT_S = 10.0
DEMO_CONTEXT = "before_1on1"


class DemoError(RuntimeError):
    """The demo cannot go on; the message says why and what to do."""


@dataclass(frozen=True)
class DemoResult:
    """What ``run_demo`` set up (``api_key`` is the clear key: never log or store it)."""

    data: Path
    tracking_uri: str
    experiment_id: str
    model_name: str
    model_version: str
    model_uri: str
    run_id: str
    trained: bool
    org_id: str
    manager_id: str
    context: str
    api_key: str
    api_keys_file: Path
    api_url: str
    ui_url: str
    curl: str


# --------------------------------------------------------------------------- ports


def check_ports_free(host: str, ports: Sequence[tuple[int, str]]) -> None:
    """Raise ``DemoError`` naming the first (port, purpose) that cannot be bound on ``host``."""
    seen: dict[int, str] = {}
    for port, purpose in ports:
        if port in seen:
            raise DemoError(f"the {purpose} and the {seen[port]} cannot both use port {port}")
        seen[port] = purpose
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            # Same option the servers use, so a port in TIME_WAIT does not count as busy.
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                sock.bind((host, port))
            except OSError as error:
                raise DemoError(
                    f"port {port} on {host} is already in use ({error.strerror}); the demo needs "
                    f"it for the {purpose}. Stop whatever listens there or choose another port."
                ) from None


# --------------------------------------------------------------------------- data


def _has_tables(data: Path) -> bool:
    return any(data.glob("managers.*"))


def ensure_data(data: Path, managers: int, seed: int, console: Console) -> bool:
    """Simulate the default organisations into ``data`` unless tables are there already.

    Returns True when it simulated, False when it reused existing tables.
    """
    from recommender.simulation import SimulationConfig, simulate_organisation, write_simulation

    if _has_tables(data):
        console.print(f"[green]✓[/] reusing the tables in {data}")
        return False
    config = SimulationConfig(n_managers=managers, seed=seed)
    with console.status(f"simulating {config.n_orgs} organisations, {managers:,} managers ..."):
        result = simulate_organisation(config)
        write_simulation(result, data, fmt="parquet")
    console.print(f"[green]✓[/] simulated {managers:,} managers (seed {seed}) into {data}")
    return True


def _validate(data: Path, console: Console) -> tuple[Any, str]:
    """Load and validate ``data`` (``DataValidationError`` propagates); returns the dataset and
    the digest of the data fingerprint (the one ``run_train`` tags runs and versions with)."""
    from recommender import tracking
    from recommender.data import load_dataset

    with console.status("validating the tables ..."):
        dataset = load_dataset(data)
        counts = {table: len(frame) for table, frame in dataset.tables().items()}
        digest = tracking.fingerprint_digest(tracking.data_fingerprint(data, counts))
    rows = ", ".join(f"{table} {n:,}" for table, n in counts.items())
    console.print(f"[green]✓[/] valid: {rows} (data digest {digest})")
    return dataset, digest


# --------------------------------------------------------------------------- model


def _version_tag(name: str, version: str, key: str) -> str | None:
    from mlflow import MlflowClient

    return MlflowClient().get_model_version(name, version).tags.get(key)


def ensure_champion(
    data: Path,
    digest: str,
    config_path: Path | None,
    retrain: bool,
    console: Console,
) -> tuple[str, str, str, bool, str]:
    """Train and gate a model unless the champion was trained on the same data digest.

    Returns (model name, served version, served alias, trained, experiment id). The served
    alias is ``champion``, or ``candidate`` when the gate refused the only model there is.
    """
    from recommender import tracking
    from recommender.config import load_config
    from recommender.pipeline import run_train
    from recommender.registry import CANDIDATE, CHAMPION, alias_version

    config = load_config(config_path)
    name = config.promotion.registered_model
    experiment_id = tracking.configure(config.tracking.experiment)
    champion = alias_version(name, CHAMPION)
    if (
        champion is not None
        and not retrain
        and _version_tag(name, champion, "data_digest") == digest
    ):
        console.print(
            f"[green]✓[/] champion {name} v{champion} was trained on this data "
            f"(digest {digest}): not retraining (pass --retrain to train again)"
        )
        return name, champion, CHAMPION, False, experiment_id
    console.print("training, evaluating off-policy on the later window, promotion gate ...")
    result = run_train(data, config_path, promote=True, show_progress=console.is_terminal)
    verdict = "promoted to champion" if result.promoted else "not promoted"
    console.print(
        f"[green]✓[/] trained run {result.run_id}: {name} v{result.version} {verdict} "
        f"({result.gate_reason})"
    )
    _print_headline(result.metrics, console)
    champion = alias_version(name, CHAMPION)
    if champion is not None:
        return name, champion, CHAMPION, True, experiment_id
    console.print(
        f"[yellow]![/] no champion: serving the refused candidate v{result.version} for the demo"
    )
    candidate = alias_version(name, CANDIDATE) or result.version
    return name, candidate, CANDIDATE, True, experiment_id


def _print_headline(metrics: dict[str, float], console: Console) -> None:
    key = "dr_diff_learned_minus_logging"
    if key in metrics:
        console.print(
            f"  learned policy - logging policy (DR, per manager-period): "
            f"{metrics[key]:+.3f} [{metrics.get(key + '_ci_low', float('nan')):+.3f}, "
            f"{metrics.get(key + '_ci_high', float('nan')):+.3f}]"
        )


def pick_manager(model_uri: str, managers: Any) -> tuple[str, str, str]:
    """(org id, manager id, context) for the demo request: the first organisation the model
    knows, its first manager in the model's snapshot, and a context its catalogue covers."""
    from recommender.bundle import load_effect_model

    bundle = load_effect_model(model_uri)
    orgs = sorted(str(org) for org in bundle.spec.categories.get("org_id", ()))
    for org in orgs:
        ids = sorted(managers.loc[managers["org_id"].astype(str) == org, "manager_id"].astype(str))
        for manager in ids:
            if bundle.manager_row(org, manager) is not None:
                contexts = Counter(c for e in bundle.catalogue(org) for c in e.contexts)
                context = (
                    DEMO_CONTEXT if DEMO_CONTEXT in contexts else contexts.most_common(1)[0][0]
                )
                return org, manager, context
    raise DemoError(f"the model {model_uri} knows no manager of the data's organisations")


# --------------------------------------------------------------------------- API key


def state_dir(data: Path) -> Path:
    """``<data>/.demo``, created with a ``.gitignore`` that ignores everything in it."""
    folder = data / STATE_DIR
    folder.mkdir(parents=True, exist_ok=True)
    ignore = folder / ".gitignore"
    if not ignore.is_file():
        ignore.write_text("# demo keys, event store and logs: never commit\n*\n", encoding="utf-8")
    return folder


def issue_demo_key(data: Path, org_id: str) -> tuple[str, Path]:
    """A fresh random API key for ``org_id``; only its SHA-256 is written (to
    ``<data>/.demo/api_keys.json``, mode 600), replacing the previous demo key.

    Returns (clear key, key file).
    """
    from serving.settings import hash_api_key

    key = "demo_" + secrets.token_urlsafe(32)
    path = state_dir(data) / KEYS_FILE
    tmp = path.with_suffix(".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        json.dump({hash_api_key(key): org_id}, handle)
    os.replace(tmp, path)
    return key, path


def curl_command(api_url: str, key: str, manager_id: str, context: str) -> str:
    """A ``curl`` that ranks nudges for ``manager_id`` (quoted for POSIX shells)."""
    body = json.dumps({"manager_id": manager_id, "context": context, "k": 3})
    return (
        f"curl -s -X POST {api_url}/v1/rank -H {shlex.quote('X-API-Key: ' + key)} "
        f"-H 'Content-Type: application/json' -d {shlex.quote(body)}"
    )


# --------------------------------------------------------------------------- processes


def mlflow_ui_command(tracking_uri: str, host: str, port: int) -> tuple[list[str], dict[str, str]]:
    """(argv, extra env) of an MLflow server on the same SQLite store and artifact root as
    training (one worker, no background job runners)."""
    from recommender import tracking

    artifacts = tracking.artifact_root(tracking_uri) or ""
    cmd = [sys.executable, "-m", "mlflow", "server", "--backend-store-uri", tracking_uri]
    cmd += ["--default-artifact-root", artifacts, "--artifacts-destination", artifacts]
    cmd += ["--host", host, "--port", str(port), "--workers", "1"]
    return cmd, {"MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}


@dataclass
class Child:
    name: str
    process: subprocess.Popen[bytes]
    log: Path


def start_child(name: str, cmd: list[str], env: dict[str, str], log: Path, cwd: Path) -> Child:
    """Start ``cmd`` in its own process group (Ctrl-C reaches only us; we stop it), output to
    ``log``."""
    handle: IO[bytes]
    with log.open("wb") as handle:
        process = subprocess.Popen(
            cmd,
            cwd=cwd,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=handle,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    return Child(name, process, log)


def stop_children(children: Sequence[Child], timeout: float = STOP_TIMEOUT_S) -> None:
    """SIGTERM every child's process group, wait up to ``timeout`` s, then SIGKILL."""
    for child in children:
        if child.process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(child.process.pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    for child in children:
        try:
            child.process.wait(max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(child.process.pid, signal.SIGKILL)
            child.process.wait()
        # Helpers the child started in its group (e.g. MLflow's job runners) go too.
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(child.process.pid, signal.SIGKILL)


def _tail(path: Path, lines: int = 15) -> str:
    try:
        return "\n".join(path.read_text(encoding="utf-8", errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


def wait_for_http(url: str, child: Child, timeout: float, stop: threading.Event) -> None:
    """Poll ``url`` until it answers 2xx; DemoError when the child exits or time runs out."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and not stop.is_set():
        if child.process.poll() is not None:
            raise DemoError(
                f"the {child.name} exited with code {child.process.returncode}; "
                f"last lines of {child.log}:\n{_tail(child.log)}"
            )
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                if 200 <= response.status < 300:
                    return
        except (urllib.error.URLError, OSError):
            pass
        time.sleep(0.5)
    if not stop.is_set():
        raise DemoError(f"the {child.name} did not answer {url} within {timeout:.0f} s")


@contextlib.contextmanager
def _stop_on_signals() -> Iterator[threading.Event]:
    """An event set by SIGINT/SIGTERM while the block runs (handlers restored after)."""
    stop = threading.Event()
    if threading.current_thread() is not threading.main_thread():
        yield stop
        return

    def handler(signum: int, frame: FrameType | None) -> None:
        stop.set()

    previous = {sig: signal.signal(sig, handler) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield stop
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


def _serve(
    result: DemoResult,
    host: str,
    api_port: int,
    ui_port: int,
    start_ui: bool,
    console: Console,
) -> None:
    """Run the API (and the MLflow UI) until SIGINT/SIGTERM or a child dies; stop both."""
    from recommender import tracking

    folder = state_dir(result.data)
    root = tracking.project_root()
    # MLflow writes MLFLOW_EXPERIMENT_ID / MLFLOW_REGISTRY_URI into os.environ when it is
    # configured; children get the store explicitly instead.
    stale = {"MLFLOW_EXPERIMENT_ID", "MLFLOW_REGISTRY_URI"}
    base = {k: v for k, v in os.environ.items() if not k.startswith("NUDGE_") and k not in stale}
    api_env = {
        **base,
        "MLFLOW_TRACKING_URI": result.tracking_uri,
        "NUDGE_MODEL_URI": result.model_uri,
        "NUDGE_API_KEYS_FILE": str(result.api_keys_file.resolve()),
        "NUDGE_DB_PATH": str((folder / EVENTS_DB).resolve()),
    }
    children: list[Child] = []
    with _stop_on_signals() as stop:
        try:
            children.append(
                start_child(
                    "ranking API",
                    [sys.executable, "-m", "serving", "--host", host, "--port", str(api_port)],
                    api_env,
                    folder / "api.log",
                    root,
                )
            )
            if start_ui:
                cmd, extra = mlflow_ui_command(result.tracking_uri, host, ui_port)
                ui_env = {**base, **extra}
                children.append(
                    start_child("MLflow UI", cmd, ui_env, folder / "mlflow-ui.log", root)
                )
            with console.status("starting the ranking API and the MLflow UI ..."):
                wait_for_http(f"{result.api_url}/readyz", children[0], READY_TIMEOUT_S, stop)
                if start_ui:
                    wait_for_http(
                        f"http://{host}:{ui_port}/health", children[1], READY_TIMEOUT_S, stop
                    )
            if not stop.is_set():
                _print_running(result, children, console)
            while not stop.wait(0.5):
                dead = [c for c in children if c.process.poll() is not None]
                if dead:
                    child = dead[0]
                    raise DemoError(
                        f"the {child.name} stopped (code {child.process.returncode}); "
                        f"last lines of {child.log}:\n{_tail(child.log)}"
                    )
        finally:
            if children:
                console.print("stopping ...")
                stop_children(children)
                console.print("[green]✓[/] stopped the ranking API and the MLflow UI")


# --------------------------------------------------------------------------- entry


def run_demo(
    data: Path,
    managers: int = 2000,
    seed: int = 0,
    api_port: int = 8000,
    ui_port: int = 5000,
    serve: bool = True,
    *,
    retrain: bool = False,
    config: Path | None = None,
    host: str = "127.0.0.1",
    console: Console | None = None,
) -> DemoResult:
    """Simulate (unless present), validate, train + gate (unless the champion saw this data),
    issue a demo API key, then serve the API and the MLflow UI until Ctrl-C (``serve=True``).

    data: folder of the six tables (simulated there when it has none). managers, seed: size
    and seed of the simulation. api_port, ui_port: TCP ports on ``host`` (checked free first).
    serve: False stops after printing the key and the curl (tests, CI). retrain: train even
    when the champion was trained on the same data digest. config: training YAML (default:
    built-in). Raises ``DemoError`` (busy port, no usable model, a server failing to start),
    ``DataValidationError`` (bad tables) or ``ConfigError`` (bad config).
    """
    from recommender import tracking
    from recommender.registry import CHAMPION

    console = console or Console(highlight=False)
    data = Path(data)
    uri = tracking.tracking_uri()
    local_store = uri.startswith("sqlite:///")
    if serve:
        ports = [(api_port, "ranking API")]
        if local_store:
            ports.append((ui_port, "MLflow UI"))
        check_ports_free(host, ports)

    ensure_data(data, managers, seed, console)
    dataset, digest = _validate(data, console)
    name, version, alias, trained, experiment_id = ensure_champion(
        data, digest, config, retrain, console
    )

    import mlflow

    run_id = str(mlflow.MlflowClient().get_model_version(name, version).run_id or "")
    model_uri = f"models:/{name}@{alias}"
    with console.status("loading the served model ..."):
        org, manager, context = pick_manager(model_uri, dataset.managers)
    key, key_file = issue_demo_key(data, org)
    api_url = f"http://{host}:{api_port}"
    ui_url = f"http://{host}:{ui_port}" if local_store else uri
    result = DemoResult(
        data=data,
        tracking_uri=uri,
        experiment_id=experiment_id,
        model_name=name,
        model_version=version,
        model_uri=model_uri,
        run_id=run_id,
        trained=trained,
        org_id=org,
        manager_id=manager,
        context=context,
        api_key=key,
        api_keys_file=key_file,
        api_url=api_url,
        ui_url=ui_url,
        curl=curl_command(api_url, key, manager, context),
    )
    _print_summary(result, alias == CHAMPION, serve, console)
    if serve:
        _serve(result, host, api_port, ui_port, local_store, console)
    return result


def _run_page(result: DemoResult) -> str:
    return f"{result.ui_url}/#/experiments/{result.experiment_id}/runs/{result.run_id}"


def _print_summary(result: DemoResult, is_champion: bool, serve: bool, console: Console) -> None:
    role = "champion" if is_champion else "candidate (not promoted)"
    lines = [
        f"model        {result.model_name} v{result.model_version} ({role})",
        f"run          {result.run_id}",
        f"organisation {result.org_id} (the demo key sees only its managers)",
        f"key file     {result.api_keys_file} (SHA-256 only; a new key every run)",
    ]
    if not serve:
        lines.append("servers      not started (serve=False)")
    console.print(Panel("\n".join(lines), title="nudge recommender demo", expand=False))
    if not serve:  # when serving, they come once the servers answer
        _print_key_and_curl(result, console)


def _print_key_and_curl(result: DemoResult, console: Console) -> None:
    """Key and curl on lines of their own, never wrapped, so they paste as they are."""
    console.print("demo API key (shown once):", style="bold")
    console.print(result.api_key, soft_wrap=True, markup=False, highlight=False)
    console.print("rank nudges for one manager:", style="bold")
    console.print(result.curl, soft_wrap=True, markup=False, highlight=False)


def _print_running(result: DemoResult, children: Sequence[Child], console: Console) -> None:
    lines = [
        f"ranking API  {result.api_url}  (OpenAPI docs {result.api_url}/docs)",
        f"MLflow UI    {result.ui_url}/#/experiments/{result.experiment_id}/runs",
        f"this run     {_run_page(result)}",
        "logs         " + ", ".join(str(c.log) for c in children),
        "Ctrl-C stops both.",
    ]
    console.rule("running")
    for line in lines:
        console.print(line, soft_wrap=True, markup=False, highlight=False)
    _print_key_and_curl(result, console)
