"""The fault runner: load, one fault, recovery, and the ledger checked against SQL.

One ``run_fault`` call, on a fresh live session of a ``Rig`` (private Redis,
private database, real gunicorn+gevent server):

1. **Load.** ``Load`` runs client threads that POST single orders and small
   batches (2-5 orders), each request with a unique ``Idempotency-Key`` and
   a deterministic payload (``tests.ledger.payload_for``), and now and then
   re-send an acknowledged key on purpose (a repeat must answer 200 with the
   same order). Every 2xx goes into the ``Ledger`` (stored key -> order id);
   a request without an answer, or answered 5xx or 429, is retried later
   with the SAME key and payload. Each client also keeps the totals of its
   own responses: what an order console shows.
2. **Watch.** ``Watcher`` polls ``GET /totals`` all the time and records
   every answer; a Socket.IO viewer (``ChaosViewer``, re-joining after every
   reconnect like the pages do) records every ``totals`` pushed.
3. **Fault.** After a warm-up the fault is injected (``inject``); it ends
   when the service is back (new server healthy, Redis answering PING,
   SIGCONT sent, PostgreSQL accepting connections).
4. **Recovery.** From the fault's end, every ~0.3 s a quiescent check closes
   the ``Gate`` (clients finish their request in flight and wait), compares
   the totals API with the SQL sums, then waits up to 2 s for the viewer to
   show the same, and opens the gate again. Recovery time = first check
   where both agree - fault end. The gate only pauses the load for the
   moment of a check (at most 2 s, waiting for the viewer); it repairs
   nothing.
5. **Drain and verify.** The load stops, every request still unanswered is
   retried (same key) until acknowledged, and then: every acknowledged order
   is in SQL under its key with its id (else *lost*), no key is stored twice
   (else *duplicated*), nothing is stored that was not acknowledged, SQL sums
   == what was sent, the totals API == SQL, the viewer == SQL, and nothing
   shown ever went backwards (the watcher's answers as they came; the
   viewer's with the pages' rule that a lower ``version`` is ignored). Each
   console's answers are checked the same way and reported apart
   (``console_backwards``, see docs/reliability.md "What is not promised").
"""

from __future__ import annotations

import collections
import dataclasses
import random
import threading
import time
import traceback
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import requests
import sqlalchemy as sa
from sqlalchemy.pool import NullPool

from livesale.core import auth, schema
from livesale.core import tables as t
from tests.conftest import APRICOT_SESSION
from tests.ledger import api_figures, duplicate_keys, expected_figures, headline, payload_for, sql_figures
from tests.live.conftest import Viewer

from .services import ChaosServer, PrivatePostgres, PrivateRedis, postgres_bin_dir

FAULTS = ("kill9-app", "redis-shutdown", "redis-flush", "redis-freeze", "pg-immediate")
#: What each fault does, for reports and docs.
DESCRIPTIONS = {
    "kill9-app": "SIGKILL the gunicorn master and all its workers mid-load, start a new server on the same port",
    "redis-shutdown": "Redis SHUTDOWN NOSAVE, down for {down_s:g} s, restarted empty",
    "redis-flush": "Redis FLUSHALL mid-load",
    "redis-freeze": "SIGSTOP redis-server for {freeze_s:g} s, then SIGCONT",
    "pg-immediate": "pg_ctl stop -m immediate, down for {down_s:g} s, then started (crash recovery)",
}
#: The promise: totals shown converge to the SQL sums within this time after a fault ends.
RECOVERY_LIMIT_S = 5.0
NO_ANSWER = "no answer"


@dataclasses.dataclass(frozen=True)
class Plan:
    """How long and how hard one fault run is."""

    #: Seconds of load per fault (warm-up + fault + after); the fault comes after 30 % of it.
    seconds: float = 6.0
    #: How long Redis (redis-shutdown) or PostgreSQL (pg-immediate) stays down.
    down_s: float = 2.0
    #: How long redis-server stays frozen (redis-freeze).
    freeze_s: float = 10.0
    clients: int = 4
    #: Each client's pause between requests (keeps the load modest on shared cores).
    pause_s: float = 0.02
    #: Orders acknowledged before the fault, at least.
    min_acks_before: int = 100
    #: Stop looking for convergence this long after the fault ended.
    converge_limit_s: float = 30.0

    def describe(self, fault: str) -> str:
        return DESCRIPTIONS[fault].format(down_s=self.down_s, freeze_s=self.freeze_s)


