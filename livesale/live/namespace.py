"""The ``/live`` Socket.IO namespace: join a session's room, get a snapshot, then pushes."""

from __future__ import annotations

import logging
import time
from collections import deque
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


class LiveNamespace(Namespace):
    """Viewers of live totals: hosts and officials (token or login cookie) and public widgets."""

    def __init__(self, namespace: str, *, ticker: Ticker, join_limit: int = 10):
        super().__init__(namespace)
        self.ticker = ticker
        self.join_limit = join_limit  # joins per connection per 10 s
        self._actors: dict[str, Actor | None] = {}
        self._joins: dict[str, deque[float]] = {}
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
        self._actors[request.sid] = actor
        self._joins[request.sid] = deque()
        metrics.VIEWERS.inc()
        self.ticker.ensure_started()

    def on_disconnect(self, reason: Any = None) -> None:
        if request.sid in self._actors:
            metrics.VIEWERS.dec()
        self._actors.pop(request.sid, None)
        self._joins.pop(request.sid, None)
        self._rooms.pop(request.sid, None)

    def on_join(self, data: Any) -> None:
        """``{"session": id}`` or ``{"widget": key}``: a snapshot now, pushes after."""
        sid = request.sid
        recent = self._joins.setdefault(sid, deque())
        now = time.monotonic()
        while recent and now - recent[0] > 10:
            recent.popleft()
        if len(recent) >= self.join_limit:
            emit(ERROR, {"code": "rate_limited", "message": "too many joins; wait a few seconds"})
            return
        recent.append(now)
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
