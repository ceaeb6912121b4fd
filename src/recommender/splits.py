"""Time split of the manager-period table: train on earlier periods, evaluate on later ones.

A period belongs to training only if it *ended* on or before the cutoff (its outcome was known
before the evaluation window opened), and to evaluation only if it *started* on or after the
cutoff. Periods straddling the cutoff are dropped, so no manager-period of the evaluation window,
and no outcome observed inside it, is used in training.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import numpy as np
import pandas as pd


@dataclass(frozen=True)
class TimeSplit:
    """Result of ``time_split``.

    train, evaluation: row subsets of the input (index reset).
    cutoff: first day of the evaluation window.
    n_dropped: periods straddling the cutoff, in neither part.
    """

    train: pd.DataFrame
    evaluation: pd.DataFrame
    cutoff: pd.Timestamp
    n_dropped: int

    def window(self) -> dict[str, str]:
        """ISO dates bounding each part (for run tags)."""

        def iso(value: object) -> str:
            return pd.Timestamp(value).date().isoformat() if pd.notna(value) else ""

        return {
            "train_start": iso(self.train["period_start"].min()),
            "train_end": iso(self.train["period_end"].max()),
            "eval_start": iso(self.evaluation["period_start"].min()),
            "eval_end": iso(self.evaluation["period_end"].max()),
        }


def choose_cutoff(period_starts: pd.Series, eval_fraction: float) -> pd.Timestamp:
    """Cutoff such that the latest ``eval_fraction`` of distinct period-start dates is held out."""
    if not 0.0 < eval_fraction < 1.0:
        raise ValueError(f"eval_fraction: must be in (0, 1), got {eval_fraction}")
    dates = np.sort(pd.to_datetime(period_starts.dropna()).unique())
    if len(dates) < 2:
        raise ValueError("need at least two distinct period-start dates to split by time")
    n_eval = min(max(1, round(len(dates) * eval_fraction)), len(dates) - 1)
    return pd.Timestamp(dates[len(dates) - n_eval])


def time_split(
    periods: pd.DataFrame,
    eval_fraction: float = 0.3,
    eval_start: dt.date | None = None,
) -> TimeSplit:
    """Split finished manager-periods by time (see module docstring).

    periods: rows with ``period_start`` and ``period_end`` (datetime64).
    Raises ``ValueError`` if either part ends up empty.
    """
    if eval_start is not None:
        cutoff = pd.Timestamp(eval_start)
    else:
        cutoff = choose_cutoff(periods["period_start"], eval_fraction)
    train_mask = (periods["period_end"] <= cutoff).to_numpy()
    eval_mask = (periods["period_start"] >= cutoff).to_numpy()
    train = periods.loc[train_mask].reset_index(drop=True)
    evaluation = periods.loc[eval_mask].reset_index(drop=True)
    if train.empty:
        raise ValueError(f"no finished period ends on or before the cutoff {cutoff.date()}")
    if evaluation.empty:
        raise ValueError(f"no period starts on or after the cutoff {cutoff.date()}")
    n_dropped = int((~train_mask & ~eval_mask).sum())
    return TimeSplit(train=train, evaluation=evaluation, cutoff=cutoff, n_dropped=n_dropped)
