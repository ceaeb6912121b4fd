"""Durable store of ranking decisions and delivery events, and their export as ``deliveries``.

SQLAlchemy 2.0 Core over SQLite (default; WAL journal, ``synchronous`` NORMAL or FULL) or
PostgreSQL (``postgresql+psycopg://...``). Two tables, names prefixed by ``table_prefix``:

- ``<prefix>decisions``: one row per decision (nudge, control or empty) with its candidates and
  their probabilities, the chosen nudge, context, policy, model version and time (naive UTC).
- ``<prefix>events``: delivered / opened / acted / rated / dismissed reports. Idempotent: the
  dedupe key is the client's idempotency key when given, else ``(event_id, type)``, unique per
  organisation; a replay is acknowledged as a duplicate and stored once.

:func:`export_deliveries` turns them into the ``deliveries`` table of data/README.md: one row per
nudge or control decision (empty decisions, where the rules left nothing, are audit-only).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import os
import sqlite3
import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError

from recommender.ranking.decision import Decision
from recommender.ranking.eligibility import PastDecision

EventType = Literal["delivered", "opened", "acted", "rated", "dismissed"]
EVENT_TYPES: tuple[EventType, ...] = ("delivered", "opened", "acted", "rated", "dismissed")


class DecisionNotFoundError(LookupError):
    """No decision with that id in the caller's organisation (or none at all)."""


