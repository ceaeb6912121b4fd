"""Seeded fixtures for the exploration tests: a small simulated export, loaded as a Dataset."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from recommender.data import Dataset, load_dataset
from recommender.simulation import SimulationConfig, simulate_organisation, write_simulation


@pytest.fixture(scope="session")
def small_dataset(tmp_path_factory: pytest.TempPathFactory) -> Dataset:
    """A seeded simulated export of ~60 managers in 2 orgs over 1.5 years, validated on load."""
    result = simulate_organisation(SimulationConfig(n_managers=60, n_orgs=2, years=1.5, seed=11))
    folder = tmp_path_factory.mktemp("export")
    write_simulation(result, folder)
    return load_dataset(folder)


@pytest.fixture
def groups_4_and_big() -> pd.DataFrame:
    """Rows of 3 segments: ``small`` with 4 managers (8 rows), ``a`` with 30, ``b`` with 12."""
    rng = np.random.default_rng(0)
    segments = ["small"] * 8 + ["a"] * 60 + ["b"] * 24
    managers = (
        [f"s{i % 4}" for i in range(8)]
        + [f"a{i % 30}" for i in range(60)]
        + [f"b{i % 12}" for i in range(24)]
    )
    return pd.DataFrame(
        {
            "segment": segments,
            "manager_id": managers,
            "value": rng.normal(size=len(segments)),
            "score": rng.uniform(0, 100, size=len(segments)),
        }
    )
