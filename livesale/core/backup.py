"""Backing up and restoring livesale's database (no Flask).

SQLite is copied with SQLite's online backup API: the copy is one read
transaction, so it is a consistent snapshot even while a server writes
orders (WAL lets the writer go on beside it). PostgreSQL is dumped with
``pg_dump --format=custom`` and restored with ``pg_restore --clean
--if-exists`` (the PostgreSQL client tools must be installed).

A restore replaces everything in the database; it refuses a database that
holds anything unless forced. A backup from an older livesale is migrated
forward; one from a newer livesale (an unknown schema revision) is refused.

Redis holds only a projection of SQL (``core.totals``): after a restore the
caller drops the running totals of every session the database knew before
or knows now and rebuilds those of live sessions (``reset_totals``).
"""

from __future__ import annotations

import dataclasses
import os
import re
import shutil
import sqlite3
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import closing, contextmanager
from pathlib import Path

import redis
import sqlalchemy as sa

from . import schema
from . import tables as t
from .db import create_db_engine, read_transaction
from .errors import Unavailable
from .sessions import Store, rebuild_totals

#: Tables counted in what a backup or restore reports, as ``name: table``.
COUNTED = {
    "users": t.users, "tokens": t.api_tokens, "sessions": t.live_sessions, "products": t.products,
    "orders": t.orders, "results": t.session_results,
}

_SQLITE_MAGIC = b"SQLite format 3\x00"
_PGDUMP_MAGIC = b"PGDMP"


class BackupError(Exception):
    """A backup or restore that cannot go ahead; ``str()`` is one line for the user.

    ``exit_code`` follows the CLI's rule: 1 for a refusal or a file that is not
    what it should be, 2 for what the environment lacks (a missing tool).
    """

    exit_code = 1


class ToolMissing(BackupError):
    """``pg_dump``/``pg_restore`` are not installed."""

    exit_code = 2


@dataclasses.dataclass(frozen=True, slots=True)
class Report:
    """What a backup wrote or a restore loaded."""

    path: Path
    size_bytes: int
    dialect: str
    #: Schema revision of the data (after a restore: the database's, migrated forward).
    revision: str
    counts: dict[str, int]
    #: A restore: the revision the backup was taken at.
    from_revision: str = ""


def describe(report: Report) -> str:
    """The report as one line's tail: ``12.3 MB: 4 sessions, 1,024 orders, …; schema 0003``."""
    size = report.size_bytes
    if size < 1024:
        shown = f"{size} B"
    else:
        shown = next(f"{size / 1024 ** i:,.1f} {unit}" for i, unit in ((3, "GB"), (2, "MB"), (1, "KB"))
                     if size >= 1024 ** i)
    figures = ", ".join(f"{n:,} {name}" for name, n in report.counts.items())
    migrated = f", migrated from {report.from_revision}" if report.from_revision not in ("", report.revision) else ""
    return f"{shown}: {figures}; schema {report.revision}{migrated}"


def known_revisions() -> list[str]:
    """Every schema revision this livesale knows, oldest first."""
    from alembic.script import ScriptDirectory

    script = ScriptDirectory.from_config(schema.alembic_config(""))
    return [rev.revision for rev in reversed(list(script.walk_revisions()))]


def _check_revision(revision: str | None, what: str) -> str:
    if revision is None:
        raise BackupError(f"{what} is not a livesale database (it has no schema revision)")
    if revision not in known_revisions():
        raise BackupError(
            f"{what} has schema revision {revision}, which this livesale does not know: "
            "it was made by a newer livesale; upgrade livesale first"
        )
    return revision


def _sqlite_path(url: str) -> Path:
    database = sa.engine.make_url(url).database
    if not database or database == ":memory:" or database.startswith("file:"):
        raise BackupError(f"cannot back up or restore the SQLite database {url!r}: only a file path is supported")
    return Path(database)


def _dialect(url: str) -> str:
    name = sa.engine.make_url(url).get_backend_name()
    if name not in ("sqlite", "postgresql"):
        raise BackupError(f"backups support SQLite and PostgreSQL, not {name}")
    return name


# --- what a database holds ----------------------------------------------------


def table_counts(conn: sa.Connection) -> dict[str, int]:
    """Rows per livesale table, as named in ``COUNTED``."""
    return {
        name: int(conn.execute(sa.select(sa.func.count()).select_from(table)).scalar_one())
        for name, table in COUNTED.items()
    }


