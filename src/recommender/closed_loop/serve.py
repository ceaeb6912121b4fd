"""The ranking API driven in-process, as the delivery layer would call it in production.

``ServingHarness`` builds the real FastAPI app (``serving.app.create_app``: settings, lifespan,
model loaded from the registry alias, the SQLite event store, exploration and holdout) and talks
to it over HTTP with Starlette's ``TestClient``: one ``POST /v1/rank`` per manager, then
``POST /v1/events`` for what the manager did with the nudge. Only the clock is simulated: every
decision of a period is stamped with the period's decision time.
"""

from __future__ import annotations

import datetime as dt
import secrets
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any

import numpy as np
import pandas as pd
import sqlalchemy as sa

from recommender.constants import TRAITS
from recommender.events import EventStore, sqlite_url

PROFILE_FEATURES = ("function", "level", "region", "tenure_months", "team_size", *TRAITS)
"""Raw profile sent for a manager the served model does not know (``RankRequest.features``)."""


@dataclass(frozen=True)
class Exploration:
    """Serving exploration: the ``NUDGE_POLICY``/``EPSILON``/``TEMPERATURE``/``HOLDOUT_SHARE``
    settings of the API (defaults as in ``serving.settings.ServeSettings``)."""

    policy: str = "softmax"
    epsilon: float = 0.05
    temperature: float = 0.1
    holdout_share: float = 0.05


class ServingHarness:
    """The ranking API with its event store, for one round (context manager).

    db_path: SQLite file of the event store (kept across rounds: the durable decision log).
    model_uri: registry URI the app loads at start (e.g. ``models:/nudge-ranker-loop@champion``).
    fallback_catalogue: nudges file served uniformly when no model can be loaded.
    orgs: organisations to issue API keys for (one key per org, kept in memory only).
    seed: seed of the exploration sampler (reproducible draws).
    """

    def __init__(
        self,
        db_path: Path,
        model_uri: str,
        fallback_catalogue: Path,
        orgs: Iterable[str],
        exploration: Exploration,
        seed: int,
    ) -> None:
        self.db_path = Path(db_path)
        self.model_uri = model_uri
        self.fallback_catalogue = Path(fallback_catalogue)
        self.orgs = tuple(sorted(set(orgs)))
        self.exploration = exploration
        self.seed = seed
        self._keys: dict[str, str] = {}
        self._client: Any = None
        self._app: Any = None

    def __enter__(self) -> ServingHarness:
        from fastapi.testclient import TestClient

        from serving.app import create_app
        from serving.settings import hash_api_key, load_settings

        self._keys = {org: secrets.token_urlsafe(24) for org in self.orgs}
        settings = load_settings(
            api_keys=",".join(f"{hash_api_key(k)}={org}" for org, k in self._keys.items()),
            api_keys_file=None,
            db_url=None,
            db_path=self.db_path,
            model_uri=self.model_uri,
            model_poll_seconds=0.0,
            fallback_catalogue=self.fallback_catalogue,
            policy=self.exploration.policy,
            epsilon=self.exploration.epsilon,
            temperature=self.exploration.temperature,
            holdout_share=self.exploration.holdout_share,
            random_seed=self.seed,
            log_level="warning",
        )
        self._app = create_app(settings)
        self._client = TestClient(self._app)
        self._client.__enter__()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._client is not None:
            self._client.__exit__(exc_type, exc, tb)
        self._client = None

    @property
    def served_version(self) -> str | None:
        """Version of the model the app serves (None when on the fallback)."""
        served = self._app.state.holder.current
        return None if served is None or served.fallback else str(served.version)

    def rank_all(
        self,
        frame: pd.DataFrame,
        decided_at: dt.datetime,
        candidates: Mapping[str, list[str]] | None = None,
    ) -> pd.DataFrame:
        """One ``POST /v1/rank`` per row of ``frame`` (``World.decision_frame()``), all decided
        at ``decided_at`` (aware UTC). Managers unknown to the model (404) are asked again with
        their raw profile, as the delivery layer does for new managers.

        candidates: org -> nudge ids the delivery layer offers (default: the whole catalogue).

        Returns one row per manager: manager_id, org_id, event_id, kind (nudge/control/empty),
        explicit_features (bool).
        """
        if decided_at.tzinfo is None:
            raise ValueError("decided_at must be timezone-aware")
        self._app.state.service.clock = lambda: decided_at
        rows = []
        for record in frame.to_dict("records"):
            org, manager = str(record["org_id"]), str(record["manager_id"])
            body: dict[str, Any] = {"manager_id": manager, "k": 1}
            if candidates is not None:
                body["candidates"] = candidates[org]
            response = self._post("/v1/rank", org, body)
            explicit = response.status_code == 404
            if explicit:
                body["features"] = _profile(record)
                response = self._post("/v1/rank", org, body)
            if response.status_code != 200:
                raise RuntimeError(f"rank failed with HTTP {response.status_code}: {response.text}")
            data = response.json()
            kind = "control" if data["control"] else "nudge" if data["chosen_nudge_id"] else "empty"
            rows.append(
                {
                    "manager_id": manager,
                    "org_id": org,
                    "event_id": str(data["event_id"]),
                    "kind": kind,
                    "explicit_features": explicit,
                }
            )
        return pd.DataFrame(
            rows, columns=["manager_id", "org_id", "event_id", "kind", "explicit_features"]
        )

    def report_events(self, reactions: pd.DataFrame) -> int:
        """``POST /v1/events`` for each nudge decision: opened, acted, rated (when they happened).

        reactions: columns event_id, org_id, opened (bool), acted (bool), rating (Int64, NA if
        not rated). Returns the number of events stored.
        """
        stored = 0
        for record in reactions.to_dict("records"):
            org, event_id = str(record["org_id"]), str(record["event_id"])
            events: list[dict[str, Any]] = []
            if bool(record["opened"]):
                events.append({"type": "opened"})
            if bool(record["acted"]):
                events.append({"type": "acted"})
            rating = record["rating"]
            if rating is not None and rating is not pd.NA and not pd.isna(rating):
                events.append({"type": "rated", "rating": int(rating)})
            for event in events:
                response = self._post("/v1/events", org, {"event_id": event_id, **event})
                if response.status_code != 200:
                    raise RuntimeError(
                        f"event failed with HTTP {response.status_code}: {response.text}"
                    )
                stored += not response.json()["duplicate"]
        return stored

    def _post(self, path: str, org: str, body: Mapping[str, Any]) -> Any:
        return self._client.post(path, json=body, headers={"X-API-Key": self._keys[org]})


