"""``run_demo``: fresh machine to champion, fast re-runs, clear failures, clean process stops."""

from __future__ import annotations

import json
import os
import shlex
import socket
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
from mlflow import MlflowClient

from recommender.demo import (
    DemoError,
    check_ports_free,
    curl_command,
    run_demo,
    start_child,
    stop_children,
)
from serving.settings import hash_api_key
from tests.demo.conftest import TINY_MANAGERS, TINY_SEED, DemoRun, capture_console


def test_demo_on_a_fresh_folder_simulates_trains_and_promotes_a_champion(
    demo_env: DemoRun,
) -> None:
    result = demo_env.result
    assert (demo_env.data / "managers.parquet").is_file()
    assert result.trained
    client = MlflowClient(tracking_uri=demo_env.tracking_uri, registry_uri=demo_env.tracking_uri)
    champion = client.get_model_version_by_alias(result.model_name, "champion")
    assert str(champion.version) == result.model_version
    assert result.model_uri == f"models:/{result.model_name}@champion"
    assert champion.tags.get("gate.decision") == "promoted"
    run = client.get_run(result.run_id)
    assert result.org_id in run.data.tags["org_ids"].split(",")


def test_demo_prints_the_key_once_and_a_curl_for_a_real_manager_of_that_org(
    demo_env: DemoRun,
) -> None:
    result, output = demo_env.result, demo_env.output
    lines = output.splitlines()
    assert lines.count(result.api_key) == 1
    assert lines.count(result.curl) == 1
    argv = shlex.split(result.curl)
    assert argv[argv.index("-H") + 1] == f"X-API-Key: {result.api_key}"
    body = json.loads(argv[argv.index("-d") + 1])
    assert body["manager_id"] == result.manager_id
    managers = pd.read_parquet(demo_env.data / "managers.parquet")
    ids, orgs = managers["manager_id"].astype(str), managers["org_id"].astype(str)
    org_of = dict(zip(ids, orgs, strict=True))
    assert org_of[result.manager_id] == result.org_id


def test_demo_key_file_holds_only_the_hash_and_is_git_ignored(demo_env: DemoRun) -> None:
    result = demo_env.result
    text = result.api_keys_file.read_text(encoding="utf-8")
    assert result.api_key not in text
    assert json.loads(text) == {hash_api_key(result.api_key): result.org_id}
    assert (result.api_keys_file.stat().st_mode & 0o077) == 0
    ignore = result.api_keys_file.parent / ".gitignore"
    assert "*" in ignore.read_text(encoding="utf-8").splitlines()


def test_demo_rerun_reuses_data_and_skips_training(demo_env: DemoRun) -> None:
    client = MlflowClient(tracking_uri=demo_env.tracking_uri)
    runs_before = client.search_runs([demo_env.result.experiment_id])
    mtime = (demo_env.data / "managers.parquet").stat().st_mtime_ns
    console, buffer = capture_console()
    start = time.perf_counter()
    again = run_demo(
        demo_env.data,
        TINY_MANAGERS,
        TINY_SEED,
        serve=False,
        config=demo_env.config,
        console=console,
    )
    elapsed = time.perf_counter() - start
    assert not again.trained
    assert again.model_version == demo_env.result.model_version
    assert len(client.search_runs([demo_env.result.experiment_id])) == len(runs_before)
    assert (demo_env.data / "managers.parquet").stat().st_mtime_ns == mtime
    assert "not retraining" in buffer.getvalue()
    assert again.api_key != demo_env.result.api_key  # a new key replaces the old one
    assert hash_api_key(demo_env.result.api_key) not in again.api_keys_file.read_text()
    assert elapsed < 15.0, f"re-run took {elapsed:.1f} s"


def _listening_socket() -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    sock.listen(1)
    return sock


def test_demo_with_a_busy_port_fails_first_with_a_clear_message(tmp_path: Path) -> None:
    data = tmp_path / "data"
    with _listening_socket() as busy:
        port = busy.getsockname()[1]
        with pytest.raises(DemoError, match=rf"port {port} .*already in use.*ranking API"):
            run_demo(data, TINY_MANAGERS, TINY_SEED, api_port=port, ui_port=0, serve=True)
    assert not data.exists()  # nothing simulated or trained before the check


def test_port_check_names_the_mlflow_ui_and_refuses_one_port_for_both() -> None:
    with _listening_socket() as busy:
        port = busy.getsockname()[1]
        with pytest.raises(DemoError, match="MLflow UI"):
            check_ports_free("127.0.0.1", [(0, "ranking API"), (port, "MLflow UI")])
    with pytest.raises(DemoError, match="cannot both use port 8123"):
        check_ports_free("127.0.0.1", [(8123, "ranking API"), (8123, "MLflow UI")])


def test_curl_command_survives_shell_quoting() -> None:
    curl = curl_command("http://127.0.0.1:8000", "demo_a'b", "m-1", "before_1on1")
    argv = shlex.split(curl)
    assert argv[:4] == ["curl", "-s", "-X", "POST"]
    assert "X-API-Key: demo_a'b" in argv
    assert json.loads(argv[-1]) == {"manager_id": "m-1", "context": "before_1on1", "k": 3}


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def test_stop_children_ends_each_child_and_what_it_started(tmp_path: Path) -> None:
    script = (
        "import subprocess, sys, time\n"
        "p = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)'])\n"
        f"open({str(tmp_path / 'pid')!r}, 'w').write(str(p.pid))\n"
        "time.sleep(60)\n"
    )
    child = start_child(
        "sleeper", [sys.executable, "-c", script], dict(os.environ), tmp_path / "log", tmp_path
    )
    deadline = time.monotonic() + 10
    while not (tmp_path / "pid").is_file() or not (tmp_path / "pid").read_text():
        assert time.monotonic() < deadline, "child did not start"
        time.sleep(0.05)
    grandchild = int((tmp_path / "pid").read_text())
    assert os.getpgid(child.process.pid) == child.process.pid != os.getpgid(0)
    stop_children([child], timeout=5)
    assert child.process.returncode is not None
    deadline = time.monotonic() + 5
    while _alive(grandchild) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not _alive(grandchild)
