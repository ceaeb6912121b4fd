"""The analyst's home is the MLflow UI: check, in a real headless Chromium, that a training run
shows what an analyst needs (runs with their tags, headline metrics, the HTML report, the plots).

Skips when ``/usr/bin/chromium`` is absent, unless ``REQUIRE_BROWSER=1`` (CI), which turns the
skip into a failure. Budget: about a minute (one small training, one server, three pages).
"""

from __future__ import annotations

import html
import os
import re
import shutil
import socket
import subprocess
import sys
import threading
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from recommender.demo import Child, mlflow_ui_command, start_child, stop_children, wait_for_http
from tests.helpers import FAST_CONFIG

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
)


def _require_chromium() -> Path:
    if CHROMIUM.is_file() and os.access(CHROMIUM, os.X_OK):
        return CHROMIUM
    reason = f"{CHROMIUM} is absent (apt-get install -y chromium)"
    if os.environ.get("REQUIRE_BROWSER") == "1":
        pytest.fail(f"REQUIRE_BROWSER=1 but {reason}")
    pytest.skip(reason)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass(frozen=True)
class Ui:
    """A running MLflow UI over a store holding one promoted training run."""

    url: str
    experiment_id: str
    run_id: str
    folder: Path


TRAIN_SCRIPT = """
import sys
from pathlib import Path

import mlflow

from recommender.pipeline import run_train

result = run_train(Path(sys.argv[1]), Path(sys.argv[2]), promote=True, show_progress=False)
print(result.run_id, mlflow.get_run(result.run_id).info.experiment_id)
"""


@pytest.fixture(scope="module")
def ui(tmp_path_factory: pytest.TempPathFactory, sample_dir: Path) -> Iterator[Ui]:
    """Train on data/sample into a tmp store, then serve it with ``mlflow server``.

    Training runs in its own process so this store never mixes with MLflow's process-wide
    state (active experiment, cached stores) left by other tests.
    """
    _require_chromium()
    folder = tmp_path_factory.mktemp("analyst")
    uri = f"sqlite:///{folder / 'mlflow.db'}"
    config = folder / "fast.yaml"
    config.write_text(FAST_CONFIG, encoding="utf-8")
    stale = {"MLFLOW_EXPERIMENT_ID", "MLFLOW_REGISTRY_URI"}  # left by in-process MLflow use
    env = {k: v for k, v in os.environ.items() if k not in stale}
    env["MLFLOW_TRACKING_URI"] = uri
    done = subprocess.run(
        [sys.executable, "-c", TRAIN_SCRIPT, str(sample_dir), str(config)],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    run_id, experiment_id = done.stdout.split()[-2:]
    port = _free_port()
    cmd, extra = mlflow_ui_command(uri, "127.0.0.1", port)
    child: Child | None = None
    try:
        child = start_child("MLflow UI", cmd, {**env, **extra}, folder / "mlflow-ui.log", folder)
        url = f"http://127.0.0.1:{port}"
        wait_for_http(f"{url}/health", child, 90.0, threading.Event())
        yield Ui(url, experiment_id, run_id, folder)
    finally:
        if child is not None:
            stop_children([child])


def _render(ui: Ui, fragment: str, name: str) -> tuple[str, str]:
    """(DOM after the SPA has rendered, its visible text) of ``<ui.url>/#<fragment>``."""
    profile = ui.folder / f"chromium-{name}"
    argv = [
        str(_require_chromium()),
        *CHROMIUM_FLAGS,
        f"--user-data-dir={profile}",
        "--virtual-time-budget=15000",
        "--window-size=1400,1000",
        "--dump-dom",
        f"{ui.url}/#{fragment}",
    ]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=90, check=False)
    shutil.rmtree(profile, ignore_errors=True)
    assert done.returncode == 0, done.stderr[-2000:]
    dom = done.stdout
    text = re.sub(r"<script.*?</script>|<style.*?</style>", " ", dom, flags=re.S)
    text = html.unescape(re.sub(r"<[^>]+>", " ", text))
    return dom, re.sub(r"\s+", " ", text)


def test_experiment_page_lists_the_run_with_its_dataset(ui: Ui) -> None:
    _, text = _render(ui, f"/experiments/{ui.experiment_id}/runs", "experiment")
    assert "nudge-recommender" in text
    assert "1 matching run" in text
    assert "input-tables" in text  # the logged data fingerprint


def test_run_page_shows_headline_metrics_tags_and_registered_model(ui: Ui) -> None:
    _, text = _render(ui, f"/experiments/{ui.experiment_id}/runs/{ui.run_id}", "run")
    for metric in (
        "value_learned_dr",
        "value_learned_dr_ci_low",
        "dr_diff_learned_minus_logging",
        "value_logging_on_policy",
        "qini_",
    ):
        assert metric in text, metric
    for tag in ("org_ids", "data_window", "eval_window", "data_digest", "model_version"):
        assert f"{tag} :" in text, tag
    assert "gate.decision : promoted" in text
    assert "nudge-ranker v1" in text  # registered model link


def test_artifacts_tab_shows_report_and_renders_plots(ui: Ui) -> None:
    base = f"/experiments/{ui.experiment_id}/runs/{ui.run_id}/artifacts/evaluation"
    dom, text = _render(ui, f"{base}/plots/qini_curves.png", "artifacts")
    for name in ("report.html", "policy_values.png", "qini_curves.png", "segments.csv"):
        assert name in text, name
    # The UI fetched the PNG and shows it as an image (blob URL), not an error.
    assert re.search(r'<img[^>]*alt="evaluation/plots/qini_curves.png"[^>]*src="blob:', dom)
    query = f"path=evaluation/report.html&run_uuid={ui.run_id}"
    with urllib.request.urlopen(f"{ui.url}/get-artifact?{query}", timeout=10) as response:
        report = response.read().decode("utf-8")
    assert "Policy values (evaluation window)" in report
    assert "Uplift (Qini) curves per type" in report
