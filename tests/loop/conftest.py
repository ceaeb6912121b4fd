"""Fixtures for the closed-loop tests: a tiny world after its logging-policy history."""

from __future__ import annotations

from pathlib import Path

import pytest

from recommender.simulation import SimulationConfig, World

TEST_CONFIG = Path(__file__).with_name("loop_test.yaml")
"""Tiny training config: two learners, 20 trees, 50 bootstraps."""


@pytest.fixture
def world() -> World:
    """250 managers in 2 orgs, two periods decided by the historical logging policy."""
    world = World(SimulationConfig(n_managers=250, n_orgs=2, years=3.0, seed=7))
    for _ in range(2):
        world.run_period(world.logging_assignment())
    return world


@pytest.fixture
def mlflow_uri(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """A private MLflow store for the test."""
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    return uri
