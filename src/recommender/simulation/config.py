"""Simulation settings and the survey calendar they imply."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import numpy as np

MAX_MANAGERS = 2_000_000
MAX_ORGS = 50
MIN_MANAGERS_PER_ORG = 5
MAX_YEARS = 20.0
DAYS_PER_YEAR = 365.25

WAVE_360_MONTHS = (3, 9)
"""360 feedback waves close on the 1st of March and of September."""
ENGAGEMENT_MONTHS = (3, 6, 9, 12)
"""Engagement pulses close on the 1st of every quarter month; two coincide with 360 waves."""


@dataclass(frozen=True)
class SimulationConfig:
    """What to simulate.

    n_managers: managers employed on ``start_date``, all organisations together (joiners come on
        top of these during the window).
    n_orgs: organisations, each with its own competency model and nudge catalogue.
    years: length of the simulated window in years (at least one full 360 period).
    seed: random seed; the same config gives byte-identical output.
    start_date: first day of the window.
    """

    n_managers: int = 2000
    n_orgs: int = 3
    years: float = 3.0
    seed: int = 0
    start_date: dt.date = dt.date(2023, 1, 1)

    def __post_init__(self) -> None:
        _require_int("n_managers", self.n_managers, 10, MAX_MANAGERS)
        _require_int("n_orgs", self.n_orgs, 1, MAX_ORGS)
        if self.n_orgs * MIN_MANAGERS_PER_ORG > self.n_managers:
            raise ValueError(
                f"n_orgs: {self.n_orgs} organisations need at least "
                f"{self.n_orgs * MIN_MANAGERS_PER_ORG} managers ({MIN_MANAGERS_PER_ORG} each), "
                f"got n_managers={self.n_managers}"
            )
        if isinstance(self.years, bool) or not isinstance(self.years, int | float):
            raise ValueError(f"years: must be a number, got {self.years!r}")
        if not np.isfinite(self.years) or not 1.0 <= self.years <= MAX_YEARS:
            raise ValueError(f"years: must be in [1, {MAX_YEARS:g}], got {self.years!r}")
        _require_int("seed", self.seed, 0, 2**63 - 1)
        if not isinstance(self.start_date, dt.date) or isinstance(self.start_date, dt.datetime):
            raise ValueError(f"start_date: must be a datetime.date, got {self.start_date!r}")

    @property
    def end_date(self) -> dt.date:
        """First day after the window: whole years to the same calendar day, the rest in days
        (so any window of at least one year holds two 360 waves)."""
        whole = int(self.years)
        year = self.start_date.year + whole
        day = min(self.start_date.day, 28) if self.start_date.month == 2 else self.start_date.day
        anniversary = self.start_date.replace(year=year, day=day)
        return anniversary + dt.timedelta(days=round((self.years - whole) * DAYS_PER_YEAR))


def _require_int(field: str, value: object, low: int, high: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int | np.integer):
        raise ValueError(f"{field}: must be an integer, got {value!r}")
    if not low <= int(value) <= high:
        raise ValueError(f"{field}: must be in [{low}, {high}], got {value!r}")


@dataclass(frozen=True)
class Calendar:
    """Survey dates of a window, as ``datetime64[D]`` arrays.

    start, end: window bounds (end exclusive).
    waves_360: 360 wave dates, shape (n_waves,); period k is [waves_360[k], waves_360[k + 1]).
    waves_engagement: engagement wave dates between the first and last 360 wave (inclusive),
        shape (n_engagement_waves,).
    """

    start: np.datetime64
    end: np.datetime64
    waves_360: np.ndarray
    waves_engagement: np.ndarray

    @property
    def n_periods(self) -> int:
        """Periods with a 360 wave at both ends."""
        return len(self.waves_360) - 1

    def period_days(self, k: int) -> int:
        """Length of period ``k`` in days."""
        return int((self.waves_360[k + 1] - self.waves_360[k]).astype(int))

    def engagement_within(self, k: int) -> np.ndarray:
        """Engagement waves strictly inside period ``k`` (the mid-period pulses)."""
        w = self.waves_engagement
        return w[(w > self.waves_360[k]) & (w < self.waves_360[k + 1])]


def build_calendar(config: SimulationConfig) -> Calendar:
    """360 waves (1 Mar, 1 Sep) and engagement waves (quarterly) within the config's window."""
    start = np.datetime64(config.start_date, "D")
    end = np.datetime64(config.end_date, "D")
    years = range(config.start_date.year, config.end_date.year + 1)

    def dates(months: tuple[int, ...]) -> np.ndarray:
        all_dates = np.array(
            [np.datetime64(dt.date(y, m, 1), "D") for y in years for m in months],
            dtype="datetime64[D]",
        )
        return all_dates[(all_dates >= start) & (all_dates < end)]

    waves_360 = dates(WAVE_360_MONTHS)
    engagement = dates(ENGAGEMENT_MONTHS)
    engagement = engagement[(engagement >= waves_360[0]) & (engagement <= waves_360[-1])]
    if len(waves_360) < 2:  # pragma: no cover - impossible for years >= 1
        raise ValueError("years: window holds fewer than two 360 waves")
    return Calendar(start=start, end=end, waves_360=waves_360, waves_engagement=engagement)