# --- services --------------------------------------------------------------------


class Rig:
    """A private Redis, a private database and a real server (gunicorn, gevent workers).

    ``database``: ``"sqlite"`` (a file under ``workdir``) or ``"postgresql"``
    (a private cluster, so that the ``pg-immediate`` fault can crash it).
    ``database_url`` instead names an existing, migrated PostgreSQL database
    (then the pg fault is not available).
    """

    def __init__(self, workdir: Path, *, database: str = "sqlite", workers: int = 2, database_url: str = ""):
        assert database in ("sqlite", "postgresql")
        self.workdir = workdir
        self.database = database
        self.workers = workers
        self.database_url = database_url
        self.redis: PrivateRedis | None = None
        self.pg: PrivatePostgres | None = None
        self.server: ChaosServer | None = None
        self.engine: sa.Engine | None = None
        self.token = ""

    def __enter__(self) -> Rig:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    def supports(self, fault: str) -> bool:
        return fault != "pg-immediate" or self.pg is not None

    def start(self) -> Rig:
        try:
            self.workdir.mkdir(parents=True, exist_ok=True)
            self.redis = PrivateRedis(self.workdir / "redis").start()
            if self.database_url:
                pass
            elif self.database == "postgresql":
                self.pg = PrivatePostgres().start()
                self.database_url = self.pg.create_database("livesale")
            else:
                self.database_url = f"sqlite:///{self.workdir / 'livesale.sqlite'}"
            schema.upgrade(self.database_url)
            # The ledger's own reads: no pool, so a crashed PostgreSQL leaves no dead connection behind.
            self.engine = sa.create_engine(self.database_url, poolclass=NullPool)
            with self.engine.begin() as conn:
                name = f"chaos-{time.time_ns()}"
                auth.create_user(conn, name=name, role="host", password="correct horse battery")
                self.token = auth.issue_token(conn, user_name=name)
            self.server = self._server().start()
        except BaseException:
            self.close()
            raise
        return self

    def _server(self, port: int | None = None) -> ChaosServer:
        assert self.redis is not None
        return ChaosServer(database_url=self.database_url, redis_url=self.redis.url,
                           instance=self.workdir / "instance", workers=self.workers, port=port)

    @property
    def url(self) -> str:
        assert self.server is not None
        return self.server.url

    def headers(self, key: str | None = None) -> dict[str, str]:
        headers = {"Authorization": f"Bearer {self.token}"}
        if key:
            headers["Idempotency-Key"] = key
        return headers

    def ensure_server(self) -> None:
        """A server answering /healthz (a failed run may have left it dead)."""
        assert self.server is not None
        if self.server.proc is None or self.server.proc.poll() is not None:
            self.server.kill()
            self.server = self._server(self.server.port).start()

    def restart_server(self) -> None:
        """Kill -9 the whole server and start a new one on the same port."""
        assert self.server is not None
        port = self.server.port
        self.server.kill()
        self.server = self._server(port).start()

    def new_session(self) -> int:
        body = {**APRICOT_SESSION, "title": f"chaos {time.strftime('%H:%M:%S')}",
                "products": [{k: v for k, v in p.items() if k != "stock"} for p in APRICOT_SESSION["products"]]}
        with requests.Session() as http:
            created = http.post(f"{self.url}/api/v1/sessions", json=body, headers=self.headers(), timeout=30)
            assert created.status_code == 201, created.text
            session_id = created.json()["id"]
            started = http.post(f"{self.url}/api/v1/sessions/{session_id}/start", headers=self.headers(), timeout=30)
            assert started.status_code == 200, started.text
        return int(session_id)

    def close(self) -> None:
        for step in (
            lambda: self.server and self.server.stop(),
            lambda: self.redis and self.redis.stop(),
            lambda: self.pg and self.pg.close(),
            lambda: self.engine and self.engine.dispose(),
        ):
            try:
                step()
            except Exception:  # noqa: BLE001 - clean up as much as possible
                traceback.print_exc()
        self.server = self.redis = self.pg = self.engine = None


