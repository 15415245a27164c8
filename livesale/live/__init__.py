"""Live push over Socket.IO: the ``/live`` namespace and the coalescing ticker."""

from __future__ import annotations

from flask import Flask

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
    socketio.on_namespace(LiveNamespace(NAMESPACE, ticker=ticker, join_limit=app.config["JOIN_RATE_LIMIT"]))
