"""SimulationConfig validation and the survey calendar."""

from __future__ import annotations

import datetime as dt
from typing import Any

import numpy as np
import pytest

from recommender.simulation import SimulationConfig
from recommender.simulation.config import build_calendar


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("n_managers", 5),
        ("n_managers", 2000.0),
        ("n_managers", True),
        ("n_orgs", 0),
        ("n_orgs", 500),
        ("years", 0.5),
        ("years", float("nan")),
        ("years", "3"),
        ("seed", -1),
        ("seed", 1.5),
        ("start_date", "2023-01-01"),
        ("start_date", dt.datetime(2023, 1, 1)),
    ],
)
def test_config_rejects_bad_value_naming_the_field(field: str, value: Any) -> None:
    with pytest.raises(ValueError, match=rf"^{field}:"):
        SimulationConfig(**{field: value})


def test_config_rejects_more_orgs_than_managers_can_fill() -> None:
    with pytest.raises(ValueError, match=r"^n_orgs:"):
        SimulationConfig(n_managers=20, n_orgs=5)


def test_config_is_frozen_with_documented_defaults() -> None:
    config = SimulationConfig()
    assert (config.n_managers, config.n_orgs, config.years, config.seed) == (2000, 3, 3.0, 0)
    assert config.start_date == dt.date(2023, 1, 1)
    with pytest.raises(AttributeError):
        config.seed = 1  # type: ignore[misc]


def test_calendar_has_half_yearly_360_and_quarterly_engagement_waves() -> None:
    calendar = build_calendar(SimulationConfig(years=3.0))
    waves = calendar.waves_360.astype(str).tolist()
    assert waves == [f"{y}-{m}-01" for y in (2023, 2024, 2025) for m in ("03", "09")]
    assert calendar.n_periods == 5
    engagement = calendar.waves_engagement
    assert len(engagement) == 2 * len(waves) - 1
    assert np.isin(calendar.waves_360, engagement).all()
    assert len(calendar.engagement_within(0)) == 1


def test_calendar_of_one_year_holds_one_period() -> None:
    calendar = build_calendar(SimulationConfig(years=1.0, start_date=dt.date(2023, 3, 2)))
    assert calendar.n_periods == 1
