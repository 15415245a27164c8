"""The background sender of group-chat robots' messages: claims due deliveries, sends, records.

It runs where the app is served, one per gunicorn worker (``livesale/wsgi.py``
starts it, ``gunicorn_conf.py``'s worker stops it), in a thread — a greenlet
under gevent, whose patched sockets make a slow receiver cost nothing to the
requests beside it. Tests and the command line never start it by themselves.

**At least once.** A delivery is *claimed* by one UPDATE that sets
``claimed_until`` (``CLAIM_S`` from now) only where it is still due and
unclaimed (or its claim ran out): two senders — two workers, two servers —
never send the same delivery at the same moment, and a sender that dies
while sending (killed, crashed) leaves a claim that runs out, after which any
sender sends it again. The receiver may so see a message twice; each carries
its event id (``#<id>``) to tell the repeat.

**Order.** A robot's messages go out in the order of their events: a delivery
is due only when none before it to the same robot is still waiting (a
receiver that is down holds its later messages back rather than telling
"ended" before "started").

**Retries.** An answer that is not the robot's "ok" (``robot_messages.accepted``:
HTTP 2xx *and* ``errcode``/``code`` 0), a refused or timed-out connection, or
a URL that fails its check at sending (``core.webhook_urls``: the name now
resolves to a private address) is tried again after ``backoff_s * 3**n``
(5 s, 15 s, 45 s …, at most ``MAX_BACKOFF_S``), each with ±20 % jitter so that
many deliveries failing together do not come back together; after
``GIVE_UP_S`` (a day) or ``MAX_ATTEMPTS`` the delivery is ``failed``. Each
attempt stores the receiver's HTTP status and the first 500 characters of
its answer, or why nothing was answered (the delivery log).

**Requests.** To the checked address only (the URL is checked again and
resolved at each attempt; the connection goes to an address that passed,
never to a second lookup), redirects never followed, 5 s to connect and 10 s
in all (a receiver that trickles its answer is cut off at the deadline).

It also sweeps (``outbox.sweep_crossings``) every ``outbox.SWEEP_S`` seconds,
recording goal and milestone events that an order's process died before
writing.
"""

from __future__ import annotations

import contextlib
import dataclasses
import http.client
import logging
import random
import socket
import ssl
import threading
import time
from collections.abc import Callable, Mapping
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa

from livesale.models import utcnow

from . import outbox, robot_messages
from . import tables as t
from .db import write_transaction
from .errors import InvalidInput
from .webhook_urls import WebhookTarget, resolve_robot_url

log = logging.getLogger(__name__)

#: How long a claim holds a delivery: more than a request can take (``TOTAL_TIMEOUT_S``).
CLAIM_S = 20.0
CONNECT_TIMEOUT_S = 5.0
TOTAL_TIMEOUT_S = 10.0
BACKOFF_S = 5.0
MAX_BACKOFF_S = 600.0
GIVE_UP_S = 24 * 3600.0
MAX_ATTEMPTS = 200
#: What is kept of an answer or an error (the columns hold 500).
KEEP_CHARS = 500
#: The most read of an answer.
MAX_ANSWER_BYTES = 64 * 1024
POLL_S = 1.0
BATCH = 20

WAITING = ("pending", "retrying")
#: Why a deleted robot's waiting message was not sent (core.robots writes the same when it deletes one).
ROBOT_DELETED = "the robot was deleted before this was sent"
_d = t.robot_deliveries


@dataclasses.dataclass(frozen=True)
class Outcome:
    """One attempt: whether the robot took it, its status and answer, or the error."""

    ok: bool
    status: int | None = None
    body: str = ""
    error: str = ""


def backoff_delay(attempts: int, *, base_s: float = BACKOFF_S, cap_s: float = MAX_BACKOFF_S,
                  rand: random.Random | None = None) -> float:
    """Seconds before the attempt after ``attempts`` failed ones: ``base * 3**(attempts-1)``, capped, ±20 %."""
    delay = min(cap_s, base_s * 3 ** max(0, min(attempts - 1, 30)))
    return delay * (0.8 + 0.4 * (rand or random).random())


