"""Serving fixtures: a small deterministic fake EffectModel, a fake registry, app builders."""

from __future__ import annotations

import contextlib
import csv
import hashlib
import os
import uuid
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient

from recommender.constants import GLOBAL_ORG, LEVELS, OUTCOMES, TRAITS
from recommender.effect_model import CatalogueEntry, EffectPrediction
from serving.app import create_app
from serving.settings import ServeSettings, hash_api_key

ORG_1, ORG_2 = "org-01", "org-02"
KEY_1, KEY_2 = "test-key-org-01-4b1d", "test-key-org-02-9c7e"
H1 = {"X-API-Key": KEY_1}
H2 = {"X-API-Key": KEY_2}
NUDGE_TYPES = ("recognition", "coaching", "delegation", "feedback")
FEATURES = ("level", "team_size", "tenure_months", *TRAITS)
POSTGRES_URL = os.environ.get(
    "NUDGE_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)


def _entry(nudge_id: str, org: str, nudge_type: str, *contexts: str) -> CatalogueEntry:
    competency = None if org == GLOBAL_ORG else f"c-{org}-{nudge_type}"
    return CatalogueEntry(nudge_id, org, nudge_type, competency, frozenset(contexts))


CATALOGUE: dict[str, tuple[CatalogueEntry, ...]] = {
    ORG_1: (
        _entry("n1-rec-a", ORG_1, "recognition", "before_1on1", "team_meeting"),
        _entry("n1-rec-b", ORG_1, "recognition", "after_meeting"),
        _entry("n1-coach-a", ORG_1, "coaching", "before_1on1", "before_feedback_conversation"),
        _entry("n1-coach-b", ORG_1, "coaching", "weekly_planning"),
        _entry("n1-deleg-a", ORG_1, "delegation", "weekly_planning", "team_meeting"),
        _entry("n1-fb-a", ORG_1, "feedback", "before_feedback_conversation"),
    ),
    ORG_2: (
        _entry("n2-rec-a", ORG_2, "recognition", "team_meeting"),
        _entry("n2-coach-a", ORG_2, "coaching", "before_1on1"),
        _entry("n2-fb-a", ORG_2, "feedback", "performance_review"),
    ),
    GLOBAL_ORG: (
        _entry("g-deleg", GLOBAL_ORG, "delegation", "weekly_planning"),
        _entry("g-fb", GLOBAL_ORG, "feedback", "before_1on1", "performance_review"),
    ),
}

MANAGERS: dict[str, dict[str, dict[str, Any]]] = {
    ORG_1: {
        f"m1-{i:03d}": {
            "level": LEVELS[i % 3],
            "team_size": 4 + 3 * i,
            "tenure_months": 12 * i + 6,
            **{t: float(20 + 11 * ((i + j) % 7)) for j, t in enumerate(TRAITS)},
        }
        for i in range(1, 6)
    },
    ORG_2: {
        f"m2-{i:03d}": {
            "level": LEVELS[(i + 1) % 3],
            "team_size": 6 + 2 * i,
            "tenure_months": 9 * i,
            **{t: float(30 + 9 * ((i * j) % 5)) for j, t in enumerate(TRAITS)},
        }
        for i in range(1, 4)
    },
}


class FakeEffectModel:
    """A small, realistic EffectModel: linear effects with seeded weights per version.

    Encoded row, shape (8,): level index, team_size / 100, tenure / 600, five traits / 100.
    Effects: rows @ W with W of shape (8, 4 types, 3 outcomes) drawn from the version's seed.
    """

    outcome_names = OUTCOMES
    nudge_types = NUDGE_TYPES

    def __init__(self, version: str = "1") -> None:
        self._version = version
        seed = int(hashlib.sha256(version.encode()).hexdigest()[:8], 16)
        rng = np.random.default_rng(seed)
        self.weights = rng.normal(0.0, 0.05, size=(len(FEATURES), len(NUDGE_TYPES), 3))
        self.weights[:, :, 2] *= 20.0  # engagement points are on a 0-100 scale
        self.scales = np.array([0.1, 0.12, 2.0])
        self.objective = np.array([1.0, 0.5, 1.0]) / self.scales
        self.rows = {
            (org, manager): self.encode(features)
            for org, managers in MANAGERS.items()
            for manager, features in managers.items()
        }
        self.metrics = {"policy_value_dr": 0.031, "policy_value_dr_ci_low": 0.012, "n_eval": 812}
        self.predict_calls = 0

    @property
    def version(self) -> str:
        return self._version

    def catalogue(self, org_id: str) -> tuple[CatalogueEntry, ...]:
        if org_id not in MANAGERS:
            return ()
        return CATALOGUE[org_id] + CATALOGUE[GLOBAL_ORG]

    def manager_row(self, org_id: str, manager_id: str) -> np.ndarray | None:
        row = self.rows.get((org_id, manager_id))
        return None if row is None else row.copy()

    def encode(self, features: Mapping[str, object]) -> np.ndarray:
        unknown = sorted(set(features) - set(FEATURES))
        if unknown:
            raise ValueError(f"{unknown[0]}: unknown feature")
        level = features.get("level")
        if level not in LEVELS:
            raise ValueError(f"level: must be one of {list(LEVELS)}")
        row = [float(LEVELS.index(str(level)))]
        for name, upper in (("team_size", 500), ("tenure_months", 600)):
            value = features.get(name)
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise ValueError(f"{name}: must be a number")
            if not 0 <= value <= upper:
                raise ValueError(f"{name}: must be within 0-{upper}")
            row.append(float(value) / (100.0 if name == "team_size" else 600.0))
        for trait in TRAITS:
            value = features.get(trait, 50.0)
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise ValueError(f"{trait}: must be a number")
            if not 0 <= value <= 100:
                raise ValueError(f"{trait}: must be within 0-100")
            row.append(float(value) / 100.0)
        return np.asarray(row, dtype=np.float64)

    def predict(self, rows: np.ndarray) -> EffectPrediction:
        self.predict_calls += 1
        X = np.atleast_2d(np.asarray(rows, dtype=np.float64))
        effect = np.einsum("nf,fto->nto", X, self.weights)
        std = 0.2 * np.abs(effect) + 0.01 * self.scales
        return EffectPrediction(effect=effect, effect_std=std, score=effect @ self.objective)

    def reason(self, org_id: str, row: np.ndarray, nudge_type: str) -> str:
        return f"Managers with a profile like yours did better after {nudge_type} nudges."


class FakeRegistry:
    """An in-memory model registry: versions (a model, or an exception to raise) and an alias."""

    def __init__(self) -> None:
        self.versions: dict[str, FakeEffectModel | Exception] = {"1": FakeEffectModel("1")}
        self.alias = "1"
        self.loads = 0
        self.reachable = True

    def publish(self, version: str, model: FakeEffectModel | Exception | None = None) -> None:
        """Register ``version`` and move the alias to it."""
        self.versions[version] = model if model is not None else FakeEffectModel(version)
        self.alias = version

    def load(self, uri: str) -> tuple[str, FakeEffectModel]:
        if not self.reachable:
            raise ConnectionError("registry unreachable")
        self.loads += 1
        entry = self.versions[self.alias]
        if isinstance(entry, Exception):
            raise entry
        return self.alias, entry

    def resolve(self, uri: str) -> str:
        if not self.reachable:
            raise ConnectionError("registry unreachable")
        return self.alias


def make_settings(tmp_path: Path, **overrides: Any) -> ServeSettings:
    """Test settings: two tenants, SQLite under tmp_path, no polling, seeded RNG, no holdout."""
    values: dict[str, Any] = {
        "api_keys": f"{hash_api_key(KEY_1)}={ORG_1},{hash_api_key(KEY_2)}={ORG_2}",
        "db_path": tmp_path / "events.db",
        "model_uri": "models:/nudge-ranker@champion",
        "model_poll_seconds": 0,
        "model_timeout_seconds": 5,
        "random_seed": 7,
        "holdout_share": 0.0,
        "frequency_cap": 100,
        "no_repeat_hours": 0,
    }
    values.update(overrides)
    return ServeSettings(**values)


AppFactory = Callable[..., contextlib.AbstractContextManager[TestClient]]


@pytest.fixture
def registry() -> FakeRegistry:
    return FakeRegistry()


@pytest.fixture
def make_client(tmp_path: Path, registry: FakeRegistry) -> AppFactory:
    """``with make_client(**setting_overrides) as client:`` a started app on the fake registry.

    Pass ``load_model=None`` (with ``no_model=True``) to start without any model.
    """

    @contextlib.contextmanager
    def factory(no_model: bool = False, **overrides: Any) -> Iterator[TestClient]:
        settings = make_settings(tmp_path, **({"model_uri": ""} if no_model else {}) | overrides)
        app = create_app(settings, registry.load, resolve_version=registry.resolve)
        with TestClient(app, raise_server_exceptions=False) as client:
            yield client

    return factory


@pytest.fixture
def client(make_client: AppFactory) -> Iterator[TestClient]:
    with make_client() as c:
        yield c


@pytest.fixture
def catalogue_csv(tmp_path: Path) -> Path:
    """The fake catalogue as a nudges.csv (data/README.md columns) for the fallback."""
    path = tmp_path / "nudges.csv"
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["nudge_id", "org_id", "nudge_type", "competency_id", "contexts", "text"])
        for entries in CATALOGUE.values():
            for e in entries:
                writer.writerow(
                    [
                        e.nudge_id,
                        e.org_id,
                        e.nudge_type,
                        e.competency_id or "",
                        ";".join(sorted(e.contexts)),
                        "Say one specific thing your report did well.",
                    ]
                )
    return path


@pytest.fixture
def postgres_url() -> str:
    """URL of the test PostgreSQL server; skip if unreachable unless REQUIRE_POSTGRES=1."""
    try:
        engine = sa.create_engine(POSTGRES_URL, connect_args={"connect_timeout": 3})
        with engine.connect() as conn:
            conn.execute(sa.text("SELECT 1"))
        engine.dispose()
    except Exception as error:
        message = f"PostgreSQL unreachable at {POSTGRES_URL} ({type(error).__name__})"
        if os.environ.get("REQUIRE_POSTGRES") == "1":
            pytest.fail(f"{message}; REQUIRE_POSTGRES=1 makes this a failure")
        pytest.skip(message)
    return POSTGRES_URL


@pytest.fixture
def table_prefix() -> str:
    """A table prefix unique to this test, so parallel runs never share tables."""
    return f"t{uuid.uuid4().hex[:12]}_"


def rank(client: TestClient, headers: Mapping[str, str] = H1, **body: Any) -> Any:
    """POST /v1/rank with a default manager of org-01; returns the response."""
    body.setdefault("manager_id", "m1-001")
    return client.post("/v1/rank", json=body, headers=dict(headers))
