"""Alembic environment: the URL comes from livesale's settings, never a file."""

from __future__ import annotations

from alembic import context

from livesale.core.db import create_db_engine
from livesale.models import Base

config = context.config
target_metadata = Base.metadata


def run_migrations_offline() -> None:
    context.configure(
        url=config.attributes["url"],
        target_metadata=target_metadata,
        literal_binds=True,
        render_as_batch=True,
    )
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        _run(connection)
        return
    engine = create_db_engine(config.attributes["url"], pool_size=1)
    with engine.connect() as conn:
        sqlite = conn.dialect.name == "sqlite"
        if sqlite:
            # A batch migration copies a table and drops the old one: with foreign
            # keys enforced, dropping live_sessions would cascade to every order.
            # (The pragma only takes effect outside a transaction.)
            conn.connection.driver_connection.execute("PRAGMA foreign_keys=OFF")  # type: ignore[union-attr]
        _run(conn)
        if sqlite:
            broken = conn.connection.driver_connection.execute("PRAGMA foreign_key_check").fetchall()  # type: ignore[union-attr]
            conn.connection.driver_connection.execute("PRAGMA foreign_keys=ON")  # type: ignore[union-attr]
            if broken:
                raise RuntimeError(f"the migration left rows without their parent: {broken[:5]}")
    engine.dispose()


def _run(connection) -> None:  # type: ignore[no-untyped-def]
    # SQLite cannot ALTER most things in place; batch mode copies tables.
    context.configure(connection=connection, target_metadata=target_metadata, render_as_batch=True)
    with context.begin_transaction():
        context.run_migrations()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
