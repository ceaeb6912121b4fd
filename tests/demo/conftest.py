"""Fixtures for the demo tests: one tiny simulated organisation trained into a tmp MLflow store."""

from __future__ import annotations

import io
from dataclasses import dataclass
from pathlib import Path

import pytest
from rich.console import Console

from recommender.demo import DemoResult, run_demo
from tests.helpers import FAST_CONFIG

TINY_MANAGERS = 120
TINY_SEED = 3


@dataclass(frozen=True)
class DemoRun:
    """A finished ``run_demo(serve=False)``: its result, printed text and environment."""

    result: DemoResult
    output: str
    data: Path
    config: Path
    tracking_uri: str


def capture_console() -> tuple[Console, io.StringIO]:
    """A wide, colourless console writing into a buffer."""
    buffer = io.StringIO()
    return Console(file=buffer, width=300, color_system=None, force_terminal=False), buffer


@pytest.fixture(scope="session")
def first_demo(tmp_path_factory: pytest.TempPathFactory) -> DemoRun:
    """``run_demo(serve=False)`` on a fresh folder with its own SQLite MLflow store:
    simulates, validates, trains, promotes."""
    root = tmp_path_factory.mktemp("demo")
    uri = f"sqlite:///{root / 'mlflow.db'}"
    config = root / "fast.yaml"
    config.write_text(FAST_CONFIG, encoding="utf-8")
    console, buffer = capture_console()
    data = root / "data"
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("MLFLOW_TRACKING_URI", uri)
        # MLflow sets these in os.environ when configured: undo that after the run too.
        for name in ("MLFLOW_EXPERIMENT_ID", "MLFLOW_REGISTRY_URI"):
            patch.setenv(name, "")  # recorded, so the teardown removes what MLflow sets
            patch.delenv(name)
        result = run_demo(
            data, TINY_MANAGERS, TINY_SEED, serve=False, config=config, console=console
        )
    return DemoRun(result, buffer.getvalue(), data, config, uri)


@pytest.fixture
def demo_env(first_demo: DemoRun, monkeypatch: pytest.MonkeyPatch) -> DemoRun:
    """The first demo run, with its tracking URI set for the test."""
    monkeypatch.setenv("MLFLOW_TRACKING_URI", first_demo.tracking_uri)
    for name in ("MLFLOW_EXPERIMENT_ID", "MLFLOW_REGISTRY_URI"):
        monkeypatch.setenv(name, "")  # recorded, so the teardown removes what MLflow sets
        monkeypatch.delenv(name)
    return first_demo