def _holds_anything(engine: sa.Engine) -> bool:
    """Whether any table of the database (but Alembic's) has a row: livesale's or anyone's."""
    inspector = sa.inspect(engine)
    names = [n for n in inspector.get_table_names() if n != "alembic_version"]
    with engine.connect() as conn:
        for name in names:
            table = sa.table(name)
            if conn.execute(sa.select(sa.literal(1)).select_from(table).limit(1)).first() is not None:
                return True
    return False


def schema_revision(conn: sa.Connection) -> str | None:
    """The database's Alembic revision, ``None`` if it has no livesale schema."""
    if not sa.inspect(conn).has_table("alembic_version"):
        return None
    return conn.execute(sa.text("SELECT version_num FROM alembic_version")).scalar()


def session_ids(url: str) -> set[int]:
    """Ids of every session in the database at ``url`` (none if it has no livesale schema)."""
    if _dialect(url) == "sqlite" and not _sqlite_path(url).exists():
        return set()
    engine = create_db_engine(url, pool_size=1)
    try:
        with engine.connect() as conn:
            if not sa.inspect(conn).has_table("live_sessions"):
                return set()
            return set(conn.execute(sa.select(t.live_sessions.c.id)).scalars())
    finally:
        engine.dispose()


def _refuse_unless_empty(url: str, force: bool) -> None:
    if force:
        return
    if _dialect(url) == "sqlite" and not _sqlite_path(url).exists():
        return
    engine = create_db_engine(url, pool_size=1)
    try:
        full = _holds_anything(engine)
    finally:
        engine.dispose()
    if full:
        raise BackupError("the database is not empty; a restore would replace everything in it (--force to do so)")


def prepare_output(path: Path, overwrite: bool) -> None:
    """Refuse to write ``path`` over an existing file (unless ``overwrite``) or into a missing folder."""
    if path.exists() and not overwrite:
        raise BackupError(f"{path} exists; choose another name or pass --overwrite")
    if not path.parent.is_dir():
        raise BackupError(f"no folder {path.parent} to write {path.name} into")


@contextmanager
def _temporary_beside(path: Path) -> Iterator[Path]:
    """A temporary file in ``path``'s folder, so the finished file is renamed into place at once:
    a backup interrupted midway never looks like a complete one."""
    fd, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".part", dir=path.parent)
    os.close(fd)
    tmp = Path(name)
    try:
        yield tmp
    finally:
        tmp.unlink(missing_ok=True)


# --- backup -------------------------------------------------------------------


def backup(url: str, path: Path, *, overwrite: bool = False) -> Report:
    """Write a backup of the database at ``url`` to ``path``: a SQLite file, or a pg_dump archive."""
    path = Path(path).absolute()
    prepare_output(path, overwrite)
    if _dialect(url) == "sqlite":
        return _backup_sqlite(_sqlite_path(url), path)
    return _backup_postgres(url, path)


def _open_sqlite(path: Path) -> sqlite3.Connection:
    conn = sqlite3.connect(path, timeout=30, isolation_level=None)
    conn.execute("PRAGMA busy_timeout=30000")
    return conn


def _sqlite_revision(conn: sqlite3.Connection) -> str | None:
    try:
        row = conn.execute("SELECT version_num FROM alembic_version").fetchone()
    except sqlite3.DatabaseError:
        return None
    return row[0] if row else None


def _sqlite_counts(conn: sqlite3.Connection) -> dict[str, int]:
    return {name: conn.execute(f'SELECT count(*) FROM "{table.name}"').fetchone()[0] for name, table in COUNTED.items()}


def _backup_sqlite(db_path: Path, path: Path) -> Report:
    if not db_path.is_file():
        raise BackupError(f"no database at {db_path}")
    if path.exists() and path.samefile(db_path):
        raise BackupError("the backup file cannot be the database itself")
    with _temporary_beside(path) as tmp:
        with closing(_open_sqlite(db_path)) as source:
            revision = _check_revision(_sqlite_revision(source), str(db_path))
            with closing(sqlite3.connect(tmp, isolation_level=None)) as target:
                # All pages in one step: one read transaction, one consistent snapshot,
                # while the server's writer carries on in the WAL.
                source.backup(target)
                # A single self-contained file (no -wal beside it), checked before it is trusted.
                target.execute("PRAGMA journal_mode=DELETE")
                problem = target.execute("PRAGMA quick_check").fetchone()[0]
                if problem != "ok":  # pragma: no cover - would be a disk or SQLite fault
                    raise BackupError(f"the backup did not check out: {problem}")
                counts = _sqlite_counts(target)
        os.replace(tmp, path)
    return Report(path=path, size_bytes=path.stat().st_size, dialect="sqlite", revision=revision, counts=counts)


