"""Settings from ``LIVESALE_*`` environment variables.

Nothing here reads Flask: ``load_settings`` returns a plain mapping that
``create_app`` merges into ``app.config``. Tests pass their own mapping.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

ENV_PREFIX = "LIVESALE_"

#: Settings with their defaults. ``None`` means "derived at startup"
#: (the database file and the embedded Redis live in the instance folder).
DEFAULTS: dict[str, Any] = {
    "ENV": "production",
    "SECRET_KEY": None,
    "DATABASE_URL": None,
    "REDIS_URL": None,
    # The instance folder (the SQLite file, the embedded Redis, the development secret):
    # LIVESALE_INSTANCE_PATH, else ./instance in the current directory (see instance_path()).
    "INSTANCE_PATH": None,
    # Largest accepted request body; Flask answers 413 above it.
    "MAX_CONTENT_LENGTH": 1024 * 1024,
    "MAX_BATCH": 1000,
    "PAGE_SIZE_MAX": 500,
    "LOG_LEVEL": "INFO",
    # "json": one JSON object per line with the request id (for log collectors); "text" for a terminal.
    "LOG_FORMAT": "json",
    # One log line per request (health checks and /metrics at DEBUG).
    "ACCESS_LOG": True,
    # If set, /metrics requires "Authorization: Bearer <token>" (it is never public behind nginx either).
    "METRICS_TOKEN": "",
    # Socket.IO: "gevent" under gunicorn's gevent worker, "threading" elsewhere
    # (tests, `flask run`); "auto" picks by whether gevent has patched sockets.
    "ASYNC_MODE": "auto",
    # A Redis URL when several processes serve viewers (see docs/deploy.md).
    "SOCKETIO_MESSAGE_QUEUE": "",
    # Origins allowed to open Socket.IO connections, comma-separated; empty: same origin only.
    "ALLOWED_ORIGINS": "",
    "PUSH_TICK_S": 0.1,
    "PUSH_HEARTBEAT_S": 5.0,
    "JOIN_RATE_LIMIT": 10,
    "SOCKET_MAX_MESSAGE": 16 * 1024,
    # Public widgets' sockets one process holds before it tells more widgets to poll their JSON
    # instead (hosts' and officials' sockets are never counted nor refused). 0: half of gunicorn's
    # --worker-connections (WORKER_CONNECTIONS): each socket keeps one of the worker's connection
    # slots while the page is open; the other half stays free for hosts, officials, the API and the
    # polling widgets' own short requests (docs/deploy.md).
    "WIDGET_SOCKET_LIMIT": 0,
    # gunicorn's --worker-connections, set for the workers by livesale's gunicorn config.
    "WORKER_CONNECTIONS": 2000,
    # Engine.IO pings (python-engineio's defaults). A closed connection's objects are released at
    # its next ping time and the following sweep (interval + timeout at most).
    "SOCKET_PING_INTERVAL_S": 25,
    "SOCKET_PING_TIMEOUT_S": 20,
    "REDIS_MAX_CONNECTIONS": 128,
    # Rate limits (Flask-Limiter, counted in the app's Redis, fixed windows; see web/limits.py).
    # Strings like "20 per minute;200 per hour"; "off" turns that limit off.
    "RATE_LIMIT_ENABLED": True,
    "RATE_LIMIT_LOGIN_IP": "20 per minute;200 per hour",  # failed logins per client IP
    "RATE_LIMIT_LOGIN_NAME": "5 per minute;30 per hour",  # failed logins per user name
    "RATE_LIMIT_BAD_TOKEN": "30 per minute",  # API requests answered 401 per client IP
    "RATE_LIMIT_API_TOKEN": "5000 per second",  # API requests per token (per IP for cookie calls)
    "RATE_LIMIT_WIDGET": "600 per minute",  # public widget pages, JSON and embed.js per client IP
    # Proxies in front that append to X-Forwarded-For (nginx: 1); 0 trusts no forwarded header.
    "TRUSTED_PROXIES": 0,
    # The site's address as people open it (https://sales.example.cn): group-chat robots' messages
    # link to the report and poster under it. Empty: messages carry no links.
    "PUBLIC_URL": "",
    # Group-chat robots (core/webhook_urls.py): allow http:// robot URLs, and robot URLs whose host is
    # (or resolves to) a loopback, private or link-local address. Both off in production; tests
    # turn them on to use a receiver on 127.0.0.1.
    "WEBHOOK_ALLOW_HTTP": False,
    "WEBHOOK_ALLOW_PRIVATE": False,
}

_INT_KEYS = {"MAX_CONTENT_LENGTH", "MAX_BATCH", "PAGE_SIZE_MAX", "JOIN_RATE_LIMIT", "SOCKET_MAX_MESSAGE",
             "WIDGET_SOCKET_LIMIT", "WORKER_CONNECTIONS",
             "REDIS_MAX_CONNECTIONS", "TRUSTED_PROXIES", "SOCKET_PING_INTERVAL_S", "SOCKET_PING_TIMEOUT_S"}
_FLOAT_KEYS = {"PUSH_TICK_S", "PUSH_HEARTBEAT_S"}
_BOOL_KEYS = {"ACCESS_LOG", "RATE_LIMIT_ENABLED", "WEBHOOK_ALLOW_HTTP", "WEBHOOK_ALLOW_PRIVATE"}
_TRUE, _FALSE = {"1", "true", "yes", "on"}, {"0", "false", "no", "off"}
ENVIRONMENTS = ("production", "development", "testing")
#: The shortest secret production accepts: cookies and CSRF tokens are signed with it.
MIN_SECRET_LENGTH = 32


class ConfigError(RuntimeError):
    """Raised when the configuration cannot be used safely.

    Its message is meant for the person who set it: what is wrong and what to do, in a sentence or two.
    """


def load_settings(environ: Mapping[str, str] | None = None) -> dict[str, Any]:
    """Read settings from the environment (``LIVESALE_<NAME>``)."""
    environ = os.environ if environ is None else environ
    settings = dict(DEFAULTS)
    for key in DEFAULTS:
        raw = environ.get(ENV_PREFIX + key)
        if raw is None or raw == "":
            continue
        if key in _BOOL_KEYS:
            if raw.lower() not in _TRUE | _FALSE:
                raise ConfigError(f"{ENV_PREFIX}{key} must be 1/true/yes/on or 0/false/no/off, not {raw!r}")
            settings[key] = raw.lower() in _TRUE
            continue
        try:
            settings[key] = int(raw) if key in _INT_KEYS else float(raw) if key in _FLOAT_KEYS else raw
        except ValueError:
            kind = "a whole number" if key in _INT_KEYS else "a number"
            raise ConfigError(f"{ENV_PREFIX}{key} must be {kind}, not {raw!r}") from None
    return settings


def widget_socket_limit(settings: Mapping[str, Any]) -> int:
    """``WIDGET_SOCKET_LIMIT``, or half of the worker's connections when it is 0 (at least 1)."""
    limit = int(settings.get("WIDGET_SOCKET_LIMIT") or 0)
    return limit if limit > 0 else max(1, int(settings.get("WORKER_CONNECTIONS") or 2000) // 2)


def instance_path(settings: Mapping[str, Any]) -> Path:
    """The instance folder: ``LIVESALE_INSTANCE_PATH``, else ``./instance`` in the current directory.

    Never derived from where the package is installed (Flask's default puts it in
    ``<venv>/var/`` for an installed package and beside the sources for an editable one),
    so the data stay where the user ran the command, whichever way livesale was installed.
    """
    return Path(settings.get("INSTANCE_PATH") or "instance").absolute()


def database_url(settings: Mapping[str, Any], instance: Path) -> str:
    """``LIVESALE_DATABASE_URL``, else the SQLite file in the instance folder."""
    return settings.get("DATABASE_URL") or f"sqlite:///{instance / 'livesale.sqlite'}"


def check_settings(settings: Mapping[str, Any]) -> None:
    """Refuse settings that are unsafe outside development and testing."""
    env = settings.get("ENV", "production")
    if env not in ENVIRONMENTS:
        raise ConfigError(
            f"LIVESALE_ENV must be production, development or testing, not {env!r} "
            "(LIVESALE_ENV=development runs livesale on this machine)"
        )
    secret = settings.get("SECRET_KEY") or ""
    if env == "production" and len(secret) < MIN_SECRET_LENGTH:
        make_one = "python3 -c 'import secrets; print(secrets.token_urlsafe(48))'"
        if not secret:
            raise ConfigError(
                f"LIVESALE_SECRET_KEY is required in production: set it to a long random string ({make_one}), "
                "or set LIVESALE_ENV=development to try livesale on this machine"
            )
        raise ConfigError(
            f"LIVESALE_SECRET_KEY is {len(secret)} character(s) long; production needs at least "
            f"{MIN_SECRET_LENGTH}: set it to a long random string ({make_one})"
        )
    check_redis_settings(settings)
    if settings.get("LOG_FORMAT") not in {"json", "text"}:
        raise ConfigError(f"LIVESALE_LOG_FORMAT must be json or text, not {settings.get('LOG_FORMAT')!r}")
    public = settings.get("PUBLIC_URL") or ""
    parts = urlsplit(public)
    if public and (parts.scheme not in {"http", "https"} or not parts.hostname or parts.query or parts.fragment):
        raise ConfigError(
            f"LIVESALE_PUBLIC_URL must be the site's address as people open it, such as "
            f"https://sales.example.cn, not {public!r}"
        )


def check_redis_settings(settings: Mapping[str, Any]) -> None:
    """Refuse a Redis URL livesale cannot read, and a cluster URL for Socket.IO's queue, in one line."""
    from . import redis_urls  # redis-py, only when settings are checked

    for key in ("REDIS_URL", "SOCKETIO_MESSAGE_QUEUE"):
        url = settings.get(key) or ""
        if not url:
            continue
        try:
            target = redis_urls.parse(url)
        except ValueError as exc:
            unset = ", or unset it to use the Redis livesale starts itself" if key == "REDIS_URL" else ""
            raise ConfigError(f"{ENV_PREFIX}{key} {redis_urls.describe(url)!r} is not a Redis URL ({exc}){unset}") \
                from None
        if key == "SOCKETIO_MESSAGE_QUEUE" and target.kind == redis_urls.CLUSTER:
            raise ConfigError(
                f"{ENV_PREFIX}SOCKETIO_MESSAGE_QUEUE is a Redis Cluster URL, which Socket.IO's message queue "
                "cannot use: set it to a plain redis://host:port (one node of the cluster will do)"
            )


def ensure_instance_folder(path: Path) -> Path:
    """Create the instance folder if needed and make sure livesale may write in it."""
    fix = "set LIVESALE_INSTANCE_PATH to a folder you may write in, or run livesale from one"
    try:
        path.mkdir(parents=True, exist_ok=True)
    except FileExistsError:
        raise ConfigError(f"the instance folder {path} is a file, not a folder: {fix}") from None
    except PermissionError:
        raise ConfigError(f"cannot create the instance folder {path} (permission denied): {fix}") from None
    except OSError as exc:
        raise ConfigError(f"cannot create the instance folder {path} ({exc.strerror or exc}): {fix}") from None
    if not os.access(path, os.W_OK | os.X_OK):
        raise ConfigError(f"livesale may not write in the instance folder {path} (permission denied): {fix}")
    return path
