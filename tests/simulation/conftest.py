"""Fixtures for the simulation tests: one small simulated organisation per session."""

from __future__ import annotations

from pathlib import Path

import pytest

from recommender.simulation import (
    SimulatedOrganisation,
    SimulationConfig,
    simulate_organisation,
    write_simulation,
)

SMALL = SimulationConfig(n_managers=300, n_orgs=2, years=2.0, seed=3)
"""Small enough for a fast suite, large enough for the statistical checks."""


@pytest.fixture(scope="session")
def small_config() -> SimulationConfig:
    """Config of the shared small organisation."""
    return SMALL


@pytest.fixture(scope="session")
def small_org() -> SimulatedOrganisation:
    """The shared small organisation (treat as read-only)."""
    return simulate_organisation(SMALL)


@pytest.fixture(scope="session")
def small_parquet_dir(
    small_org: SimulatedOrganisation, tmp_path_factory: pytest.TempPathFactory
) -> Path:
    """The shared small organisation written as Parquet."""
    out = tmp_path_factory.mktemp("sim") / "parquet"
    write_simulation(small_org, out, fmt="parquet")
    return out