def _profile(record: Mapping[str, Any]) -> dict[str, Any]:
    """Raw profile features of a decision-frame row (observed values only)."""
    out: dict[str, Any] = {"org_id": str(record["org_id"])}
    for name in PROFILE_FEATURES:
        value = record[name]
        out[name] = value if isinstance(value, str) else float(value)
    for source, target in (("score_360", "score_overall"), ("engagement", "engagement")):
        value = float(record[source])
        if np.isfinite(value):
            out[target] = value
    return out


def read_decisions(db_path: Path, decided_at: dt.datetime) -> pd.DataFrame:
    """Decisions stored at ``decided_at`` (aware UTC), as logged by the service.

    Returns columns decision_id, org_id, manager_id, kind, policy, model_version,
    chosen_nudge_type, propensity (NaN for empty decisions), holdout_share and type_probs
    (dict nudge type -> probability of sending that type, from the logged candidates).
    """
    store = EventStore(sqlite_url(db_path), create=False, pool_size=1)
    d = store.decisions
    naive = decided_at.astimezone(dt.UTC).replace(tzinfo=None)
    query = sa.select(
        d.c.decision_id,
        d.c.org_id,
        d.c.manager_id,
        d.c.kind,
        d.c.policy,
        d.c.model_version,
        d.c.chosen_nudge_type,
        d.c.propensity,
        d.c.holdout_share,
        d.c.candidates,
    ).where(d.c.decided_at == naive)
    try:
        with store.engine.connect() as conn:
            rows = [dict(row) for row in conn.execute(query).mappings()]
    finally:
        store.dispose()
    for row in rows:
        send = 1.0 - float(row["holdout_share"])
        probs: dict[str, float] = {}
        for _nudge_id, nudge_type, probability in row.pop("candidates"):
            probs[str(nudge_type)] = probs.get(str(nudge_type), 0.0) + send * float(probability)
        row["type_probs"] = probs
    columns = [
        "decision_id",
        "org_id",
        "manager_id",
        "kind",
        "policy",
        "model_version",
        "chosen_nudge_type",
        "propensity",
        "holdout_share",
        "type_probs",
    ]
    out = pd.DataFrame(rows, columns=columns)
    out["propensity"] = pd.to_numeric(out["propensity"]).astype(np.float64)
    return out