# --- PostgreSQL tools -----------------------------------------------------------


def _tool_version(binary: str) -> tuple[int, ...]:
    try:
        out = subprocess.run([binary, "--version"], capture_output=True, text=True, timeout=30).stdout
    except OSError:
        return ()
    match = re.search(r"(\d+)(?:\.(\d+))?", out)
    return tuple(int(g) for g in match.groups() if g) if match else ()


def find_pg_tool(name: str) -> str:
    """The newest ``pg_dump``/``pg_restore`` on the PATH or under /usr/lib/postgresql/*/bin.

    The newest, because pg_dump refuses a server newer than itself but dumps older ones.
    """
    candidates = [found] if (found := shutil.which(name)) else []
    candidates += [str(p) for p in Path("/usr/lib/postgresql").glob(f"*/bin/{name}") if os.access(p, os.X_OK)]
    versioned = [(v, c) for c in candidates if (v := _tool_version(c))]
    if not versioned:
        raise ToolMissing(
            f"{name} is not installed: install the PostgreSQL client tools "
            "(Debian/Ubuntu: apt install postgresql-client; macOS: brew install libpq)"
        )
    return max(versioned)[1]


def _libpq(url: str) -> tuple[str, dict[str, str]]:
    """A libpq connection URI for ``url`` without its password, and the environment carrying it
    (so the password never shows in a process list)."""
    parsed = sa.engine.make_url(url)
    env = dict(os.environ)
    if parsed.password:
        env["PGPASSWORD"] = parsed.password
    plain = parsed.set(drivername="postgresql", password=None)
    return plain.render_as_string(hide_password=False), env


def _run(command: list[str], env: dict[str, str], what: str) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(command, env=env, capture_output=True, text=True)
    if done.returncode != 0:
        detail = " ".join(done.stderr.strip().splitlines()[-1:]) or f"exit code {done.returncode}"
        raise BackupError(f"{what} failed: {detail}")
    return done


def _backup_postgres(url: str, path: Path) -> Report:
    pg_dump = find_pg_tool("pg_dump")
    uri, env = _libpq(url)
    engine = create_db_engine(url, pool_size=1)
    try:
        with _temporary_beside(path) as tmp:
            try:
                with read_transaction(engine) as conn:
                    revision = _check_revision(schema_revision(conn), "the database")
                    # pg_dump reads the very snapshot the counts are taken in.
                    snapshot = conn.execute(sa.text("SELECT pg_export_snapshot()")).scalar_one()
                    counts = table_counts(conn)
                    _run([pg_dump, "--format=custom", f"--snapshot={snapshot}", f"--file={tmp}", f"--dbname={uri}"],
                         env, "pg_dump")
            except sa.exc.OperationalError as exc:
                raise BackupError(f"cannot reach the database: {str(exc.orig).strip().splitlines()[0]}") from exc
            os.replace(tmp, path)
    finally:
        engine.dispose()
    return Report(path=path, size_bytes=path.stat().st_size, dialect="postgresql", revision=revision, counts=counts)


# --- restore --------------------------------------------------------------------


def _kind_of(path: Path) -> str:
    try:
        with path.open("rb") as f:
            head = f.read(16)
    except FileNotFoundError:
        raise BackupError(f"no file {path}") from None
    except IsADirectoryError:
        raise BackupError(f"{path} is a folder, not a backup file") from None
    if head.startswith(_SQLITE_MAGIC):
        return "sqlite"
    if head.startswith(_PGDUMP_MAGIC):
        return "postgresql"
    raise BackupError(f"{path} is not a livesale backup (neither a SQLite file nor a pg_dump custom-format archive)")


def restore(url: str, path: Path, *, force: bool = False) -> Report:
    """Replace the database at ``url`` with the backup at ``path``, migrated to this livesale's schema.

    Refuses (``BackupError``) a database that holds anything unless ``force``,
    a file that is not a livesale backup, one of the other database kind, and
    one from a newer livesale.
    """
    path = Path(path).absolute()
    dialect = _dialect(url)
    kind = _kind_of(path)
    if kind != dialect:
        names = {"sqlite": "SQLite", "postgresql": "PostgreSQL"}
        raise BackupError(
            f"{path.name} is a {names[kind]} backup but the database is {names[dialect]}; "
            "restore it into a database of its kind (livesale export moves data as CSV)"
        )
    if dialect == "sqlite":
        return _restore_sqlite(_sqlite_path(url), path, force=force)
    return _restore_postgres(url, path, force=force)


