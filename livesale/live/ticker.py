"""The push tick: at most one ``totals`` event per session per tick, however many orders came.

Every process that has viewers runs a ticker; one of them (the holder of a
Redis lease) does the work, so with several processes behind a message
queue a change is pushed once, not once per process. Each tick the leader
takes the set of sessions changed since the last tick, reads each one's
totals once and emits them (and the new orders for the ticker) to the
session's room. The work per tick depends on the number of changed
sessions, not on the number of orders.
"""

from __future__ import annotations

import logging
import secrets
import time
from typing import Any

import sqlalchemy as sa

from livesale import metrics
from livesale.core import tables as t
from livesale.core.live import NAMESPACE, ORDERS, TOTALS, feed_payload, room_of, totals_payload
from livesale.core.sessions import Store, load_session
from livesale.core.widget import public_feed, public_view, room_of_widget

log = logging.getLogger(__name__)


class FailureLog:
    """Logs a loop's failures without flooding: the first with its traceback, then while the same
    failure goes on (Redis down: ten a second) one line every ``every_s`` seconds with the count,
    and one line when the loop works again."""

    def __init__(self, logger: logging.Logger, what: str, *, every_s: float = 30.0):
        self.logger = logger
        self.what = what
        self.every_s = every_s
        self.count = 0
        self._kind: tuple[str, str] | None = None
        self._since = 0.0
        self._last_line = 0.0

    def failed(self, exc: BaseException) -> None:
        kind = (type(exc).__name__, str(exc))
        now = time.monotonic()
        if kind != self._kind:
            if self._kind is None:
                self._since = now
            self._kind = kind
            self._last_line = now
            self.count += 1
            self.logger.error("%s failed", self.what, exc_info=exc)
            return
        self.count += 1
        if now - self._last_line >= self.every_s:
            self._last_line = now
            self.logger.error("%s still failing: %d failures in %.0f s (%s: %s)",
                              self.what, self.count, now - self._since, *kind)

    def succeeded(self) -> None:
        if self._kind is not None:
            self.logger.warning("%s works again after %d failures in %.1f s",
                                self.what, self.count, time.monotonic() - self._since)
            self._kind = None
            self.count = 0


class Ticker:
    def __init__(self, socketio: Any, store: Store, *, interval_s: float = 0.1, heartbeat_s: float = 5.0):
        self.socketio = socketio
        self.store = store
        self.interval_s = interval_s
        self.heartbeat_s = heartbeat_s
        self._token = secrets.token_hex(12)
        self._started = False
        self._feed_cursor: dict[int, str] = {}
        self._last_heartbeat = 0.0
        self.ticks = 0  # pushes made by this process, for /metrics and tests

    def ensure_started(self) -> None:
        """Start the background loop once per process (on the first viewer).

        An interval of 0 runs no loop: ticks happen only when ``tick`` is
        called (the tests do, to see exactly what one tick sends).
        """
        if not self._started and self.interval_s > 0:
            self._started = True
            self.socketio.start_background_task(self._run)

    def _run(self) -> None:
        failing = FailureLog(log, "push tick")
        while True:
            try:
                self.tick()
            except Exception as exc:  # noqa: BLE001 - the loop must outlive any one failure
                failing.failed(exc)
            else:
                failing.succeeded()
            self.socketio.sleep(self.interval_s)

    def tick(self) -> int:
        """One tick; returns how many sessions were pushed."""
        lease_ms = max(1000, int(self.interval_s * 10_000))
        if not self.store.totals.hold_ticker(token=self._token, ttl_ms=lease_ms):
            return 0
        changed = self.store.totals.take_changed()
        now = time.monotonic()
        if now - self._last_heartbeat >= self.heartbeat_s:
            # Viewers mark their screen stale after 10 s without news: quiet
            # live sessions get their unchanged totals again as a heartbeat.
            self._last_heartbeat = now
            with self.store.db.connect() as conn:
                live = conn.execute(
                    sa.select(t.live_sessions.c.id).where(t.live_sessions.c.status == "live")
                ).scalars().all()
            changed = sorted(set(changed) | set(live))
        for session_id in changed:
            self.push(session_id)
        if changed:
            self.ticks += 1
            metrics.PUSH_TICKS.inc()
            metrics.PUSHED_SESSIONS.inc(len(changed))
        return len(changed)

    def push(self, session_id: int) -> None:
        """The session's totals (and new orders) to its people, and the public ones to its widget."""
        with self.store.db.connect() as conn:
            info = load_session(conn, session_id=session_id)
        room = room_of(session_id)
        widget = room_of_widget(info) if info.widget_enabled else None
        totals = totals_payload(self.store, info=info)  # read once, for both rooms
        self.socketio.emit(TOTALS, totals, to=room, namespace=NAMESPACE)
        if widget:
            self.socketio.emit(TOTALS, public_view(info, totals), to=widget, namespace=NAMESPACE)
        if info.status == "ended":
            self._feed_cursor.pop(session_id, None)
            return
        entries = self.store.totals.read_feed(session_id=session_id, after=self._feed_cursor.get(session_id))
        if entries:
            self._feed_cursor[session_id] = entries[-1].id
            self.socketio.emit(ORDERS, feed_payload(info, entries), to=room, namespace=NAMESPACE)
            if widget:
                self.socketio.emit(ORDERS, public_feed(info, entries), to=widget, namespace=NAMESPACE)
