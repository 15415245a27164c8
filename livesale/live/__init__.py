"""Live push over Socket.IO: the ``/live`` namespace and the coalescing ticker."""

from __future__ import annotations

from flask import Flask

from livesale.config import widget_socket_limit
from livesale.core.live import NAMESPACE
from livesale.extensions import backend, socketio

from .namespace import LiveNamespace
from .ticker import Ticker


def init_app(app: Flask) -> None:
    ticker = Ticker(
        socketio,
        backend.store_of(app),
        interval_s=app.config["PUSH_TICK_S"],
        heartbeat_s=app.config["PUSH_HEARTBEAT_S"],
    )
    app.extensions["livesale.ticker"] = ticker
    socketio.on_namespace(LiveNamespace(NAMESPACE, ticker=ticker, join_limit=app.config["JOIN_RATE_LIMIT"],
                                        widget_limit=widget_socket_limit(app.config)))


def release_viewers() -> int:
    """Close every Socket.IO connection of this process; returns how many.

    For a shutdown: the viewers' clients reconnect at once (through the load
    balancer, to a process that stays) instead of holding this one open
    until the graceful timeout runs out.
    """
    server = socketio.server
    if server is None:
        return 0
    sids = list(server.eio.sockets)
    for sid in sids:
        try:
            server.eio.disconnect(sid)
        except Exception:  # noqa: BLE001 - one broken socket must not keep the others open
            pass
    return len(sids)
