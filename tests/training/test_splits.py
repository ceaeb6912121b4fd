"""Time split: evaluation periods never reach training."""

from __future__ import annotations

import datetime as dt
import itertools

import numpy as np
import pandas as pd
import pytest

from recommender.splits import choose_cutoff, time_split


def _periods(n_managers: int = 20, n_waves: int = 8, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    rows = []
    for m in range(n_managers):
        offset = int(rng.integers(0, 60))
        starts = pd.Timestamp("2023-01-01") + pd.to_timedelta(
            offset + 182 * np.arange(n_waves), unit="D"
        )
        for a, b in itertools.pairwise(starts):
            rows.append((f"m{m}", a, b))
    return pd.DataFrame(rows, columns=["manager_id", "period_start", "period_end"])


def test_no_evaluation_period_or_outcome_reaches_training():
    split = time_split(_periods(), eval_fraction=0.3)
    assert split.train["period_end"].max() <= split.cutoff
    assert split.evaluation["period_start"].min() >= split.cutoff
    train_keys = set(zip(split.train["manager_id"], split.train["period_start"], strict=True))
    eval_keys = set(
        zip(split.evaluation["manager_id"], split.evaluation["period_start"], strict=True)
    )
    assert not train_keys & eval_keys


def test_straddling_periods_are_dropped_and_counted():
    periods = _periods()
    split = time_split(periods, eval_fraction=0.3)
    assert len(split.train) + len(split.evaluation) + split.n_dropped == len(periods)
    assert split.n_dropped > 0


def test_explicit_eval_start_overrides_fraction():
    split = time_split(_periods(), eval_fraction=0.9, eval_start=dt.date(2025, 1, 1))
    assert split.cutoff == pd.Timestamp("2025-01-01")
    assert set(split.window()) == {"train_start", "train_end", "eval_start", "eval_end"}


def test_split_refuses_an_empty_part():
    with pytest.raises(ValueError, match="no period starts on or after"):
        time_split(_periods(), eval_start=dt.date(2030, 1, 1))
    with pytest.raises(ValueError, match="no finished period ends"):
        time_split(_periods(), eval_start=dt.date(2022, 1, 1))


def test_cutoff_holds_out_the_latest_fraction_of_dates():
    starts = pd.Series(pd.to_datetime([f"2023-{m:02d}-01" for m in range(1, 11)]))
    assert choose_cutoff(starts, 0.3) == pd.Timestamp("2023-08-01")
    with pytest.raises(ValueError, match="eval_fraction"):
        choose_cutoff(starts, 1.5)
