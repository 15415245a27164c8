"""``livesale db backup``, ``livesale db restore`` and ``livesale export``: keeping and moving the data.

The work is in ``core.backup`` and ``core.export``; these commands read the
settings, print one line of what was done, and turn a refusal into one line
on stderr with the exit code the core gives it: 1 for a refusal or a file
that is not a livesale backup (a non-empty database without ``--force``
included), 2 for what the environment lacks (the PostgreSQL client tools,
a database that does not answer).

``livesale.cli`` attaches them with ``register(...)``.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import click
import sqlalchemy as sa
from flask import Flask

from .config import ConfigError
from .core import backup as backup_service
from .core import export as export_service
from .core.errors import Unavailable

#: Runs a command with the app, passed to it as the keyword ``app`` (``livesale.cli.with_app(...)``).
AppDecorator = Callable[[Callable[..., Any]], Callable[..., Any]]
#: A context manager that has Redis answering for the app while it is open (the embedded one started).
RedisReady = Callable[[Flask], contextlib.AbstractContextManager[Any]]


class _Refused(click.ClickException):
    def __init__(self, message: str, exit_code: int):
        super().__init__(message)
        self.exit_code = exit_code


@contextlib.contextmanager
def _plain_failures() -> Iterator[None]:
    """The core's refusals and an unreachable database as one line each."""
    try:
        yield
    except backup_service.BackupError as exc:
        raise _Refused(str(exc), exc.exit_code) from exc
    except sa.exc.OperationalError as exc:
        first = str(exc.orig).strip().splitlines()[0] if exc.orig else str(exc)
        raise _Refused(f"cannot use the database: {first}", 2) from exc


def register(main: click.Group, db: click.Group, *, existing_data: AppDecorator, any_data: AppDecorator,
             redis_ready: RedisReady) -> None:
    """Add ``backup`` and ``restore`` to the ``db`` group and ``export`` to ``main``.

    ``existing_data`` gives a command the app once livesale's tables are known to be there (backup,
    export); ``any_data`` gives it the app whether or not they are (restore may create the database);
    ``redis_ready`` has Redis answer (the embedded one started) for the restore's totals reset.
    """

    @db.command("backup")
    @click.argument("file", type=click.Path(dir_okay=False, path_type=Path))
    @click.option("--overwrite", is_flag=True, help="Replace FILE if it exists.")
    @existing_data
    def db_backup(file: Path, overwrite: bool, app: Flask) -> None:
        """Back up the database to FILE, safely while livesale serves.

        SQLite: a copy made with SQLite's online backup API (a consistent
        snapshot, the server keeps writing). PostgreSQL: pg_dump's custom
        format (the PostgreSQL client tools must be installed).
        """
        url = app.config["DATABASE_URL"]
        with _plain_failures():
            report = backup_service.backup(url, file, overwrite=overwrite)
        click.echo(f"backup written to {report.path} ({backup_service.describe(report)})")

    @db.command("restore")
    @click.argument("file", type=click.Path(dir_okay=False, path_type=Path))
    @click.option("--force", is_flag=True, help="Replace a database that already holds data.")
    @any_data
    def db_restore(file: Path, force: bool, app: Flask) -> None:
        """Replace the database with the backup FILE (made by `livesale db backup`).

        Refuses a database that holds any data unless --force (exit code 1).
        A backup from an older livesale is migrated forward. Stop `livesale
        serve` first. The running totals in Redis are rebuilt afterwards.
        """
        url = app.config["DATABASE_URL"]
        with _plain_failures():
            try:
                before = backup_service.session_ids(url)
            except sa.exc.DatabaseError:
                before = set()  # not a livesale database (yet): no totals of it in Redis
            report = backup_service.restore(url, file, force=force)
        click.echo(f"restored {report.path} ({backup_service.describe(report)})")
        from .extensions import backend

        try:
            with redis_ready(app):
                rebuilt = backup_service.reset_totals(backend.store_of(app), session_ids_before=before)
        except (Unavailable, ConfigError):
            click.echo("Redis did not answer: the running totals will be rebuilt from the database "
                       "when livesale next starts", err=True)
            return
        click.echo(f"running totals rebuilt for {rebuilt} live session(s)", err=True)

    @main.command("export")
    @click.argument("file", type=click.Path(dir_okay=False, path_type=Path))
    @click.option("--overwrite", is_flag=True, help="Replace FILE if it exists.")
    @existing_data
    def export(file: Path, overwrite: bool, app: Flask) -> None:
        """Export every session, product, order and result as CSV files in the zip FILE.

        UTF-8 CSVs (with a BOM, for Excel) and a manifest.json of each file's
        rows and sums; money in fen and in yuan; times in UTC.
        """
        from .core.db import create_db_engine

        engine = create_db_engine(app.config["DATABASE_URL"], pool_size=1)
        try:
            with _plain_failures():
                report = export_service.export_zip(engine, file, overwrite=overwrite)
        finally:
            engine.dispose()
        click.echo(f"export written to {report.path} ({export_service.describe(report)})")
