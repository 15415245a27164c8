"""What is wrong with the environment, said in a sentence with what to do about it.

``livesale`` runs these checks before a command touches anything, and turns the
errors a database or Redis raises later into the same kind of sentence: a
person who mistyped ``LIVESALE_DATABASE_URL`` needs to read what to change,
not 60 lines of driver internals. Every function here raises
:class:`~livesale.config.ConfigError` (or returns its message); none imports
Flask.
"""

from __future__ import annotations

import re
from pathlib import Path

import redis
import redis.cluster
import redis.sentinel
import sqlalchemy as sa
from redis.backoff import NoBackoff
from redis.retry import Retry

from . import redis_urls
from .config import ConfigError

#: Database backends livesale's SQL is written and tested for.
BACKENDS = ("sqlite", "postgresql")
_DB_EXAMPLES = "sqlite:////path/to/livesale.sqlite or postgresql+psycopg://user:password@host/dbname"
_REDIS_FIX = "start it, fix LIVESALE_REDIS_URL, or unset it to use the Redis livesale starts itself"


def mask_database_url(url: str) -> str:
    """The URL with its password replaced by ``***`` (for logs and ``livesale info``)."""
    try:
        return sa.engine.make_url(url).render_as_string(hide_password=True)
    except sa.exc.ArgumentError:
        return url if "@" not in url else "***"


def mask_redis_url(url: str) -> str:
    """The URL with its passwords replaced by ``***`` (one server, cluster or Sentinel)."""
    return redis_urls.describe(url)


# --- database -------------------------------------------------------------------------------------


def engine_url(url: str) -> str:
    # As core.db.create_db_engine: a bare postgresql:// means psycopg 3 (installed with livesale).
    return "postgresql+psycopg://" + url.removeprefix("postgresql://") if url.startswith("postgresql://") else url


def sqlite_path(url: str) -> Path | None:
    """The file of an SQLite URL (None for other databases or an in-memory one)."""
    parsed = sa.engine.make_url(url)
    if parsed.get_backend_name() != "sqlite" or parsed.database in (None, "", ":memory:"):
        return None
    return Path(parsed.database)


def check_database_url(url: str, *, folder_must_exist: bool = True) -> None:
    """Refuse a database URL livesale cannot use, without connecting.

    ``folder_must_exist=False`` for the default SQLite file, whose folder (the instance folder) livesale creates.
    """
    try:
        parsed = sa.engine.make_url(url)
    except sa.exc.ArgumentError:
        raise ConfigError(f"LIVESALE_DATABASE_URL {url!r} is not a database URL: use {_DB_EXAMPLES}") from None
    backend = parsed.get_backend_name()
    if backend == "postgres":
        raise ConfigError(
            "LIVESALE_DATABASE_URL starts with postgres://, a name SQLAlchemy does not know: "
            "write postgresql+psycopg:// instead"
        )
    if backend not in BACKENDS:
        raise ConfigError(f"livesale runs on SQLite or PostgreSQL, not {backend}: set LIVESALE_DATABASE_URL to "
                          f"{_DB_EXAMPLES}, or unset it for the SQLite file in the instance folder")
    try:
        # Loads the dialect and imports its driver; connects to nothing.
        sa.create_engine(engine_url(url)).dispose()
    except ImportError as exc:
        module = exc.name or str(exc)
        raise ConfigError(
            f"the database driver of LIVESALE_DATABASE_URL ({parsed.drivername}) is not installed "
            f"(no module {module!r}): use postgresql+psycopg:// (installed with livesale) or install that driver"
        ) from None
    except sa.exc.NoSuchModuleError:
        raise ConfigError(f"LIVESALE_DATABASE_URL names an unknown driver {parsed.drivername!r}: use "
                          f"{_DB_EXAMPLES}") from None
    except sa.exc.ArgumentError as exc:
        raise ConfigError(f"LIVESALE_DATABASE_URL cannot be used ({exc}): use {_DB_EXAMPLES}") from None
    path = sqlite_path(url)
    if path is not None and folder_must_exist and not path.absolute().parent.is_dir():
        raise ConfigError(f"the folder of the SQLite file {path} does not exist: create "
                          f"{path.absolute().parent} or fix LIVESALE_DATABASE_URL")


def probe_database(url: str) -> None:
    """Connect once; raise a ConfigError saying why not. SQLite is not probed (connecting creates the file)."""
    if sqlite_path(url) is not None:
        return
    engine = sa.create_engine(engine_url(url))
    try:
        with engine.connect() as conn:
            conn.execute(sa.text("SELECT 1"))
    except sa.exc.DBAPIError as exc:
        raise ConfigError(database_problem(exc, url)) from None
    finally:
        engine.dispose()


def has_tables(url: str) -> bool:
    """Has livesale's schema been created in this database (by ``livesale db upgrade`` or ``serve``)?"""
    path = sqlite_path(url)
    if path is not None and not path.exists():
        return False
    engine = sa.create_engine(engine_url(url))
    try:
        with engine.connect() as conn:
            return sa.inspect(conn).has_table("alembic_version") and sa.inspect(conn).has_table("users")
    except sa.exc.DBAPIError as exc:
        raise ConfigError(database_problem(exc, url)) from None
    finally:
        engine.dispose()


