"""The SQLAlchemy event store on SQLite and PostgreSQL, and the deliveries export."""

from __future__ import annotations

import datetime as dt
import sqlite3
import threading
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sqlalchemy.exc import IntegrityError

from recommender.events import (
    DecisionNotFoundError,
    EventRejectedError,
    EventStore,
    export_deliveries,
    sqlite_url,
)
from recommender.ranking.decision import Decision
from recommender.ranking.eligibility import ReasonCode

T0 = dt.datetime(2025, 3, 3, 9, 0, tzinfo=dt.UTC)


def decision(
    decision_id: str,
    kind: str = "nudge",
    manager_id: str = "m1-001",
    at: dt.datetime = T0,
    org_id: str = "org-01",
) -> Decision:
    """candidates a (type x, 0.5), b (type x, 0.2), c (type y, 0.3); holdout share 0.1."""
    chosen = {"nudge": ("b", "x"), "control": (None, None), "empty": (None, None)}[kind]
    return Decision(
        decision_id=decision_id,
        org_id=org_id,
        manager_id=manager_id,
        decided_at=at,
        context="before_1on1",
        policy="softmax(t=0.1,eps=0.05)+holdout(0.1)",
        model_version="7",
        fallback=False,
        kind=kind,  # type: ignore[arg-type]
        candidate_ids=() if kind == "empty" else ("a", "b", "c"),
        candidate_types=() if kind == "empty" else ("x", "x", "y"),
        probabilities=() if kind == "empty" else (0.5, 0.2, 0.3),
        holdout_share=0.1,
        chosen_nudge_id=chosen[0],
        chosen_nudge_type=chosen[1],
        propensity={"nudge": 0.9 * 0.7, "control": 0.1, "empty": None}[kind],
        reason_code={
            "nudge": None,
            "control": ReasonCode.HOLDOUT,
            "empty": ReasonCode.FREQUENCY_CAP,
        }[kind],
        items=(),
    )


def fill(store: EventStore) -> None:
    store.record_decision(decision("00000000-0000-4000-8000-000000000001"))
    store.record_decision(decision("00000000-0000-4000-8000-000000000002", "control"))
    store.record_decision(decision("00000000-0000-4000-8000-000000000003", "empty"))
    store.record_decision(
        decision("00000000-0000-4000-8000-000000000004", at=T0 + dt.timedelta(hours=1))
    )
    first, fourth = "00000000-0000-4000-8000-000000000001", "00000000-0000-4000-8000-000000000004"
    store.record_event("org-01", first, "delivered")
    store.record_event("org-01", first, "acted")  # acted implies opened
    store.record_event("org-01", first, "rated", rating=2, received_at=T0)
    store.record_event(
        "org-01", first, "rated", rating=5, idempotency_key="r2", received_at=T0 + dt.timedelta(1)
    )
    store.record_event("org-01", fourth, "dismissed")


def check_store(store: EventStore) -> None:
    fill(store)
    first = "00000000-0000-4000-8000-000000000001"
    assert store.record_event("org-01", first, "delivered").duplicate is True
    with pytest.raises(DecisionNotFoundError):
        store.record_event("org-02", first, "opened")
    with pytest.raises(EventRejectedError):
        store.record_event("org-01", "00000000-0000-4000-8000-000000000002", "opened")
    recent = store.recent_nudges("org-01", "m1-001", T0 - dt.timedelta(days=1))
    assert [p.nudge_id for p in recent] == ["b", "b"]
    assert recent[0].decided_at == T0
    assert store.recent_nudges("org-02", "m1-001", T0 - dt.timedelta(days=1)) == []
    stored = store.get_decision("org-01", first)
    assert stored is not None and stored["candidates"] == [
        ["a", "x", 0.5],
        ["b", "x", 0.2],
        ["c", "y", 0.3],
    ]


def check_export(frame: pd.DataFrame) -> None:
    assert list(frame.columns) == [
        "delivery_id",
        "manager_id",
        "nudge_id",
        "delivered_at",
        "policy",
        "propensity",
        "opened",
        "acted",
        "rating",
    ]
    assert len(frame) == 3  # the empty decision is audit-only
    by_id = frame.set_index("delivery_id")
    nudge = by_id.loc["00000000-0000-4000-8000-000000000001"]
    control = by_id.loc["00000000-0000-4000-8000-000000000002"]
    dismissed = by_id.loc["00000000-0000-4000-8000-000000000004"]
    assert nudge["nudge_id"] == "b" and nudge["policy"] == "softmax(t=0.1,eps=0.05)+holdout(0.1)@7"
    assert nudge["propensity"] == pytest.approx(0.9 * (0.5 + 0.2))
    assert bool(nudge["opened"]) and bool(nudge["acted"]) and nudge["rating"] == 5
    assert pd.isna(control["nudge_id"]) and control["propensity"] == pytest.approx(0.1)
    assert pd.isna(control["opened"]) and pd.isna(control["acted"]) and pd.isna(control["rating"])
    assert not dismissed["opened"] and not dismissed["acted"] and pd.isna(dismissed["rating"])
    assert pd.Timestamp(nudge["delivered_at"]).tz_localize(None) == pd.Timestamp("2025-03-03 09:00")