class RobotSender:
    """Sends this process's share of due deliveries until stopped."""

    def __init__(self, db: sa.Engine, *, public_url: str = "", allow_http: bool = False,
                 allow_private: bool = False, poll_s: float = POLL_S, sweep_s: float = outbox.SWEEP_S,
                 backoff_s: float = BACKOFF_S, claim_s: float = CLAIM_S,
                 connect_timeout_s: float = CONNECT_TIMEOUT_S, total_timeout_s: float = TOTAL_TIMEOUT_S) -> None:
        self.db = db
        self.public_url = public_url
        self.allow_http = allow_http
        self.allow_private = allow_private
        self.poll_s = poll_s
        self.sweep_s = sweep_s
        self.backoff_s = backoff_s
        self.claim_s = claim_s
        self.connect_timeout_s = connect_timeout_s
        self.total_timeout_s = total_timeout_s
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self._last_sweep = 0.0
        self._in_flight: http.client.HTTPConnection | None = None
        self.attempts = 0  # made by this sender, for tests and logs

    @classmethod
    def from_settings(cls, db: sa.Engine, settings: Mapping[str, Any]) -> RobotSender:
        return cls(db, public_url=settings.get("PUBLIC_URL") or "",
                   allow_http=bool(settings.get("WEBHOOK_ALLOW_HTTP")),
                   allow_private=bool(settings.get("WEBHOOK_ALLOW_PRIVATE")))

    # --- running ----------------------------------------------------------------------

    def start(self) -> RobotSender:
        """Run in a background thread (a greenlet under gevent) until :meth:`stop`."""
        if self._thread is None:
            outbox.wakeup.subscribe(self.wake)
            self._thread = threading.Thread(target=self._run, name="livesale-robot-sender", daemon=True)
            self._thread.start()
            _running.add(self)
        return self

    def wake(self) -> None:
        """Look for due deliveries now (an event was just written)."""
        self._wake.set()

    def request_stop(self) -> None:
        """Stop now: a request in flight is cut off and its delivery left for the next sender
        (the receiver may have taken it: at least once)."""
        self._stopping.set()
        self._wake.set()
        conn = self._in_flight
        if conn is not None:
            _cut(conn)

    def stop(self, timeout_s: float | None = None) -> bool:
        """Stop and wait; True if the loop ended within ``timeout_s``."""
        self.request_stop()
        outbox.wakeup.unsubscribe(self.wake)
        _running.discard(self)
        if self._thread is not None:
            self._thread.join(self.total_timeout_s + 5 if timeout_s is None else timeout_s)
            return not self._thread.is_alive()
        return True

    def _run(self) -> None:
        failing_since: float | None = None
        last_line = 0.0
        while not self._stopping.is_set():
            self._wake.clear()
            try:
                if time.monotonic() - self._last_sweep >= self.sweep_s:
                    self._last_sweep = time.monotonic()
                    if outbox.sweep_crossings(self.db):
                        continue  # new events: send them at once
                busy = self.run_once()
            except Exception:  # noqa: BLE001 - the loop must outlive any one failure (database down)
                # The first failure with its traceback, then a line a minute while it lasts.
                now = time.monotonic()
                if failing_since is None or now - last_line >= 60:
                    log.exception("robot sender failed%s", "" if failing_since is None else " (still)")
                    last_line = now
                failing_since = failing_since or now
                busy = 0
            else:
                if failing_since is not None:
                    log.warning("robot sender works again after %.0f s", time.monotonic() - failing_since)
                    failing_since = None
            if not busy:
                self._wake.wait(self.poll_s)

    # --- one round ----------------------------------------------------------------------

    def run_once(self) -> int:
        """Send the due deliveries (up to ``BATCH``), each claimed just before it is sent; how many were tried.

        One at a time, so that a claim (``claim_s``) always outlasts its own request (``total_timeout_s``)
        however slow the receivers before it were.
        """
        attempted = 0
        for delivery_id in self.due_ids():
            if self._stopping.is_set():
                break
            if self.claim(delivery_id):
                self.deliver(delivery_id)
                attempted += 1
        return attempted

    def _due(self, now: datetime) -> sa.ColumnElement[bool]:
        earlier = _d.alias("earlier")
        waiting_before = sa.exists().where(
            earlier.c.robot_id == _d.c.robot_id, earlier.c.status.in_(WAITING), earlier.c.id < _d.c.id
        )
        return sa.and_(
            _d.c.status.in_(WAITING), _d.c.next_attempt_at <= now,
            sa.or_(_d.c.claimed_until.is_(None), _d.c.claimed_until < now), ~waiting_before,
        )

    def due_ids(self) -> list[int]:
        """Deliveries due now, oldest first. A read: most polls find nothing, and on SQLite a write
        would take the database's one write lock."""
        with self.db.connect() as conn:
            return list(conn.execute(
                sa.select(_d.c.id).where(self._due(utcnow())).order_by(_d.c.next_attempt_at, _d.c.id).limit(BATCH)
            ).scalars())

    def claim(self, delivery_id: int) -> bool:
        """Claim a delivery for ``claim_s`` if it is still due and unclaimed. The conditions are checked
        by the UPDATE itself: of two senders, the one that updates the row first has it, and the other's
        UPDATE (after waiting for it on PostgreSQL, in turn on SQLite) matches nothing."""
        now = utcnow()
        with write_transaction(self.db) as conn:
            return conn.execute(
                sa.update(_d).where(_d.c.id == delivery_id, self._due(now))
                .values(claimed_until=now + timedelta(seconds=self.claim_s))
            ).rowcount == 1

    def deliver(self, delivery_id: int) -> Outcome:
        """Send one claimed delivery and record the outcome."""
        e, r = t.outbox_events, t.robots
        with self.db.connect() as conn:
            row = conn.execute(
                sa.select(_d.c.attempts, _d.c.created_at, e.c.id, e.c.key, e.c.payload,
                          r.c.kind, r.c.url, r.c.secret, r.c.lang, r.c.deleted_at)
                .join(e, e.c.id == _d.c.event_id).join(r, r.c.id == _d.c.robot_id)
                .where(_d.c.id == delivery_id)
            ).one()
        if row.deleted_at is not None:
            outcome = Outcome(ok=False, error=ROBOT_DELETED)
            self._record(delivery_id, row.attempts, row.created_at, outcome, give_up=True, attempted=False)
            return outcome
        message = robot_messages.compose(robot_messages.Event(row.id, row.key, dict(row.payload)),
                                         lang=row.lang, public_url=self.public_url)
        outcome = self.attempt(kind=row.kind, url=row.url, secret=row.secret, message=message)
        if self._stopping.is_set() and not outcome.ok:
            # Cut off by a shutdown: not the receiver's failure. Free for the next sender at once.
            with write_transaction(self.db) as conn:
                conn.execute(sa.update(_d).where(_d.c.id == delivery_id).values(claimed_until=None))
            return outcome
        self.attempts += 1
        self._record(delivery_id, row.attempts, row.created_at, outcome)
        return outcome

    def attempt(self, *, kind: str, url: str, secret: str | None, message: robot_messages.Message) -> Outcome:
        """One request to a robot: checked, signed as of now, sent to a checked address."""
        try:
            target = resolve_robot_url(url, allow_http=self.allow_http, allow_private=self.allow_private)
        except InvalidInput as exc:
            return Outcome(ok=False, error=f"not sent: {exc.message}")
        request = robot_messages.build_request(kind=kind, url=url, secret=secret, message=message, now=utcnow())
        try:
            status, body = post_json(target, request, connect_timeout_s=self.connect_timeout_s,
                                     total_timeout_s=self.total_timeout_s, on_connect=self._connected)
        except (OSError, http.client.HTTPException) as exc:
            return Outcome(ok=False, error=_describe(exc))
        text = body.decode("utf-8", "replace")
        return Outcome(ok=robot_messages.accepted(kind, status, body), status=status, body=text[:KEEP_CHARS])

    def _connected(self, conn: http.client.HTTPConnection | None) -> None:
        self._in_flight = conn
        if conn is not None and self._stopping.is_set():
            _cut(conn)

    def _record(self, delivery_id: int, attempts_before: int, created_at: datetime, outcome: Outcome, *,
                give_up: bool = False, attempted: bool = True) -> None:
        now = utcnow()
        attempts = attempts_before + (1 if attempted else 0)
        values: dict[str, Any] = {
            "attempts": attempts, "claimed_until": None, "response_status": outcome.status,
            "response_body": outcome.body[:KEEP_CHARS], "error": outcome.error[:KEEP_CHARS],
        }
        if attempted:
            values["last_attempt_at"] = now
        if outcome.ok:
            values.update(status="sent", sent_at=now)
        elif give_up or attempts >= MAX_ATTEMPTS or (now - created_at).total_seconds() >= GIVE_UP_S:
            values.update(status="failed")
        else:
            values.update(status="retrying",
                          next_attempt_at=now + timedelta(seconds=backoff_delay(attempts, base_s=self.backoff_s)))
        with write_transaction(self.db) as conn:
            conn.execute(sa.update(_d).where(_d.c.id == delivery_id).values(**values))