def _restore_sqlite(db_path: Path, path: Path, *, force: bool) -> Report:
    with closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True)) as conn:
        revision = _check_revision(_sqlite_revision(conn), path.name)
        if conn.execute("PRAGMA quick_check").fetchone()[0] != "ok":
            raise BackupError(f"{path.name} is damaged (SQLite's check failed)")
    url = f"sqlite:///{db_path}"
    if not db_path.parent.is_dir():
        raise BackupError(f"no folder {db_path.parent} for the database")
    _refuse_unless_empty(url, force)
    with _temporary_beside(db_path) as tmp:
        # Migrate a copy, never the backup itself, and never the live file halfway.
        with closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True)) as src, \
                closing(sqlite3.connect(tmp, isolation_level=None)) as copy:
            src.backup(copy)
            copy.execute("PRAGMA journal_mode=DELETE")
        schema.upgrade(f"sqlite:///{tmp}")
        # Copied in with the backup API rather than renamed over the file, so the
        # database's WAL and any open connection stay coherent.
        with closing(sqlite3.connect(tmp, isolation_level=None)) as src, closing(_open_sqlite(db_path)) as target:
            src.backup(target)
            counts = _sqlite_counts(target)
            now = _sqlite_revision(target) or ""
    return Report(path=path, size_bytes=path.stat().st_size, dialect="sqlite", revision=now, counts=counts,
                  from_revision=revision)


def _archive_revision(pg_restore: str, path: Path) -> str | None:
    """The schema revision inside a pg_dump archive, read without restoring it."""
    listing = _run([pg_restore, "--list", str(path)], dict(os.environ), f"reading {path.name}").stdout
    if not re.search(r"TABLE DATA \S+ live_sessions ", listing):
        raise BackupError(f"{path.name} is a PostgreSQL archive but not of a livesale database")
    data = _run([pg_restore, "--data-only", "--table=alembic_version", "--file=-", str(path)],
                dict(os.environ), f"reading {path.name}").stdout
    match = re.search(r"^COPY \S*alembic_version \(version_num\) FROM stdin;\n([^\n\\]+)\n", data, re.M)
    return match.group(1).strip() if match else None


def _restore_postgres(url: str, path: Path, *, force: bool) -> Report:
    pg_restore = find_pg_tool("pg_restore")
    revision = _check_revision(_archive_revision(pg_restore, path), path.name)
    try:
        _refuse_unless_empty(url, force)
    except sa.exc.OperationalError as exc:
        raise BackupError(f"cannot reach the database: {str(exc.orig).strip().splitlines()[0]}") from exc
    uri, env = _libpq(url)
    # One transaction: a restore that fails leaves the database as it was. Objects are
    # owned by whoever restores (the archive's owners may not exist here).
    _run([pg_restore, "--clean", "--if-exists", "--single-transaction", "--exit-on-error", "--no-owner",
          "--no-privileges", f"--dbname={uri}", str(path)], env, "pg_restore")
    schema.upgrade(url)
    engine = create_db_engine(url, pool_size=1)
    try:
        with engine.connect() as conn:
            counts = table_counts(conn)
            now = schema_revision(conn) or ""
    finally:
        engine.dispose()
    return Report(path=path, size_bytes=path.stat().st_size, dialect="postgresql", revision=now, counts=counts,
                  from_revision=revision)


# --- Redis after a restore -------------------------------------------------------


def reset_totals(store: Store, *, session_ids_before: set[int]) -> int:
    """Drop the running totals (and order feeds) of every session the database knew before the
    restore or knows now, then rebuild those of live sessions from the restored SQL. Returns how many
    were rebuilt. Raises ``Unavailable`` if Redis does not answer.

    Without this a running server would go on trusting figures counted from the old data, and a
    session id reused by the restored data would show another session's totals.
    """
    try:
        store.totals.redis.ping()
    except redis.RedisError as exc:
        raise Unavailable("the totals store (Redis) is unavailable") from exc
    with store.db.connect() as conn:
        rows = conn.execute(sa.select(t.live_sessions.c.id, t.live_sessions.c.status)).all()
    for session_id in session_ids_before | {sid for sid, _ in rows}:
        store.totals.discard(session_id=session_id)
    live = [sid for sid, status in rows if status == "live"]
    for session_id in live:
        rebuild_totals(store, session_id=session_id)
    return len(live)