def test_sqlite_store_records_decisions_events_and_reads_history(tmp_path: Path) -> None:
    store = EventStore(sqlite_url(tmp_path / "e.db"))
    check_store(store)
    with store.engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert conn.exec_driver_sql("PRAGMA synchronous").scalar() == 1  # NORMAL
    store.dispose()


@pytest.mark.parametrize("fmt", ["parquet", "csv"])
def test_export_deliveries_writes_the_contract_columns(tmp_path: Path, fmt: str) -> None:
    db = tmp_path / "e.db"
    store = EventStore(sqlite_url(db))
    fill(store)
    store.dispose()
    path = export_deliveries(db, tmp_path / "out", fmt)  # type: ignore[arg-type]
    assert path == tmp_path / "out" / f"deliveries.{fmt}"
    assert sorted(p.name for p in path.parent.iterdir()) == [path.name]  # no temp files left
    frame = pd.read_parquet(path) if fmt == "parquet" else pd.read_csv(path)
    if fmt == "csv":
        frame["opened"] = frame["opened"].astype("boolean")
        frame["acted"] = frame["acted"].astype("boolean")
        frame["rating"] = frame["rating"].astype("Int64")
        assert frame["delivered_at"].str.endswith("Z").all()
    check_export(frame)
    with pytest.raises(FileExistsError):
        export_deliveries(db, tmp_path / "out", "csv" if fmt == "parquet" else "parquet")


def test_export_refuses_a_database_without_tables(tmp_path: Path) -> None:
    empty = tmp_path / "empty.db"
    sqlite3.connect(empty).close()
    with pytest.raises(ValueError, match="no nudge_decisions"):
        export_deliveries(empty, tmp_path / "out")


def test_export_refuses_a_missing_sqlite_file_without_creating_it(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="does not exist"):
        export_deliveries(tmp_path / "absent.db", tmp_path / "out")
    assert not (tmp_path / "absent.db").exists()


def test_erasing_a_manager_removes_decisions_and_events(tmp_path: Path) -> None:
    store = EventStore(sqlite_url(tmp_path / "e.db"))
    fill(store)
    store.record_decision(decision("00000000-0000-4000-8000-000000000009", manager_id="m1-002"))
    assert store.erase_manager("org-01", "m1-001") == 4
    assert store.get_decision("org-01", "00000000-0000-4000-8000-000000000001") is None
    assert store.count_events("org-01", "00000000-0000-4000-8000-000000000001") == 0
    assert store.get_decision("org-01", "00000000-0000-4000-8000-000000000009") is not None
    store.dispose()


