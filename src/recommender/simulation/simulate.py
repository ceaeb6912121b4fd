"""Run the logging policy on a fresh world for every period: the historical data set."""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from recommender.simulation.config import SimulationConfig
from recommender.simulation.world import World


@dataclass(frozen=True)
class SimulatedOrganisation:
    """A simulated data set.

    tables: the six contract tables keyed by ``constants.TABLES`` (loader dtypes).
    ground_truth: true expected changes per manager x period x arm (never used for training).
    config: what was simulated.
    """

    tables: dict[str, pd.DataFrame]
    ground_truth: pd.DataFrame
    config: SimulationConfig


def simulate_organisation(config: SimulationConfig) -> SimulatedOrganisation:
    """Simulate ``config`` under the historical logging policy; deterministic given the seed."""
    world = World(config)
    while not world.done:
        world.run_period(world.logging_assignment())
    return SimulatedOrganisation(
        tables=world.tables(), ground_truth=world.ground_truth(), config=config
    )
