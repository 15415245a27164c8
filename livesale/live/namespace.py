"""The ``/live`` Socket.IO namespace: join a session's room, get a snapshot, then pushes.

Public widgets (connections with neither token nor login) hold at most
``widget_limit`` sockets per process: past it a widget's connection is
refused with the code ``poll`` and the widget reads its public JSON about
once a second instead (nginx's microcache answers most of those reads), so
the process's connection slots stay free for hosts and officials, who are
never counted nor refused.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from flask import request
from flask_socketio import ConnectionRefusedError, Namespace, emit, join_room, leave_room

from livesale import metrics
from livesale.core.auth import Actor
from livesale.core.db import DATABASE_UNAVAILABLE
from livesale.core.errors import DomainError, Unauthorized
from livesale.core.live import ERROR, ORDERS, TOTALS, resolve_join, snapshot
from livesale.extensions import backend
from livesale.web.auth import actor_for_bearer
from livesale.web.login import current_actor

from .ticker import Ticker

log = logging.getLogger(__name__)

#: The refusal a widget reads as "poll the JSON instead" (static/js/widget.js).
POLL = {"code": "poll", "message": "this server holds as many widget connections as it may: read the JSON"}


class LiveNamespace(Namespace):
    """Viewers of live totals: hosts and officials (token or login cookie) and public widgets."""

    def __init__(self, namespace: str, *, ticker: Ticker, join_limit: int = 10, widget_limit: int = 1000):
        super().__init__(namespace)
        self.ticker = ticker
        self.join_limit = join_limit  # joins per connection per 10 s
        self.widget_limit = widget_limit  # anonymous (widget) connections this process holds at most
        self._widgets: set[str] = set()
        self._actors: dict[str, Actor | None] = {}
        # The times of a connection's recent joins: a short list (a deque costs 600 bytes a viewer).
        self._joins: dict[str, list[float]] = {}
        self._rooms: dict[str, str] = {}

    def on_connect(self, auth: Any = None) -> None:
        actor = None
        if isinstance(auth, dict) and auth.get("token"):
            try:
                actor = actor_for_bearer(str(auth["token"]))
            except Unauthorized:
                raise ConnectionRefusedError({"code": "unauthorized", "message": "the API token is not valid"}) from None
        else:
            actor = current_actor()
        if actor is None:
            if len(self._widgets) >= self.widget_limit:
                metrics.WIDGET_SOCKETS_REFUSED.inc()
                raise ConnectionRefusedError("poll", POLL)  # the client reads err.message, err.data
            self._widgets.add(request.sid)
        self._actors[request.sid] = actor
        metrics.VIEWERS.inc()
        self.ticker.ensure_started()

    def on_disconnect(self, reason: Any = None) -> None:
        if request.sid in self._actors:
            metrics.VIEWERS.dec()
        self._widgets.discard(request.sid)
        self._actors.pop(request.sid, None)
        self._joins.pop(request.sid, None)
        self._rooms.pop(request.sid, None)

    def on_join(self, data: Any) -> None:
        """``{"session": id}`` or ``{"widget": key}``: a snapshot now, pushes after."""
        sid = request.sid
        now = time.monotonic()
        recent = [at for at in self._joins.get(sid, ()) if now - at <= 10]
        if len(recent) >= self.join_limit:
            self._joins[sid] = recent
            emit(ERROR, {"code": "rate_limited", "message": "too many joins; wait a few seconds"})
            return
        recent.append(now)
        self._joins[sid] = recent
        store = backend.store
        try:
            join = resolve_join(store, actor=self._actors.get(sid), data=data)
            totals, feed = snapshot(store, join)
        except DomainError as exc:
            emit(ERROR, {"code": exc.code, "message": exc.message, "field": exc.field})
            return
        except DATABASE_UNAVAILABLE as exc:
            # The screen tries again (live-join.js); without an answer it would wait in no room.
            log.error("join failed, database unavailable: %s", str(exc).splitlines()[0] if str(exc) else exc)
            emit(ERROR, {"code": "unavailable", "message": "the database is unavailable; try again", "field": None})
            return
        previous = self._rooms.get(sid)
        if previous:
            leave_room(previous)
        join_room(join.room)
        self._rooms[sid] = join.room
        emit(TOTALS, totals)
        if feed:
            emit(ORDERS, feed)