_running: set[RobotSender] = set()


def stop_all(*, wait: bool = True, timeout_s: float | None = None) -> None:
    """Stop this process's senders (a worker shutting down); ``wait=False`` only asks them to."""
    for sender in list(_running):
        if wait:
            sender.stop(timeout_s)
        else:
            sender.request_stop()


# --- the request ---------------------------------------------------------------------------


class _PinnedConnection(http.client.HTTPSConnection):
    """An HTTP(S) connection to ``host`` that connects to one checked address instead of looking it up."""

    def __init__(self, target: WebhookTarget, address: str, *, connect_timeout_s: float) -> None:
        super().__init__(target.host, target.port, timeout=connect_timeout_s,
                         context=ssl.create_default_context() if target.scheme == "https" else None)
        self._address = address
        self._tls = target.scheme == "https"
        self.default_port = 443 if self._tls else 80  # the Host header names a port only when it differs

    def connect(self) -> None:
        self.sock = socket.create_connection((self._address, self.port), self.timeout)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if self._tls:
            # The certificate is checked against the URL's host name (SNI too), not the address.
            self.sock = self._context.wrap_socket(self.sock, server_hostname=self.host)


def post_json(target: WebhookTarget, request: robot_messages.Request, *, connect_timeout_s: float,
              total_timeout_s: float,
              on_connect: Callable[[http.client.HTTPConnection | None], None] | None = None) -> tuple[int, bytes]:
    """POST ``request.body`` to ``target`` (connecting to its checked addresses in turn); the status
    and the start of the answer. Never follows a redirect. Raises ``OSError`` on a connection failure
    or when ``total_timeout_s`` runs out."""
    deadline = time.monotonic() + total_timeout_s
    path = _path_of(request.url)
    last_error: OSError | None = None
    for address in target.addresses:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            break
        conn = _PinnedConnection(target, address, connect_timeout_s=min(connect_timeout_s, remaining))
        try:
            conn.connect()
        except OSError as exc:
            last_error = exc
            conn.close()
            continue
        # Connected: from here a failure is this receiver's answer, not a reason to try another address.
        watchdog = threading.Timer(max(0.0, deadline - time.monotonic()), _cut, args=(conn,))
        watchdog.daemon = True
        watchdog.start()
        if on_connect is not None:
            on_connect(conn)
        try:
            conn.sock.settimeout(max(0.01, deadline - time.monotonic()))
            conn.request("POST", path, body=request.body, headers={
                "Content-Type": "application/json; charset=utf-8", "User-Agent": "livesale-robots/1",
            })
            response = conn.getresponse()
            body = response.read(MAX_ANSWER_BYTES)
            if time.monotonic() >= deadline:
                raise TimeoutError(f"no complete answer within {total_timeout_s:g} s")
            return response.status, body
        except OSError as exc:
            if time.monotonic() >= deadline:
                raise TimeoutError(f"no complete answer within {total_timeout_s:g} s") from exc
            raise
        finally:
            if on_connect is not None:
                on_connect(None)
            watchdog.cancel()
            conn.close()
    if last_error is not None:
        raise last_error
    raise TimeoutError(f"could not connect within {total_timeout_s:g} s")


def _cut(conn: http.client.HTTPConnection) -> None:
    """The total deadline passed: end the request whatever part of it is waiting."""
    sock = conn.sock
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.shutdown(socket.SHUT_RDWR)


def _path_of(url: str) -> str:
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    return (parts.path or "/") + (f"?{parts.query}" if parts.query else "")


def _describe(exc: BaseException) -> str:
    if isinstance(exc, TimeoutError | socket.timeout):
        return f"timed out: {exc}" if str(exc) else "timed out"
    if isinstance(exc, ConnectionRefusedError):
        return "connection refused"
    if isinstance(exc, ssl.SSLError):
        return f"TLS failed: {exc.reason or exc}"
    if isinstance(exc, http.client.HTTPException):
        return f"bad HTTP answer: {type(exc).__name__} {exc}".strip()
    return f"{type(exc).__name__}: {exc}"