class EventRejectedError(ValueError):
    """An event that contradicts its decision; ``field`` names the offending request field."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field


class IdempotencyConflictError(ValueError):
    """An idempotency key reused for a different (event_id, type)."""


@dataclass(frozen=True)
class EventReceipt:
    """What the store did with an event; ``duplicate`` means it was already recorded."""

    decision_id: str
    type: EventType
    duplicate: bool
    received_at: dt.datetime


def sqlite_url(path: Path) -> str:
    """SQLAlchemy URL of a SQLite file at ``path``."""
    return f"sqlite:///{Path(path).expanduser().resolve()}"


def _as_url(db: str | Path) -> str:
    text = str(db)
    return text if "://" in text else sqlite_url(Path(text))


def _naive_utc(moment: dt.datetime) -> dt.datetime:
    if moment.tzinfo is None:
        raise ValueError("timestamps must be timezone-aware")
    return moment.astimezone(dt.UTC).replace(tzinfo=None)


def _aware(moment: dt.datetime) -> dt.datetime:
    return moment.replace(tzinfo=dt.UTC)


def build_tables(prefix: str = "nudge_") -> tuple[sa.MetaData, sa.Table, sa.Table]:
    """The two tables with names (and index names) prefixed by ``prefix``."""
    if not prefix.replace("_", "").isalnum() or not prefix[0].isalpha():
        raise ValueError(f"table prefix must be letters, digits and _, got {prefix!r}")
    metadata = sa.MetaData()
    decisions = sa.Table(
        f"{prefix}decisions",
        metadata,
        sa.Column("decision_id", sa.String(36), primary_key=True),
        sa.Column("org_id", sa.String(64), nullable=False),
        sa.Column("manager_id", sa.String(128), nullable=False),
        sa.Column("decided_at", sa.DateTime(timezone=False), nullable=False),
        sa.Column("context", sa.String(64)),
        sa.Column("policy", sa.String(128), nullable=False),
        sa.Column("model_version", sa.String(128), nullable=False),
        sa.Column("fallback", sa.Boolean, nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("chosen_nudge_id", sa.String(128)),
        sa.Column("chosen_nudge_type", sa.String(128)),
        sa.Column("propensity", sa.Float),
        sa.Column("holdout_share", sa.Float, nullable=False),
        sa.Column("reason_code", sa.String(32)),
        sa.Column("candidates", sa.JSON, nullable=False),
        sa.Index(f"{prefix}ix_decisions_manager", "org_id", "manager_id", "decided_at"),
        sa.Index(f"{prefix}ix_decisions_time", "decided_at"),
    )
    events = sa.Table(
        f"{prefix}events",
        metadata,
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True),
        sa.Column("org_id", sa.String(64), nullable=False),
        sa.Column("dedupe_key", sa.String(200), nullable=False),
        sa.Column(
            "decision_id",
            sa.String(36),
            sa.ForeignKey(f"{prefix}decisions.decision_id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("type", sa.String(16), nullable=False),
        sa.Column("rating", sa.SmallInteger),
        sa.Column("nudge_id", sa.String(128)),
        sa.Column("idempotency_key", sa.String(128)),
        sa.Column("received_at", sa.DateTime(timezone=False), nullable=False),
        sa.UniqueConstraint("org_id", "dedupe_key", name=f"{prefix}uq_events_dedupe"),
        sa.Index(f"{prefix}ix_events_decision", "decision_id"),
    )
    return metadata, decisions, events


class EventStore:
    """Decisions and events in one database.

    url: SQLAlchemy URL (``sqlite:///path.db`` or ``postgresql+psycopg://user@host/db``).
    sqlite_synchronous: ``NORMAL`` (default; durable across process crashes in WAL mode) or
        ``FULL`` (also across power loss).
    create: create the tables if missing.
    """

    def __init__(
        self,
        url: str,
        *,
        table_prefix: str = "nudge_",
        sqlite_synchronous: Literal["NORMAL", "FULL"] = "NORMAL",
        create: bool = True,
        pool_size: int = 8,
    ) -> None:
        self.url = _as_url(url)
        self.metadata, self.decisions, self.events = build_tables(table_prefix)
        self.engine = _make_engine(self.url, sqlite_synchronous, pool_size)
        # SQLite has one writer at a time and its busy handler backs off by sleeping (up to
        # 100 ms per retry): serialising this process's writes avoids those stalls entirely.
        self._write_lock: contextlib.AbstractContextManager[object] = (
            threading.Lock() if self.url.startswith("sqlite") else contextlib.nullcontext()
        )
        if create:
            self.metadata.create_all(self.engine)
        d = self.decisions
        self._insert_decision = d.insert()
        self._sqlite = _SqliteDecisions.open(self.url, d, sqlite_synchronous)
        self._select_recent = (
            sa.select(d.c.chosen_nudge_id, d.c.decided_at)
            .where(
                d.c.org_id == sa.bindparam("org_id"),
                d.c.manager_id == sa.bindparam("manager_id"),
                d.c.decided_at > sa.bindparam("since"),
                d.c.kind == "nudge",
            )
            .order_by(d.c.decided_at)
        )

    def dispose(self) -> None:
        """Close every pooled connection."""
        if self._sqlite is not None:
            with self._write_lock:
                self._sqlite.close()
                self._sqlite = None  # later calls (if any) go through the engine
        self.engine.dispose()

    def drop_tables(self) -> None:
        """Drop both tables (tests clean up with this)."""
        self.metadata.drop_all(self.engine)

    def has_tables(self) -> bool:
        """True when both tables exist."""
        inspector = sa.inspect(self.engine)
        return all(inspector.has_table(t.name) for t in (self.decisions, self.events))

    def ping(self) -> None:
        """Raise if the database cannot be reached."""
        with self.engine.connect() as conn:
            conn.execute(sa.text("SELECT 1"))

    # -- decisions -------------------------------------------------------------------------

    def record_decision(self, decision: Decision) -> None:
        """Store ``decision`` (candidates with their probabilities, as JSON)."""
        candidates = [
            [nudge_id, nudge_type, probability]
            for nudge_id, nudge_type, probability in zip(
                decision.candidate_ids,
                decision.candidate_types,
                decision.probabilities,
                strict=True,
            )
        ]
        values = {
            "decision_id": decision.decision_id,
            "org_id": decision.org_id,
            "manager_id": decision.manager_id,
            "decided_at": _naive_utc(decision.decided_at),
            "context": decision.context,
            "policy": decision.policy,
            "model_version": decision.model_version,
            "fallback": decision.fallback,
            "kind": decision.kind,
            "chosen_nudge_id": decision.chosen_nudge_id,
            "chosen_nudge_type": decision.chosen_nudge_type,
            "propensity": decision.propensity,
            "holdout_share": decision.holdout_share,
            "reason_code": None if decision.reason_code is None else str(decision.reason_code),
            "candidates": candidates,
        }
        if self._sqlite is not None:
            with self._write_lock:
                self._sqlite.insert(values)
            return
        with self._write_lock, self.engine.begin() as conn:
            conn.execute(self._insert_decision, values)

    def recent_nudges(self, org_id: str, manager_id: str, since: dt.datetime) -> list[PastDecision]:
        """Decisions with a nudge for the manager after ``since`` (aware), oldest first."""
        if self._sqlite is not None:
            with self._write_lock:
                found = self._sqlite.recent(org_id, manager_id, _naive_utc(since))
            return [PastDecision(nudge_id, at.replace(tzinfo=dt.UTC)) for nudge_id, at in found]
        params = {"org_id": org_id, "manager_id": manager_id, "since": _naive_utc(since)}
        with self.engine.connect() as conn:
            rows = conn.execute(self._select_recent, params).all()
        return [PastDecision(nudge_id, at.replace(tzinfo=dt.UTC)) for nudge_id, at in rows]

    def get_decision(self, org_id: str, decision_id: str) -> dict[str, Any] | None:
        """The stored decision as a dict (decided_at aware UTC); None if unknown in ``org_id``."""
        d = self.decisions
        query = sa.select(d).where(d.c.decision_id == decision_id, d.c.org_id == org_id)
        with self.engine.connect() as conn:
            row = conn.execute(query).mappings().first()
        if row is None:
            return None
        record = dict(row)
        record["decided_at"] = _aware(record["decided_at"])
        return record

    # -- events ----------------------------------------------------------------------------

    def record_event(
        self,
        org_id: str,
        decision_id: str,
        event_type: EventType,
        *,
        rating: int | None = None,
        nudge_id: str | None = None,
        idempotency_key: str | None = None,
        received_at: dt.datetime | None = None,
    ) -> EventReceipt:
        """Store one event of a decision of ``org_id``; a replay returns ``duplicate=True``.

        Raises DecisionNotFoundError (unknown id or another org's), EventRejectedError (the
        decision served no nudge, or ``nudge_id`` is not the served one), and
        IdempotencyConflictError (key already used for another event).
        """
        if event_type not in EVENT_TYPES:
            raise EventRejectedError("type", f"unknown event type {event_type!r}")
        if (event_type == "rated") != (rating is not None):
            raise EventRejectedError("rating", "rating is required for, and only for, 'rated'")
        received_at = received_at or dt.datetime.now(dt.UTC)
        d, e = self.decisions, self.events
        dedupe_key = (
            f"key:{idempotency_key}" if idempotency_key else f"event:{decision_id}:{event_type}"
        )
        with self._write_lock, self.engine.begin() as conn:
            decision = conn.execute(
                sa.select(d.c.kind, d.c.chosen_nudge_id).where(
                    d.c.decision_id == decision_id, d.c.org_id == org_id
                )
            ).first()
            if decision is None:
                raise DecisionNotFoundError(decision_id)
            if decision.kind != "nudge":
                raise EventRejectedError("event_id", "the decision served no nudge")
            if nudge_id is not None and nudge_id != decision.chosen_nudge_id:
                raise EventRejectedError("nudge_id", "not the nudge served by this decision")
            existing = self._find_event(conn, org_id, dedupe_key)
            if existing is None:
                try:
                    with conn.begin_nested():
                        conn.execute(
                            e.insert().values(
                                org_id=org_id,
                                dedupe_key=dedupe_key,
                                decision_id=decision_id,
                                type=event_type,
                                rating=rating,
                                nudge_id=nudge_id,
                                idempotency_key=idempotency_key,
                                received_at=_naive_utc(received_at),
                            )
                        )
                    return EventReceipt(decision_id, event_type, False, received_at)
                except IntegrityError:  # a concurrent replay won the race
                    existing = self._find_event(conn, org_id, dedupe_key)
                    if existing is None:
                        raise
        if (existing.decision_id, existing.type) != (decision_id, event_type):
            raise IdempotencyConflictError("idempotency key already used for another event")
        return EventReceipt(decision_id, event_type, True, _aware(existing.received_at))

    def _find_event(self, conn: sa.Connection, org_id: str, dedupe_key: str) -> Any:
        e = self.events
        return conn.execute(
            sa.select(e.c.decision_id, e.c.type, e.c.received_at).where(
                e.c.org_id == org_id, e.c.dedupe_key == dedupe_key
            )
        ).first()

    def count_events(self, org_id: str, decision_id: str) -> int:
        """Number of stored events of a decision."""
        e = self.events
        query = sa.select(sa.func.count()).where(
            e.c.org_id == org_id, e.c.decision_id == decision_id
        )
        with self.engine.connect() as conn:
            return int(conn.execute(query).scalar_one())

    # -- erasure ---------------------------------------------------------------------------

    def erase_manager(self, org_id: str, manager_id: str) -> int:
        """Delete every decision and event of a manager; returns the decisions deleted."""
        d, e = self.decisions, self.events
        ids = sa.select(d.c.decision_id).where(d.c.org_id == org_id, d.c.manager_id == manager_id)
        with self._write_lock, self.engine.begin() as conn:
            conn.execute(e.delete().where(e.c.decision_id.in_(ids)))
            result = conn.execute(
                d.delete().where(d.c.org_id == org_id, d.c.manager_id == manager_id)
            )
        return int(result.rowcount or 0)

    # -- export ----------------------------------------------------------------------------

    def iter_deliveries(
        self, org_id: str | None = None, batch_size: int = 10_000
    ) -> Iterator[tuple[Any, ...]]:
        """Rows (delivery_id, manager_id, nudge_id, decided_at, policy, model_version, kind,
        propensity, opened, acted, rating) of nudge and control decisions, oldest first."""
        d, e = self.decisions, self.events
        flags = (
            sa.select(
                e.c.decision_id,
                sa.func.max(
                    sa.case((e.c.type.in_(("opened", "acted", "rated")), 1), else_=0)
                ).label("opened"),
                sa.func.max(sa.case((e.c.type == "acted", 1), else_=0)).label("acted"),
            )
            .group_by(e.c.decision_id)
            .subquery()
        )
        latest_rating = (
            sa.select(e.c.rating)
            .where(e.c.decision_id == d.c.decision_id, e.c.type == "rated")
            .order_by(e.c.received_at.desc(), e.c.id.desc())
            .limit(1)
            .correlate(d)
            .scalar_subquery()
        )
        query = (
            sa.select(
                d.c.decision_id,
                d.c.manager_id,
                d.c.chosen_nudge_id,
                d.c.decided_at,
                d.c.policy,
                d.c.model_version,
                d.c.kind,
                d.c.propensity,
                flags.c.opened,
                flags.c.acted,
                latest_rating,
            )
            .select_from(d.outerjoin(flags, flags.c.decision_id == d.c.decision_id))
            .where(d.c.kind.in_(("nudge", "control")))
            .order_by(d.c.decided_at, d.c.decision_id)
        )
        if org_id is not None:
            query = query.where(d.c.org_id == org_id)
        with self.engine.connect() as conn:
            result = conn.execution_options(stream_results=True, yield_per=batch_size).execute(
                query
            )
            for row in result:
                yield tuple(row)


def _sqlite_datetime(moment: dt.datetime) -> str:
    """A naive UTC datetime as SQLAlchemy's SQLite ``DateTime`` stores it (sortable text)."""
    return moment.strftime("%Y-%m-%d %H:%M:%S.%f")


class _SqliteDecisions:
    """Request-path access to the decisions table of a SQLite file, without SQLAlchemy.

    One dedicated ``sqlite3`` connection in autocommit mode: each insert is its own committed
    transaction (same WAL/synchronous pragmas as the engine), so a decision is stored before
    the caller returns. Rows are written exactly as SQLAlchemy writes them (datetimes as
    ``YYYY-MM-DD HH:MM:SS.ffffff`` text, JSON via ``json.dumps``, booleans as 0/1), so the
    engine reads them back unchanged. Not thread-safe: callers hold the store's write lock.
    """

    def __init__(self, connection: sqlite3.Connection, table: sa.Table) -> None:
        self._connection = connection
        self._columns = tuple(column.name for column in table.columns)
        names = ", ".join(self._columns)
        marks = ", ".join("?" * len(self._columns))
        self._insert_sql = f"INSERT INTO {table.name} ({names}) VALUES ({marks})"
        self._recent_sql = (
            f"SELECT chosen_nudge_id, decided_at FROM {table.name} WHERE org_id = ? AND "
            "manager_id = ? AND decided_at > ? AND kind = 'nudge' ORDER BY decided_at"
        )

    @classmethod
    def open(cls, url: str, table: sa.Table, synchronous: str) -> _SqliteDecisions | None:
        """The fast path for a file-backed SQLite URL; None for anything else."""
        if not url.startswith("sqlite"):
            return None
        path = sa.engine.make_url(url).database
        if not path or path == ":memory:" or path.startswith("file:"):
            return None
        connection = sqlite3.connect(
            path, timeout=10.0, isolation_level=None, check_same_thread=False
        )
        for pragma in (
            "journal_mode=WAL",
            f"synchronous={synchronous}",
            "busy_timeout=10000",
            "foreign_keys=ON",
        ):
            connection.execute(f"PRAGMA {pragma}")
        return cls(connection, table)

    def insert(self, values: dict[str, Any]) -> None:
        """Insert (and commit) one decision row; ``values`` as for the SQLAlchemy insert."""
        row = dict(values)
        row["decided_at"] = _sqlite_datetime(row["decided_at"])
        row["fallback"] = int(bool(row["fallback"]))
        row["candidates"] = json.dumps(row["candidates"])
        params = tuple(row.get(name) for name in self._columns)
        try:
            self._connection.execute(self._insert_sql, params)
        except sqlite3.IntegrityError as error:
            raise IntegrityError(self._insert_sql, params, error) from error

    def recent(
        self, org_id: str, manager_id: str, since: dt.datetime
    ) -> list[tuple[str, dt.datetime]]:
        """(chosen_nudge_id, decided_at naive UTC) of nudge decisions after ``since``."""
        rows = self._connection.execute(
            self._recent_sql, (org_id, manager_id, _sqlite_datetime(since))
        ).fetchall()
        return [(nudge_id, dt.datetime.fromisoformat(at)) for nudge_id, at in rows]

    def close(self) -> None:
        self._connection.close()


def _make_engine(url: str, synchronous: str, pool_size: int) -> Engine:
    if url.startswith("sqlite"):
        if synchronous not in ("NORMAL", "FULL"):
            raise ValueError(f"sqlite_synchronous must be NORMAL or FULL, got {synchronous!r}")
        path = sa.engine.make_url(url).database
        if path and path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        engine = sa.create_engine(
            url,
            connect_args={"check_same_thread": False, "timeout": 10.0},
            pool_size=pool_size,
            max_overflow=pool_size,
        )

        @sa.event.listens_for(engine, "connect")
        def _pragmas(dbapi_connection: Any, _record: Any) -> None:
            cursor = dbapi_connection.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute(f"PRAGMA synchronous={synchronous}")
            cursor.execute("PRAGMA busy_timeout=10000")
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.close()

        return engine
    return sa.create_engine(
        url,
        pool_size=pool_size,
        max_overflow=pool_size,
        pool_pre_ping=True,
        connect_args={"connect_timeout": 5} if url.startswith("postgresql") else {},
    )


def export_deliveries(
    db_url: str | Path,
    out_dir: Path,
    fmt: Literal["parquet", "csv"] = "parquet",
    *,
    table_prefix: str = "nudge_",
    org_id: str | None = None,
) -> Path:
    """Write the stored decisions and events as ``<out_dir>/deliveries.<fmt>``, atomically.

    One row per nudge or control decision (data/README.md, ``deliveries``):

    - ``delivery_id``: the decision's event id; ``delivered_at``: decision time (UTC);
    - ``nudge_id``: the served nudge, empty for control decisions;
    - ``policy``: ``<policy name>@<model version>``;
    - ``propensity``: probability the logging policy had of the row's treatment: for a nudge,
      ``(1 - holdout share) * sum of the probabilities of the candidates of the served nudge's
      type`` (the candidate probabilities sum to 1); for a control row, the holdout share;
    - ``opened``: an opened, acted or rated event was reported; ``acted``: an acted event was
      reported (so acted implies opened); both empty for control rows;
    - ``rating``: the latest rated event's rating, else empty.

    db_url: SQLAlchemy URL, or a path to the SQLite file. org_id: export one organisation only.
    Raises FileExistsError when ``deliveries`` exists in the other format (a folder holds one).
    """
    import pandas as pd  # export only; never on the request path

    from recommender.schemas import DELIVERIES

    if fmt not in ("parquet", "csv"):
        raise ValueError(f"fmt must be 'parquet' or 'csv', got {fmt!r}")
    out_dir = Path(out_dir)
    other = out_dir / f"deliveries.{'csv' if fmt == 'parquet' else 'parquet'}"
    if other.exists():
        raise FileExistsError(f"{other} exists; a folder holds deliveries in one format only")
    if "://" not in str(db_url) and not Path(db_url).is_file():
        raise ValueError(f"no event store at {db_url}: the SQLite file does not exist")
    store = EventStore(str(db_url), table_prefix=table_prefix, create=False, pool_size=1)
    try:
        if not store.has_tables():
            raise ValueError(f"no {table_prefix}decisions/{table_prefix}events tables in {db_url}")
        rows = list(store.iter_deliveries(org_id))
    finally:
        store.dispose()
    columns = list(zip(*rows, strict=True)) if rows else [()] * 11
    (ids, managers, nudges, decided, policies, versions, kinds, props, opened, acted, ratings) = (
        columns
    )
    control = pd.array([kind != "nudge" for kind in kinds], dtype="boolean")
    frame = pd.DataFrame(
        {
            "delivery_id": pd.array(ids, dtype="string"),
            "manager_id": pd.array(managers, dtype="string"),
            "nudge_id": pd.array(nudges, dtype="string"),
            "delivered_at": pd.to_datetime(list(decided), utc=True).as_unit("us"),
            "policy": pd.array(
                [f"{p}@{v}" for p, v in zip(policies, versions, strict=True)], dtype="string"
            ),
            "propensity": pd.array(props, dtype="float64"),
            "opened": pd.array([bool(x) for x in opened], dtype="boolean"),
            "acted": pd.array([bool(x) for x in acted], dtype="boolean"),
            "rating": pd.array(ratings, dtype="Int64"),
        },
        columns=list(DELIVERIES.columns),  # the contract's column order
    )
    frame.loc[control.to_numpy(dtype=bool, na_value=False), ["opened", "acted"]] = pd.NA
    out_dir.mkdir(parents=True, exist_ok=True)
    target = out_dir / f"deliveries.{fmt}"
    tmp = out_dir / f".deliveries.{uuid.uuid4().hex}.tmp"
    try:
        if fmt == "parquet":
            frame.to_parquet(tmp, index=False)
        else:
            out = frame.copy()
            out["delivered_at"] = out["delivered_at"].dt.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
            out.to_csv(tmp, index=False)
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)
    return target
