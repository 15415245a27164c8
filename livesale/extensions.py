"""Flask extensions, created unbound and bound to an app in ``create_app``."""

from __future__ import annotations

from typing import Any

from flask import Flask, current_app
from flask_compress import Compress
from flask_socketio import SocketIO
from socketio import RedisManager

from . import metrics, redis_urls
from .core.db import create_db_engine
from .core.sessions import Store
from .core.totals import TotalsEngine


class Backend:
    """Binds the core's ``Store`` (database engine and totals engine) to an app.

    The store lives in ``app.extensions["livesale"]``; views get it from
    ``backend.store``.
    """

    def init_app(self, app: Flask) -> None:
        engine = create_db_engine(app.config["DATABASE_URL"])
        # One server, a cluster or Sentinel's master, by the URL's scheme; a bounded, blocking pool
        # in each case (see redis_urls.POOL_OPTIONS).
        client = redis_urls.client_from_url(app.config["REDIS_URL"],
                                            max_connections=app.config["REDIS_MAX_CONNECTIONS"])
        totals = TotalsEngine(client, on_rebuild=metrics.REDIS_REBUILDS.inc)
        app.extensions["livesale"] = Store(db=engine, totals=totals)

    @property
    def store(self) -> Store:
        return current_app.extensions["livesale"]

    @staticmethod
    def store_of(app: Flask) -> Store:
        return app.extensions["livesale"]

    @staticmethod
    def close(app: Flask) -> None:
        store: Store | None = app.extensions.get("livesale")
        if store is not None:
            store.db.dispose()
            store.totals.redis.close()


def resolve_async_mode(setting: str) -> str:
    """The Socket.IO async mode: explicit, or gevent when gevent has patched the process."""
    if setting != "auto":
        return setting
    try:
        from gevent import monkey

        return "gevent" if monkey.is_module_patched("socket") else "threading"
    except ImportError:  # pragma: no cover - gevent is a dependency
        return "threading"


def socketio_channel(queue_url: str) -> str:
    """The message queue's pub/sub channel, named after the Redis database it is given.

    Pub/sub ignores the database number: two livesale installations (or test
    runs) sharing one Redis server on different databases would otherwise
    deliver each other's pushes to their viewers.
    """
    db = redis_urls.parse(queue_url).db
    return "livesale-socketio" if db == 0 else f"livesale-socketio-db{db}"


def init_socketio(app: Flask) -> None:
    origins = [o.strip() for o in app.config["ALLOWED_ORIGINS"].split(",") if o.strip()]
    queue_url = app.config["SOCKETIO_MESSAGE_QUEUE"]
    extra: dict[str, Any] = {}
    if queue_url:
        # Always Redis, whatever the URL's scheme: Flask-SocketIO would take the
        # embedded server's unix:// URL for a Kombu (AMQP) URL. A Sentinel URL is
        # rewritten in python-socketio's own form; a cluster's is refused by
        # config.check_settings (pub/sub needs one server).
        url, options = redis_urls.socketio_queue(queue_url)
        extra["client_manager"] = RedisManager(url, channel=socketio_channel(queue_url), redis_options=options)
    socketio.init_app(
        app,
        **extra,
        async_mode=resolve_async_mode(app.config["ASYNC_MODE"]),
        # None: only the app's own origin may connect.
        cors_allowed_origins=origins or None,
        max_http_buffer_size=app.config["SOCKET_MAX_MESSAGE"],
        ping_interval=app.config["SOCKET_PING_INTERVAL_S"],
        ping_timeout=app.config["SOCKET_PING_TIMEOUT_S"],
    )
    socket_paths_only(app)


def socket_paths_only(app: Flask) -> None:
    """Send through Flask-SocketIO's middleware only the requests for its own path (``/socket.io/``).

    The middleware (python-engineio's ``WSGIApp``) sees every request: it copies the environ and
    defines a class for eventlet's sake on each one (about 20 µs a request), then hands any other
    path to Flask unchanged. Every other request now goes to Flask directly, with the ``flask.app``
    key the middleware would have set.
    """
    middleware = app.wsgi_app
    flask_wsgi = getattr(middleware, "wsgi_app", None)
    prefix = getattr(middleware, "engineio_path", None)
    if flask_wsgi is None or not prefix or getattr(middleware, "static_files", None):
        return  # not the middleware this was written for: leave it whole

    def wsgi_app(environ: dict[str, Any], start_response: Any) -> Any:
        path = environ.get("PATH_INFO")
        if path is not None and path.startswith(prefix):
            return middleware(environ, start_response)
        environ["flask.app"] = app
        return flask_wsgi(environ, start_response)

    wsgi_app.socketio_middleware = middleware  # type: ignore[attr-defined]
    app.wsgi_app = wsgi_app  # type: ignore[method-assign]


def init_compression(app: Flask) -> None:
    """gzip for pages, styles and scripts (the widget's budget is counted compressed), not for
    the API's JSON: order responses are small and their CPU goes to ingestion."""
    app.config.setdefault("COMPRESS_MIMETYPES", ["text/html", "text/css", "text/javascript",
                                                 "application/javascript"])
    app.config.setdefault("COMPRESS_ALGORITHM", ["gzip"])
    app.config.setdefault("COMPRESS_MIN_SIZE", 1000)
    app.config.setdefault("COMPRESS_STREAMS", False)  # CSV exports stream as they are
    compress.init_app(app)


backend = Backend()
socketio = SocketIO()
compress = Compress()

__all__: list[Any] = ["backend", "compress", "socketio"]