def postgres_available() -> bool:
    return postgres_bin_dir() is not None


# --- the load and its ledger -----------------------------------------------------


@dataclasses.dataclass
class Request:
    """One order request: a single order or a batch, always sent with the same key and body."""

    key: str
    body: dict[str, Any]
    #: (stored key, order body) per order: a batch with key K stores K#0, K#1, ...
    stored: list[tuple[str, dict[str, Any]]]
    batch: bool
    attempts: int = 0
    due: float = 0.0


@dataclasses.dataclass(frozen=True, slots=True)
class Shown:
    """A totals figure as some screen received it."""

    at: float
    version: int
    orders: int
    amount_fen: int


class Ledger:
    """Everything the clients sent, what was acknowledged, and every answer's outcome."""

    def __init__(self, clients: int) -> None:
        self.lock = threading.Lock()
        self.sent: dict[str, dict[str, Any]] = {}  # stored key -> order body
        self.acked: dict[str, str] = {}  # stored key -> order id from a 2xx answer
        self.acked_at: dict[str, float] = {}
        #: (sent, answered, kind, outcome): kind new|retry|repeat, outcome the status code or NO_ANSWER.
        self.outcomes: list[tuple[float, float, str, str]] = []
        self.retried: set[str] = set()
        self.stored_before_retry = 0  # retries answered 200: the lost answer's order had been stored
        self.repeats_ok = 0
        self.errors: list[str] = []
        #: Per client: the totals of its own 2xx answers, in order (an order console's view).
        self.consoles: list[list[Shown]] = [[] for _ in range(clients)]

    def error(self, message: str) -> None:
        with self.lock:
            if len(self.errors) < 50:
                self.errors.append(message)

    def ack(self, request: Request, data: dict[str, Any], at: float) -> None:
        orders = data["orders"] if request.batch else [data["order"]]
        if len(orders) != len(request.stored):
            self.error(f"{request.key}: {len(orders)} orders answered for {len(request.stored)} sent")
            return
        with self.lock:
            for (key, _body), order in zip(request.stored, orders, strict=True):
                known = self.acked.setdefault(key, order["id"])
                self.acked_at.setdefault(key, at)
                if known != order["id"]:
                    self.errors.append(f"{key} was acknowledged as two orders: {known} and {order['id']}")


