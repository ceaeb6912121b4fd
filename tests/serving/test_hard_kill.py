"""Durability: a uvicorn process killed with SIGKILL loses no acknowledged decision or event."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from recommender.events import EventStore, sqlite_url
from serving.settings import hash_api_key
from tests.serving.conftest import H1, KEY_1, KEY_2, ORG_1, ORG_2


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.mark.skipif(sys.platform == "win32", reason="SIGKILL is POSIX")
def test_sigkill_loses_no_acknowledged_write(tmp_path: Path, catalogue_csv: Path) -> None:
    port = free_port()
    db = tmp_path / "events.db"
    env = {
        **os.environ,
        "NUDGE_API_KEYS": f"{hash_api_key(KEY_1)}={ORG_1},{hash_api_key(KEY_2)}={ORG_2}",
        "NUDGE_DB_PATH": str(db),
        "NUDGE_MODEL_URI": "",
        "NUDGE_FALLBACK_CATALOGUE": str(catalogue_csv),
        "NUDGE_HOLDOUT_SHARE": "0",
        "NUDGE_LOG_LEVEL": "warning",
    }
    process = subprocess.Popen(
        [sys.executable, "-m", "serving", "--port", str(port)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 30
        while True:
            try:
                if httpx.get(f"{base}/readyz", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert process.poll() is None, process.stderr.read().decode()  # type: ignore[union-attr]
            assert time.monotonic() < deadline, "server did not become ready"
            time.sleep(0.1)
        ids = []
        for i in range(5):
            body = httpx.post(
                f"{base}/v1/rank", json={"manager_id": f"m1-00{i + 1}"}, headers=H1
            ).json()
            ids.append(body["event_id"])
            event = httpx.post(
                f"{base}/v1/events",
                json={"event_id": body["event_id"], "type": "opened"},
                headers=H1,
            )
            assert event.status_code == 200
    finally:
        process.send_signal(signal.SIGKILL)
        process.wait(10)
        if process.stderr is not None:
            process.stderr.close()
    assert process.returncode == -signal.SIGKILL
    store = EventStore(sqlite_url(db), create=False)
    try:
        for event_id in ids:
            assert store.get_decision(ORG_1, event_id) is not None
            assert store.count_events(ORG_1, event_id) == 1
            assert store.record_event(ORG_1, event_id, "opened").duplicate is True
    finally:
        store.dispose()
