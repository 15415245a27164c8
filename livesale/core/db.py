"""Database engines and the few places where SQLite and PostgreSQL differ.

The rest of the core writes dialect-neutral SQLAlchemy Core; the functions
here hide the two differences that matter for correctness:

* how a write transaction pins its session and gets a transaction id
  (``begin_session_write``), and
* how a reader learns which transaction ids its snapshot can see
  (``read_snapshot``), which is what lets Redis totals be rebuilt from SQL
  while orders keep arriving (see ``core.totals``).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.dialects import postgresql, sqlite

from . import tables as t

#: The database could not be reached or used (PostgreSQL down or restarting, connection lost, pool
#: exhausted, SQLite file unavailable or locked too long): retrying later is right. Anything else
#: from the database is a bug.
DATABASE_UNAVAILABLE: tuple[type[Exception], ...] = (
    sa.exc.OperationalError, sa.exc.InterfaceError, sa.exc.TimeoutError,
)


def create_db_engine(url: str, *, pool_size: int = 10) -> sa.Engine:
    """An engine for ``url`` with livesale's connection settings."""
    if url.startswith("sqlite"):
        engine = sa.create_engine(
            url,
            connect_args={"timeout": 30, "check_same_thread": False},
            # One connection per thread/greenlet; SQLite connections are cheap
            # but keeping them open keeps the page cache warm.
            pool_size=pool_size,
            max_overflow=20,
        )
        _configure_sqlite(engine)
        return engine
    if url.startswith("postgresql://"):
        url = "postgresql+psycopg://" + url.removeprefix("postgresql://")
    return sa.create_engine(url, pool_size=pool_size, max_overflow=20, pool_pre_ping=True)


def _configure_sqlite(engine: sa.Engine) -> None:
    # pysqlite's own transaction handling does not BEGIN before SELECT, so a
    # multi-statement read would not be one snapshot, and it cannot BEGIN
    # IMMEDIATE. We take over, as SQLAlchemy's SQLite documentation suggests.
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection, _record):  # type: ignore[no-untyped-def]
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        # WAL lets readers run beside the single writer; NORMAL syncs the WAL
        # at checkpoints, so a committed order survives a crash of the app
        # (the WAL is in the OS's hands) — see README "Durability".
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA busy_timeout=30000")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: sa.Connection) -> None:
        # Writers take the write lock up front: a deferred transaction that
        # reads and then writes can fail with SQLITE_BUSY instead of waiting.
        if conn.get_execution_options().get("livesale_write"):
            conn.exec_driver_sql("BEGIN IMMEDIATE")
        else:
            conn.exec_driver_sql("BEGIN")


def is_sqlite(conn: sa.Connection | sa.Engine) -> bool:
    return conn.dialect.name == "sqlite"


@contextmanager
def write_transaction(engine: sa.Engine) -> Iterator[sa.Connection]:
    """A connection in a write transaction, committed on success."""
    with engine.connect() as conn:
        conn = conn.execution_options(livesale_write=True)
        with conn.begin():
            yield conn


@contextmanager
def read_transaction(engine: sa.Engine) -> Iterator[sa.Connection]:
    """A connection whose statements all read one consistent snapshot."""
    with engine.connect() as conn:
        if not is_sqlite(conn):
            conn = conn.execution_options(isolation_level="REPEATABLE READ")
        with conn.begin():
            yield conn


@dataclasses.dataclass(frozen=True, slots=True)
class SessionLock:
    """What a write transaction learned when it pinned its session."""

    status: str
    started_at: datetime | None
    owner_id: int | None
    catalog_version: int
    #: Id of this write transaction, comparable with ``Snapshot``.
    txid: int


_s = t.live_sessions
# Built once: statement construction costs more than SQLite's execution of them.
# SQLite serialises writers, so a per-session counter bumped inside the write
# lock orders transactions exactly as they commit.
_PIN_SQLITE = (
    sa.update(_s)
    .where(_s.c.id == sa.bindparam("sid"))
    .values(write_seq=_s.c.write_seq + 1)
    .returning(_s.c.status, _s.c.started_at, _s.c.owner_id, _s.c.catalog_version, _s.c.write_seq)
)
# FOR SHARE lets many order writers run at once while ``end`` (an UPDATE)
# waits for them; READ COMMITTED re-reads the row after a concurrent update,
# so the status seen here is current.
_PIN_POSTGRES = (
    sa.select(
        _s.c.status,
        _s.c.started_at,
        _s.c.owner_id,
        _s.c.catalog_version,
        sa.cast(sa.cast(sa.func.pg_current_xact_id(), sa.Text), sa.BigInteger),
    )
    .where(_s.c.id == sa.bindparam("sid"))
    .with_for_update(read=True)
)


def begin_session_write(conn: sa.Connection, session_id: int) -> SessionLock | None:
    """Pin the session for this write transaction; ``None`` if it does not exist.

    While pinned, the session cannot change status (ending waits for us), so
    an order is never added to a session whose results are being computed.
    """
    statement = _PIN_SQLITE if is_sqlite(conn) else _PIN_POSTGRES
    row = conn.execute(statement, {"sid": session_id}).one_or_none()
    if row is None:
        return None
    return SessionLock(
        status=row[0], started_at=row[1], owner_id=row[2], catalog_version=row[3], txid=int(row[4])
    )


@dataclasses.dataclass(frozen=True, slots=True)
class Snapshot:
    """Which transaction ids a read saw: PostgreSQL's ``xmin:xmax:xip``.

    A transaction id ``x`` is visible iff ``x < xmin``, or ``x < xmax`` and
    ``x`` is not in ``xip``.
    """

    xmin: int
    xmax: int
    xip: tuple[int, ...] = ()

    def sees(self, txid: int) -> bool:
        if txid < self.xmin:
            return True
        return txid < self.xmax and txid not in self.xip


def read_snapshot(conn: sa.Connection, session_id: int) -> Snapshot:
    """The snapshot of the current read transaction (see ``read_transaction``)."""
    if is_sqlite(conn):
        seq = conn.execute(
            sa.select(t.live_sessions.c.write_seq).where(t.live_sessions.c.id == session_id)
        ).scalar_one()
        return Snapshot(xmin=seq + 1, xmax=seq + 1)
    # In REPEATABLE READ the first statement fixes the transaction snapshot,
    # and pg_current_snapshot() reports exactly that snapshot.
    text = conn.execute(sa.text("SELECT pg_current_snapshot()::text")).scalar_one()
    xmin, xmax, xip = text.split(":")
    return Snapshot(
        xmin=int(xmin), xmax=int(xmax), xip=tuple(int(x) for x in xip.split(",") if x)
    )


def insert_ignoring_conflicts(conn: sa.Connection, table: sa.Table) -> sa.Insert:
    """``INSERT … ON CONFLICT DO NOTHING`` for the connection's dialect."""
    module = sqlite if is_sqlite(conn) else postgresql
    return module.insert(table).on_conflict_do_nothing()