def no_tables_message(url: str) -> str:
    return (f"no livesale data in {mask_database_url(url)} yet: `livesale db upgrade` creates it; if your data "
            "are elsewhere, set LIVESALE_INSTANCE_PATH (or LIVESALE_DATABASE_URL) to where they are")


def database_problem(exc: BaseException, url: str) -> str:
    """What a database error means for the person running livesale."""
    where = mask_database_url(url)
    detail = str(getattr(exc, "orig", None) or exc)
    if "no such table" in detail or re.search(r'relation "\w+" does not exist', detail):
        return no_tables_message(url)
    if m := re.search(r'database "([^"]+)" does not exist', detail):
        return (f"the database {m.group(1)!r} does not exist on that server ({where}): "
                f"create it (createdb {m.group(1)}) or fix LIVESALE_DATABASE_URL")
    if "password authentication failed" in detail or re.search(r'role "[^"]+" does not exist', detail):
        return f"the database refused the user or password of {where}: fix LIVESALE_DATABASE_URL"
    if "unable to open database file" in detail:
        return (f"cannot open the SQLite file of {where}: check that its folder exists and that livesale may "
                "write in it, or fix LIVESALE_DATABASE_URL")
    if "readonly database" in detail or "read-only" in detail:
        return f"the database {where} is read-only for livesale: fix its permissions or LIVESALE_DATABASE_URL"
    # The driver's own words, on one line: "Connection refused", "timeout expired", a DNS failure…
    reason = " ".join(detail.split())
    reason = reason.split(" failed: ")[-1].split(" Is the server running")[0].strip() or type(exc).__name__
    return f"cannot reach the database at {where} ({reason}): start it or fix LIVESALE_DATABASE_URL"


# --- Redis ---------------------------------------------------------------------------------------------------


def check_redis_url(url: str) -> None:
    """Refuse a Redis URL livesale cannot read (one server, cluster or Sentinel), without connecting."""
    try:
        redis_urls.parse(url)
    except ValueError as exc:
        raise ConfigError(
            f"LIVESALE_REDIS_URL {mask_redis_url(url)!r} is not a Redis URL ({exc}); "
            "or unset it to use the Redis livesale starts itself"
        ) from None


def _probe_client(url: str) -> redis.Redis | redis.cluster.RedisCluster:
    """A short-lived client that gives up in seconds (a cluster's answers its layout first)."""
    return redis_urls.client_from_url(url, max_connections=4, timeout=3, socket_connect_timeout=3, socket_timeout=3,
                                      retry=Retry(NoBackoff(), 0))


def probe_redis(url: str) -> None:
    """PING once (every master of a cluster; Sentinel's master); raise a ConfigError saying why not."""
    try:
        client = _probe_client(url)
    except redis.RedisError as exc:
        raise ConfigError(redis_problem(exc, url)) from None
    try:
        if redis_urls.is_cluster(client):
            client.ping(target_nodes=redis.cluster.RedisCluster.PRIMARIES)
        else:
            client.ping()
    except redis.RedisError as exc:
        raise ConfigError(redis_problem(exc, url)) from None
    finally:
        client.close()


def redis_server_version(url: str) -> str:
    """"Valkey 9.0.1" or "Redis 7.0.15", with "cluster of 3 masters" or Sentinel's master's address."""
    client = _probe_client(url)
    try:
        if redis_urls.is_cluster(client):
            infos = client.info("server", target_nodes=redis.cluster.RedisCluster.PRIMARIES)
            server, how = next(iter(infos.values())), f", cluster of {len(infos)} masters"
        else:
            server = client.info("server")
            address = getattr(client.connection_pool, "master_address", None)
            how = f", Sentinel's master at {address[0]}:{address[1]}" if address else ""
    finally:
        client.close()
    if "valkey_version" in server:
        return f"Valkey {server['valkey_version']}{how}"
    return f"Redis {server.get('redis_version', '?')}{how}"


def redis_problem(exc: BaseException, url: str) -> str:
    where = mask_redis_url(url)
    if isinstance(exc, redis.AuthenticationError) or "NOAUTH" in str(exc) or "WRONGPASS" in str(exc):
        return f"Redis at {where} refused the password: fix LIVESALE_REDIS_URL"
    reason = " ".join(str(exc).split()).rstrip(".")
    reason = reason.split(". ")[-1] if ". " in reason else reason
    if isinstance(exc, redis.sentinel.MasterNotFoundError):  # its text goes on with the client's repr
        reason = reason.split(" : ")[0]
    return f"Redis at {where} does not answer ({reason}): {_REDIS_FIX}"


def problem(exc: BaseException, *, database_url: str | None = None, redis_url: str | None = None) -> str | None:
    """The sentence for an environment error raised while a command ran, or None if it is not one (a bug)."""
    if isinstance(exc, ConfigError):
        return str(exc)
    if isinstance(exc, sa.exc.OperationalError | sa.exc.InterfaceError):
        return database_problem(exc, database_url or "the database")
    if isinstance(exc, sa.exc.ProgrammingError) and re.search(r'relation "\w+" does not exist', str(exc)):
        return no_tables_message(database_url or "the database")
    if isinstance(exc, redis.ConnectionError | redis.TimeoutError | redis.AuthenticationError):
        return redis_problem(exc, redis_url or "the configured URL")
    return None
