"""Fixtures for the training tests: a tiny hand-made dataset with known features."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from tests.helpers import FAST_CONFIG

WAVES = ("2023-01-01", "2023-07-01", "2024-01-01")


def _dates(values: list[str]) -> pd.Series:
    return pd.Series(pd.to_datetime(values), dtype="datetime64[ns]")


def tiny_tables() -> dict[str, pd.DataFrame]:
    """Two managers of one org, three 360/engagement waves, a few logged decisions.

    m1's non-self scores rise by 0.5 on c1 and 0.1 on c2 each wave; m2's are flat. m1 gets a
    ``recognition`` nudge (targets c1) in period 1 and a control decision in period 2; m2 gets a
    global ``planning`` nudge (no competency) in period 1 and nothing logged in period 2.
    """
    competencies = pd.DataFrame(
        {
            "org_id": pd.array(["o1", "o1"], dtype="string"),
            "competency_id": pd.array(["c1", "c2"], dtype="string"),
            "name": pd.array(["Coaching", "Planning"], dtype="string"),
            "weight": [0.6, 0.4],
        }
    )
    managers = pd.DataFrame(
        {
            "org_id": pd.array(["o1", "o1"], dtype="string"),
            "manager_id": pd.array(["m1", "m2"], dtype="string"),
            "function": pd.array(["sales", "hr"], dtype="string"),
            "level": pd.array(["middle", "first_line"], dtype="string"),
            "tenure_months": [12, 0],
            "team_size": [6, 4],
            "region": pd.array(["emea", "apac"], dtype="string"),
            "openness": [50.0, 60.0],
            "conscientiousness": [50.0, 60.0],
            "extraversion": [50.0, 60.0],
            "agreeableness": [50.0, 60.0],
            "neuroticism": [50.0, 60.0],
            "hire_date": _dates(["2022-01-01", "2022-06-01"]),
            "leave_date": _dates([None, None]),  # type: ignore[list-item]
        }
    )
    rows = []
    for manager, step in (("m1", 1.0), ("m2", 0.0)):
        for k, wave in enumerate(WAVES):
            for comp, base, slope in (("c1", 3.0, 0.5), ("c2", 3.5, 0.1)):
                for role in ("manager", "peer", "direct_report"):
                    rows.append((manager, wave, comp, role, base + step * slope * k, 3))
                rows.append((manager, wave, comp, "self", 4.0, 1))
    fb = pd.DataFrame(
        rows,
        columns=["manager_id", "wave_date", "competency_id", "rater_role", "score", "n_raters"],
    )
    feedback = fb.assign(
        manager_id=fb["manager_id"].astype("string"),
        wave_date=pd.to_datetime(fb["wave_date"]).astype("datetime64[ns]"),
        competency_id=fb["competency_id"].astype("string"),
        rater_role=fb["rater_role"].astype("string"),
    )
    engagement = pd.DataFrame(
        {
            "manager_id": pd.array(["m1"] * 3 + ["m2"] * 3, dtype="string"),
            "wave_date": _dates(list(WAVES) * 2),
            "engagement": [60.0, 64.0, 70.0, 50.0, 50.0, 49.0],
            "n_respondents": [5, 5, 6, 4, 4, 4],
        }
    )
    nudges = pd.DataFrame(
        {
            "nudge_id": pd.array(["n1", "n2"], dtype="string"),
            "org_id": pd.array(["o1", "global"], dtype="string"),
            "nudge_type": pd.array(["recognition", "planning"], dtype="string"),
            "competency_id": pd.array(["c1", None], dtype="string"),
            "contexts": pd.array(["before_1on1", "weekly_planning"], dtype="string"),
            "text": pd.array(["Say thanks.", "Plan the week."], dtype="string"),
        }
    )
    deliveries = pd.DataFrame(
        {
            "delivery_id": pd.array(["d1", "d2", "d3"], dtype="string"),
            "manager_id": pd.array(["m1", "m1", "m2"], dtype="string"),
            "nudge_id": pd.array(["n1", None, "n2"], dtype="string"),
            "delivered_at": pd.to_datetime(
                ["2023-01-10 09:00", "2023-07-05 09:00", "2023-02-01 09:00"]
            ).astype("datetime64[ns]"),
            "policy": pd.array(["uniform-v1"] * 3, dtype="string"),
            "propensity": [0.4, 0.3, 0.25],
            "opened": pd.array([True, None, True], dtype="boolean"),
            "acted": pd.array([True, None, False], dtype="boolean"),
            "rating": pd.array([5, None, None], dtype="Int64"),
        }
    )
    return {
        "competencies": competencies,
        "managers": managers,
        "feedback_360": feedback,
        "engagement": engagement,
        "nudges": nudges,
        "deliveries": deliveries,
    }


@pytest.fixture
def tiny() -> dict[str, pd.DataFrame]:
    """The tiny hand-made dataset (fresh copy per test)."""
    return tiny_tables()


SAMPLE = Path(__file__).resolve().parents[2] / "data" / "sample"


@pytest.fixture(scope="session")
def sample_dir() -> Path:
    """The committed simulated sample (data/sample)."""
    if not (SAMPLE / "managers.parquet").is_file():
        pytest.skip("data/sample is not there")
    return SAMPLE


@pytest.fixture(scope="session")
def fast_config_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A config with few trees and bootstrap resamples (seconds, not minutes)."""
    path = tmp_path_factory.mktemp("config") / "fast.yaml"
    path.write_text(FAST_CONFIG)
    return path


@pytest.fixture(scope="session")
def sample_prepared(sample_dir: Path, fast_config_path: Path) -> tuple[Any, Any, Any]:
    """(prepared, fitted model, config) on data/sample, without MLflow."""
    from recommender.config import load_config
    from recommender.data import load_dataset
    from recommender.features import build_manager_periods
    from recommender.pipeline import _min_rows_per_arm, fit_model, make_estimator, prepare

    config = load_config(fast_config_path)
    estimator = make_estimator(config)
    tables = load_dataset(sample_dir).tables()
    periods = build_manager_periods(tables)
    prepared = prepare(periods, tables["nudges"], config, _min_rows_per_arm(estimator))
    model = fit_model(prepared, estimator, config)
    return prepared, model, config


@pytest.fixture(scope="session")
def sample_bundle_dir(
    sample_prepared: tuple[Any, Any, Any], tmp_path_factory: pytest.TempPathFactory
) -> Path:
    """A bundle folder written from the sample model (read-only: copy before tampering)."""
    from recommender.pipeline import build_bundle

    prepared, model, _ = sample_prepared
    folder = tmp_path_factory.mktemp("bundle") / "bundle"
    return build_bundle(folder, prepared, model, {"run_id": "test"})