def test_concurrent_replays_store_one_event(tmp_path: Path) -> None:
    store = EventStore(sqlite_url(tmp_path / "e.db"))
    store.record_decision(decision("00000000-0000-4000-8000-000000000001"))
    outcomes: list[bool] = []

    def send() -> None:
        receipt = store.record_event("org-01", "00000000-0000-4000-8000-000000000001", "opened")
        outcomes.append(receipt.duplicate)

    threads = [threading.Thread(target=send) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(outcomes) == [False] + [True] * 7
    assert store.count_events("org-01", "00000000-0000-4000-8000-000000000001") == 1
    store.dispose()


def test_export_round_trips_through_the_data_loader(tmp_path: Path) -> None:
    data = pytest.importorskip("recommender.data")
    folder = tmp_path / "org"
    folder.mkdir()
    pd.DataFrame(
        {"org_id": ["org-01"], "competency_id": ["c1"], "name": ["Coaching"], "weight": [1.0]}
    ).to_csv(folder / "competencies.csv", index=False)
    managers = pd.DataFrame(
        {
            "org_id": "org-01",
            "manager_id": ["m1-001", "m1-002"],
            "function": "sales",
            "level": "middle",
            "tenure_months": 24,
            "team_size": 6,
            "region": "emea",
            **{
                t: 50.0
                for t in (
                    "openness",
                    "conscientiousness",
                    "extraversion",
                    "agreeableness",
                    "neuroticism",
                )
            },
            "hire_date": "2024-01-01",
            "leave_date": "",
        }
    )
    managers.to_csv(folder / "managers.csv", index=False)
    pd.DataFrame(
        {
            "manager_id": ["m1-001", "m1-002"],
            "wave_date": "2024-06-30",
            "competency_id": "c1",
            "rater_role": "peer",
            "score": 3.5,
            "n_raters": 3,
        }
    ).to_csv(folder / "feedback_360.csv", index=False)
    pd.DataFrame(
        {
            "manager_id": ["m1-001", "m1-002"],
            "wave_date": "2024-06-30",
            "engagement": 70.0,
            "n_respondents": 5,
        }
    ).to_csv(folder / "engagement.csv", index=False)
    pd.DataFrame(
        {
            "nudge_id": ["a", "b", "c"],
            "org_id": ["org-01", "org-01", "global"],
            "nudge_type": ["x", "x", "y"],
            "competency_id": ["c1", "c1", ""],
            "contexts": "before_1on1",
            "text": "Ask one open question.",
        }
    ).to_csv(folder / "nudges.csv", index=False)
    db = tmp_path / "e.db"
    store = EventStore(sqlite_url(db))
    fill(store)
    store.dispose()
    export_deliveries(db, folder, "csv")
    dataset = data.load_dataset(folder)
    deliveries = dataset.deliveries
    assert len(deliveries) == 3 and deliveries["nudge_id"].isna().sum() == 1
    assert np.allclose(sorted(deliveries["propensity"]), sorted([0.63, 0.63, 0.1]))


@pytest.mark.postgres
def test_postgres_store_behaves_like_sqlite(
    postgres_url: str, table_prefix: str, tmp_path: Path
) -> None:
    store = EventStore(postgres_url, table_prefix=table_prefix)
    try:
        check_store(store)
        path = export_deliveries(postgres_url, tmp_path, "parquet", table_prefix=table_prefix)
        check_export(pd.read_parquet(path))
    finally:
        store.drop_tables()
        store.dispose()


@pytest.mark.postgres
def test_postgres_concurrent_replays_store_one_event(postgres_url: str, table_prefix: str) -> None:
    store = EventStore(postgres_url, table_prefix=table_prefix)
    try:
        store.record_decision(decision("00000000-0000-4000-8000-000000000001"))
        outcomes: list[bool] = []

        def send() -> None:
            receipt = store.record_event("org-01", "00000000-0000-4000-8000-000000000001", "opened")
            outcomes.append(receipt.duplicate)

        threads = [threading.Thread(target=send) for _ in range(6)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert sorted(outcomes) == [False] + [True] * 5
    finally:
        store.drop_tables()
        store.dispose()


@pytest.mark.postgres
def test_app_on_postgres_ranks_records_events_and_survives_restart(
    postgres_url: str, table_prefix: str, make_client: object
) -> None:
    from tests.serving.conftest import H1, rank  # the shared helpers of this folder

    overrides = {"db_url": postgres_url, "db_table_prefix": table_prefix}
    try:
        with make_client(**overrides) as client:  # type: ignore[operator]
            event_id = rank(client).json()["event_id"]
            first = client.post(
                "/v1/events", json={"event_id": event_id, "type": "opened"}, headers=H1
            )
        with make_client(**overrides) as client:  # type: ignore[operator]
            replay = client.post(
                "/v1/events", json={"event_id": event_id, "type": "opened"}, headers=H1
            )
        assert first.json()["duplicate"] is False and replay.json()["duplicate"] is True
    finally:
        store = EventStore(postgres_url, table_prefix=table_prefix, create=False)
        store.drop_tables()
        store.dispose()


def test_sqlite_fast_path_writes_rows_exactly_like_the_engine(tmp_path: Path) -> None:
    fast = EventStore(sqlite_url(tmp_path / "fast.db"))
    slow = EventStore(sqlite_url(tmp_path / "slow.db"))
    slow._sqlite = None  # force the SQLAlchemy path
    for store in (fast, slow):
        for kind, decision_id in (
            ("nudge", "00000000-0000-4000-8000-000000000001"),
            ("control", "00000000-0000-4000-8000-000000000002"),
            ("empty", "00000000-0000-4000-8000-000000000003"),
        ):
            store.record_decision(decision(decision_id, kind, at=T0 + dt.timedelta(seconds=1.5)))
    rows = {}
    for name in ("fast", "slow"):
        with sqlite3.connect(tmp_path / f"{name}.db") as conn:
            rows[name] = conn.execute("SELECT * FROM nudge_decisions ORDER BY 1").fetchall()
    assert rows["fast"] == rows["slow"] and len(rows["fast"]) == 3
    stored = fast.get_decision("org-01", "00000000-0000-4000-8000-000000000001")
    assert stored is not None and stored["decided_at"] == T0 + dt.timedelta(seconds=1.5)
    assert stored["candidates"] == [["a", "x", 0.5], ["b", "x", 0.2], ["c", "y", 0.3]]
    since = T0 - dt.timedelta(days=1)
    assert fast.recent_nudges("org-01", "m1-001", since) == slow.recent_nudges(
        "org-01", "m1-001", since
    )
    assert [p.nudge_id for p in fast.recent_nudges("org-01", "m1-001", since)] == ["b"]
    with pytest.raises(IntegrityError):  # same error type as the engine path
        fast.record_decision(decision("00000000-0000-4000-8000-000000000001"))
    fast.dispose()
    slow.dispose()


def test_sqlite_decision_is_committed_before_record_returns(tmp_path: Path) -> None:
    store = EventStore(sqlite_url(tmp_path / "e.db"))
    store.record_decision(decision("00000000-0000-4000-8000-000000000001"))
    with sqlite3.connect(tmp_path / "e.db") as other:  # another connection sees it at once
        assert other.execute("SELECT count(*) FROM nudge_decisions").fetchone() == (1,)
    store.dispose()