class Gate:
    """Lets the convergence check pause the clients between two requests."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._closed = False
        self._active = 0

    @contextmanager
    def passage(self) -> Iterator[None]:
        with self._cond:
            self._cond.wait_for(lambda: not self._closed)
            self._active += 1
        try:
            yield
        finally:
            with self._cond:
                self._active -= 1
                self._cond.notify_all()

    def close(self, timeout_s: float) -> bool:
        """Stop letting requests in; True once none is in flight."""
        with self._cond:
            self._closed = True
            return self._cond.wait_for(lambda: self._active == 0, timeout=timeout_s)

    def open(self) -> None:
        with self._cond:
            self._closed = False
            self._cond.notify_all()


class Load:
    """Client threads posting orders (see the module docstring)."""

    def __init__(self, rig: Rig, session_id: int, ledger: Ledger, gate: Gate, plan: Plan, tag: str):
        self.url = f"{rig.url}/api/v1/sessions/{session_id}/orders"
        self.rig = rig
        self.ledger = ledger
        self.gate = gate
        self.plan = plan
        self.tag = tag
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._left: list[Request] = []
        self._left_lock = threading.Lock()
        self.repeats = 0

    def start(self) -> Load:
        self._threads = [threading.Thread(target=self._client, args=(n,), name=f"chaos-client-{n}", daemon=True)
                         for n in range(self.plan.clients)]
        for th in self._threads:
            th.start()
        return self

    def stop(self) -> list[Request]:
        """Stop the clients; returns the requests still waiting for a retry."""
        self._stop.set()
        self.gate.open()
        for th in self._threads:
            th.join(timeout=120)
            if th.is_alive():
                self.ledger.error(f"{th.name} is stuck")
        return self._left

    def _client(self, n: int) -> None:
        rng = random.Random(f"{self.tag}-{n}")
        pending: collections.deque[Request] = collections.deque()
        mine: list[str] = []  # single orders this client got acknowledged (for deliberate repeats)
        i = 0
        try:
            with requests.Session() as http:
                while not self._stop.is_set():
                    now = time.monotonic()
                    if pending and pending[0].due <= now:
                        request, kind = pending.popleft(), "retry"
                    elif mine and rng.random() < 0.05:
                        key = rng.choice(mine)
                        request, kind = Request(key=key, body=self.ledger.sent[key], stored=[(key, self.ledger.sent[key])],
                                                batch=False), "repeat"
                    else:
                        i += 1
                        request, kind = self._new(f"{self.tag}{n}-{i}", rng), "new"
                    self._send(http, n, request, kind, pending, mine)
                    time.sleep(self.plan.pause_s)
        except Exception:  # noqa: BLE001 - reported, never lost in a thread
            self.ledger.error(traceback.format_exc())
        with self._left_lock:
            self._left.extend(pending)

    def _new(self, key: str, rng: random.Random) -> Request:
        if rng.random() < 0.2:
            stored = [(f"{key}#{j}", payload_for(f"{key}#{j}")) for j in range(rng.randint(2, 5))]
            request = Request(key=key, body={"orders": [b for _, b in stored]}, stored=stored, batch=True)
        else:
            body = payload_for(key)
            request = Request(key=key, body=body, stored=[(key, body)], batch=False)
        with self.ledger.lock:
            self.ledger.sent.update(request.stored)
        return request

    def _send(self, http: requests.Session, n: int, request: Request, kind: str,
              pending: collections.deque[Request], mine: list[str]) -> None:
        ledger = self.ledger
        with self.gate.passage():
            sent = time.monotonic()
            try:
                r: requests.Response | None = http.post(
                    self.url, json=request.body, headers=self.rig.headers(request.key), timeout=(2, 30)
                )
            except requests.RequestException:
                r = None
            answered = time.monotonic()
        outcome = NO_ANSWER if r is None else str(r.status_code)
        with ledger.lock:
            ledger.outcomes.append((sent, answered, kind, outcome))
        if r is not None and 200 <= r.status_code < 300:
            data = r.json()
            ledger.ack(request, data, answered)
            totals = data["totals"]
            ledger.consoles[n].append(Shown(answered, totals["version"], totals["orders"], totals["amount_fen"]))
            if kind == "repeat":
                if r.status_code != 200:
                    ledger.error(f"a repeat of {request.key} answered {r.status_code}, not 200")
                else:
                    with ledger.lock:
                        ledger.repeats_ok += 1
            elif kind == "new" and r.status_code != 201:
                ledger.error(f"a new key {request.key} answered {r.status_code}, not 201")
            elif kind == "retry" and r.status_code == 200:
                with ledger.lock:
                    ledger.stored_before_retry += 1
            if not request.batch and kind != "repeat":
                mine.append(request.key)
        elif r is None or r.status_code >= 500 or r.status_code == 429:
            if kind != "repeat":  # a repeat was acknowledged already: nothing to retry
                request.attempts += 1
                request.due = time.monotonic() + min(2.0, 0.2 * request.attempts)
                pending.append(request)
                with ledger.lock:
                    ledger.retried.add(request.key)
        else:
            ledger.error(f"{kind} {request.key}: {r.status_code} {r.text[:300]}")


def drain(rig: Rig, session_id: int, left: list[Request], ledger: Ledger, *, timeout_s: float = 60) -> list[str]:
    """Retry every unanswered request (same key, same body) until acknowledged; keys never acknowledged."""
    url = f"{rig.url}/api/v1/sessions/{session_id}/orders"
    deadline = time.monotonic() + timeout_s
    todo = list(left)
    with requests.Session() as http:
        while todo and time.monotonic() < deadline:
            request = todo.pop(0)
            try:
                r = http.post(url, json=request.body, headers=rig.headers(request.key), timeout=(2, 30))
            except requests.RequestException:
                r = None
            now = time.monotonic()
            with ledger.lock:
                ledger.outcomes.append((now, now, "retry", NO_ANSWER if r is None else str(r.status_code)))
            if r is not None and 200 <= r.status_code < 300:
                ledger.ack(request, r.json(), now)
                if r.status_code == 200:
                    with ledger.lock:
                        ledger.stored_before_retry += 1
            elif r is None or r.status_code >= 500 or r.status_code == 429:
                todo.append(request)
                time.sleep(0.2)
            else:
                ledger.error(f"retry {request.key}: {r.status_code} {r.text[:300]}")
    return [request.key for request in todo]


# --- what the screens show -----------------------------------------------------------


@dataclasses.dataclass(frozen=True, slots=True)
class Reading:
    sent: float
    answered: float
    status: str
    shown: Shown | None
    figures: dict[str, Any] | None


class Watcher:
    """Polls the totals API and records every answer."""

    def __init__(self, rig: Rig, session_id: int, *, interval_s: float = 0.1):
        self.url = f"{rig.url}/api/v1/sessions/{session_id}/totals"
        self.headers = rig.headers()
        self.interval_s = interval_s
        self.readings: list[Reading] = []
        self.errors: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="chaos-watcher", daemon=True)

    def start(self) -> Watcher:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread.ident is not None:  # started
            self._thread.join(timeout=60)

    def _run(self) -> None:
        try:
            with requests.Session() as http:
                while not self._stop.is_set():
                    self.readings.append(read_totals(http, self.url, self.headers))
                    self._stop.wait(self.interval_s)
        except Exception:  # noqa: BLE001
            self.errors.append(traceback.format_exc())


def read_totals(http: requests.Session, url: str, headers: dict[str, str]) -> Reading:
    sent = time.monotonic()
    try:
        r = http.get(url, headers=headers, timeout=(2, 15))
    except requests.RequestException:
        return Reading(sent, time.monotonic(), NO_ANSWER, None, None)
    answered = time.monotonic()
    if r.status_code != 200:
        return Reading(sent, answered, str(r.status_code), None, None)
    data = r.json()
    return Reading(sent, answered, "200", Shown(answered, data["version"], data["orders"], data["amount_fen"]),
                   api_figures(data))


class ChaosViewer(Viewer):
    """A Socket.IO viewer of one session that re-joins after every (re)connect, as the pages do."""

    def __init__(self, session_id: int):
        self.session_id = session_id
        super().__init__(reconnection=True)

    def _on_connect(self) -> None:
        super()._on_connect()
        self.client.start_background_task(self.join, {"session": self.session_id})

    def shown(self) -> list[tuple[Shown, dict[str, Any]]]:
        """Every ``totals`` received, in order, with its figures."""
        return [(Shown(at, d["version"], d["orders"], d["amount_fen"]), d) for at, d in self.timed("totals")]

    def showing(self) -> dict[str, Any] | None:
        """What the screen shows now: the latest payload not older (by version) than the one shown."""
        current = None
        for _at, data in self.timed("totals"):
            if current is None or data["version"] >= current["version"]:
                current = data
        return api_figures(current) if current is not None else None


def backwards(seq: list[Shown], *, by_version: bool, name: str) -> list[str]:
    """Figures shown that went down (or back to 0) after a higher one was shown.

    ``by_version``: a payload with a lower version than the one shown is
    ignored, as the pages do (``p.version >= shown.version``).
    """
    problems = []
    shown: Shown | None = None
    for item in seq:
        if shown is not None and by_version and item.version < shown.version:
            continue
        if shown is not None and (item.orders < shown.orders or item.amount_fen < shown.amount_fen):
            what = "reset to 0" if item.orders == 0 else "went backwards"
            problems.append(f"{name} {what}: {shown.orders} orders / {shown.amount_fen} fen (version {shown.version})"
                            f" then {item.orders} / {item.amount_fen} (version {item.version})")
        shown = item
    return problems


# --- faults ----------------------------------------------------------------------------


def inject(rig: Rig, fault: str, plan: Plan) -> tuple[float, float]:
    """Inject ``fault``; returns (start, end) on the monotonic clock: end is when the service is back."""
    assert rig.redis is not None
    start = time.monotonic()
    if fault == "kill9-app":
        rig.restart_server()
    elif fault == "redis-shutdown":
        rig.redis.shutdown_nosave()
        time.sleep(plan.down_s)
        rig.redis.start()
    elif fault == "redis-flush":
        rig.redis.flushall()
    elif fault == "redis-freeze":
        rig.redis.freeze()
        try:
            time.sleep(plan.freeze_s)
        finally:
            rig.redis.thaw()
    elif fault == "pg-immediate":
        assert rig.pg is not None, "pg-immediate needs the rig's private PostgreSQL"
        rig.pg.stop_immediate()
        try:
            time.sleep(plan.down_s)
        finally:
            rig.pg.start_server()
    else:
        raise ValueError(f"unknown fault {fault!r}; one of {', '.join(FAULTS)}")
    return start, time.monotonic()


# --- one run ---------------------------------------------------------------------------


@dataclasses.dataclass
class FaultReport:
    fault: str
    injected: str
    database: str
    workers: int
    clients: int
    seconds: float
    session_id: int
    fault_s: float = 0.0
    #: Orders (not requests) acknowledged with a 2xx, in all and between the fault's start and end.
    acknowledged: int = 0
    acknowledged_during_fault: int = 0
    order_requests: int = 0
    #: Acknowledged orders missing from SQL (or stored under another id).
    lost: int = 0
    #: Keys stored more than once.
    duplicated: int = 0
    #: Orders stored but never acknowledged (after every retry), or stored without being sent.
    unexpected: int = 0
    unresolved: int = 0
    retried_requests: int = 0
    #: Retries answered 200: the order had been stored, its answer was lost; counted once.
    stored_before_retry: int = 0
    repeats_ok: int = 0
    #: Non-2xx answers (or none) while the fault was on: {"orders": {status: n}, "totals": {status: n}}.
    failures_during_fault: dict[str, dict[str, int]] = dataclasses.field(default_factory=dict)
    failures_outside_fault: dict[str, dict[str, int]] = dataclasses.field(default_factory=dict)
    #: Fault end -> the totals API, then also the Socket.IO viewer, equal the SQL sums (None: never).
    api_recovery_s: float | None = None
    viewer_recovery_s: float | None = None
    recovery_s: float | None = None
    #: A figure shown by the totals API or the Socket.IO viewer went down or back to 0 (the promise).
    went_backwards: bool = False
    backwards: list[str] = dataclasses.field(default_factory=list)
    #: The same for what each client's own order answers showed (an order console). Reported, not
    #: part of ``ok``: see docs/reliability.md, "What is not promised".
    console_backwards: list[str] = dataclasses.field(default_factory=list)
    totals_readings: int = 0
    viewer_pushes: int = 0
    viewer_errors: list[Any] = dataclasses.field(default_factory=list)
    final_api_equals_sql: bool = False
    final_viewer_equals_sql: bool = False
    sql_equals_sent: bool = False
    errors: list[str] = dataclasses.field(default_factory=list)
    #: The quiescent checks after the fault (seconds after its end, gate wait, API/viewer equal to SQL).
    checks: list[dict[str, Any]] = dataclasses.field(default_factory=list)
    #: What the watcher got, seconds from the fault's start: [sent, answered, status, orders shown].
    totals_timeline: list[list[Any]] = dataclasses.field(default_factory=list)
    #: What the viewer got, seconds from the fault's start: [received, version, orders].
    viewer_timeline: list[list[Any]] = dataclasses.field(default_factory=list)

    @property
    def ok(self) -> bool:
        return (
            not self.errors and self.lost == 0 and self.duplicated == 0 and self.unexpected == 0
            and self.unresolved == 0 and not self.went_backwards and self.recovery_s is not None
            and self.recovery_s <= RECOVERY_LIMIT_S and self.final_api_equals_sql
            and self.final_viewer_equals_sql and self.sql_equals_sent and self.acknowledged > 0
        )

    def as_dict(self) -> dict[str, Any]:
        return {**dataclasses.asdict(self), "ok": self.ok}


def _count(outcomes: list[str]) -> dict[str, int]:
    return dict(sorted(collections.Counter(outcomes).items()))


def run_fault(rig: Rig, fault: str, plan: Plan | None = None, *, log: Any = None) -> FaultReport:
    """One fault under load on a fresh session of ``rig``; see the module docstring."""
    plan = plan or Plan()
    say = log or (lambda _msg: None)
    if not rig.supports(fault):
        raise ValueError(f"{fault} needs a rig with its private PostgreSQL")
    rig.ensure_server()
    session_id = rig.new_session()
    report = FaultReport(fault=fault, injected=plan.describe(fault), database=rig.database, workers=rig.workers,
                         clients=plan.clients, seconds=plan.seconds, session_id=session_id)
    ledger = Ledger(plan.clients)
    gate = Gate()
    viewer = ChaosViewer(session_id)
    watcher = Watcher(rig, session_id)
    load = Load(rig, session_id, ledger, gate, plan, tag=f"s{session_id}c")
    left: list[Request] = []
    fault_start = fault_end = 0.0
    try:
        try:
            viewer.connect(rig.url, token=rig.token)
            viewer.wait_for(lambda: bool(viewer.of("totals")), timeout=10)
            watcher.start()
            began = time.monotonic()
            load.start()
            warmup = max(1.0, 0.3 * plan.seconds)
            deadline = began + warmup + 30
            while time.monotonic() < began + warmup or len(ledger.acked) < plan.min_acks_before:
                if time.monotonic() > deadline or ledger.errors:
                    break
                time.sleep(0.05)
            say(f"{fault}: {len(ledger.acked)} orders acknowledged, injecting")
            fault_start, fault_end = inject(rig, fault, plan)
            report.fault_s = round(fault_end - fault_start, 2)
            say(f"{fault}: the fault is over after {report.fault_s} s; checking convergence")
            api_at, viewer_at = _converge(rig, session_id, gate, viewer, fault_end, plan, report.checks)
            if api_at is not None:
                report.api_recovery_s = round(max(0.0, api_at - fault_end), 2)
            if viewer_at is not None:
                report.viewer_recovery_s = round(max(0.0, viewer_at - fault_end), 2)
            if api_at is not None and viewer_at is not None:
                report.recovery_s = round(max(0.0, max(api_at, viewer_at) - fault_end), 2)
            # The load goes on after the fault: 70 % of the run, at least 3 s after its end.
            after = fault_end + max(3.0, 0.7 * plan.seconds - (fault_end - fault_start))
            while time.monotonic() < after and not ledger.errors:
                time.sleep(0.05)
        finally:
            left = load.stop()
        unresolved = drain(rig, session_id, left, ledger)
        report.unresolved = len(unresolved)
        _final(rig, session_id, viewer, report)
    finally:
        watcher.stop()
        viewer.close()
    _verify(rig, session_id, ledger, report)
    # What was shown.
    readings = watcher.readings
    report.totals_readings = len(readings)
    problems = backwards([r.shown for r in readings if r.shown is not None], by_version=False, name="totals API")
    pushes = viewer.shown()
    report.viewer_pushes = len(pushes)
    problems += backwards([s for s, _ in pushes], by_version=True, name="Socket.IO viewer")
    consoles = []
    for n, console in enumerate(ledger.consoles):
        consoles += backwards(console, by_version=True, name=f"console {n} (order answers)")
    report.console_backwards = consoles[:10]
    report.totals_timeline = [[round(r.sent - fault_start, 2), round(r.answered - fault_start, 2), r.status,
                               r.shown.orders if r.shown else None] for r in readings]
    report.viewer_timeline = [[round(s.at - fault_start, 2), s.version, s.orders] for s, _ in pushes]
    report.went_backwards = bool(problems)
    report.backwards = problems[:10]
    report.viewer_errors = viewer.of("error")[:10]

    def split(items: list[tuple[float, float, str]]) -> tuple[dict[str, int], dict[str, int]]:
        during = [o for s, a, o in items if o != "200" and o != "201" and a >= fault_start and s <= fault_end]
        outside = [o for s, a, o in items if o != "200" and o != "201" and not (a >= fault_start and s <= fault_end)]
        return _count(during), _count(outside)

    orders_during, orders_outside = split([(s, a, o) for s, a, _k, o in ledger.outcomes])
    totals_during, totals_outside = split([(r.sent, r.answered, r.status) for r in readings])
    report.failures_during_fault = {"orders": orders_during, "totals": totals_during}
    report.failures_outside_fault = {"orders": orders_outside, "totals": totals_outside}
    report.order_requests = len(ledger.outcomes)
    report.acknowledged = len(ledger.acked)
    report.acknowledged_during_fault = sum(1 for at in ledger.acked_at.values() if fault_start <= at <= fault_end)
    report.retried_requests = len(ledger.retried)
    report.stored_before_retry = ledger.stored_before_retry
    report.repeats_ok = ledger.repeats_ok
    report.errors = ledger.errors + watcher.errors
    say(f"{fault}: {'ok' if report.ok else 'FAILED'}: {report.acknowledged} acknowledged, {report.lost} lost, "
        f"{report.duplicated} duplicated, recovery {report.recovery_s} s")
    return report


def _equal_now(rig: Rig, session_id: int, http: requests.Session) -> tuple[bool, dict[str, Any], str]:
    """(totals API == SQL sums, the SQL sums, the API's status)."""
    assert rig.engine is not None
    sql = headline(sql_figures(rig.engine, session_id))
    reading = read_totals(http, f"{rig.url}/api/v1/sessions/{session_id}/totals", rig.headers())
    return reading.figures == sql, sql, reading.status


def _converge(rig: Rig, session_id: int, gate: Gate, viewer: ChaosViewer, fault_end: float,
              plan: Plan, checks: list[dict[str, Any]]) -> tuple[float | None, float | None]:
    """Quiescent checks from the fault's end: when did the API, then the viewer, equal the SQL sums?"""
    api_at = viewer_at = None
    with requests.Session() as http:
        while time.monotonic() < fault_end + plan.converge_limit_s:
            check: dict[str, Any] = {"at": round(time.monotonic() - fault_end, 2)}
            checks.append(check)
            try:
                quiet = gate.close(timeout_s=30)
                check["gate_wait_s"] = round(time.monotonic() - fault_end - check["at"], 2)
                if quiet:
                    try:
                        equal, sql, check["api_status"] = _equal_now(rig, session_id, http)
                    except sa.exc.SQLAlchemyError as exc:
                        equal, sql, check["sql_error"] = False, {}, type(exc).__name__
                    check["api"] = equal
                    if equal:
                        if api_at is None:
                            api_at = time.monotonic()
                        check["viewer"] = viewer.wait_for(lambda sql=sql: viewer.showing() == sql, timeout=2.0)
                        if check["viewer"]:
                            viewer_at = time.monotonic()
                            break
            finally:
                gate.open()
            time.sleep(0.3)
    return api_at, viewer_at


def _final(rig: Rig, session_id: int, viewer: ChaosViewer, report: FaultReport) -> None:
    """With the load stopped: the API and the viewer must show the SQL sums."""
    deadline = time.monotonic() + RECOVERY_LIMIT_S
    with requests.Session() as http:
        while True:
            equal, sql, _status = _equal_now(rig, session_id, http)
            if equal or time.monotonic() > deadline:
                break
            time.sleep(0.2)
    report.final_api_equals_sql = equal
    # The last change is pushed at the next tick, and live sessions every 5 s anyway.
    report.final_viewer_equals_sql = viewer.wait_for(lambda: viewer.showing() == sql, timeout=7.0)


def _verify(rig: Rig, session_id: int, ledger: Ledger, report: FaultReport) -> None:
    """The ledger against SQL: nothing acknowledged is missing, nothing is stored twice."""
    assert rig.engine is not None
    o = t.orders
    with rig.engine.connect() as conn:
        rows = conn.execute(sa.select(o.c.idempotency_key, o.c.id).where(o.c.session_id == session_id)).all()
    stored = {key: str(order_id) for key, order_id in rows}
    report.lost = sum(1 for key, order_id in ledger.acked.items() if stored.get(key) != order_id)
    report.duplicated = len(duplicate_keys(rig.engine, session_id)) + (len(rows) - len(stored))
    report.unexpected = sum(1 for key in stored if key not in ledger.acked)
    sql = headline(sql_figures(rig.engine, session_id))
    report.sql_equals_sent = sql == headline(expected_figures(ledger.sent[key] for key in ledger.acked))
