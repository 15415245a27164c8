"""Redis fails over under load: no acknowledged order lost or counted twice, and the totals in Redis
equal the SQL sums within 5 s of the new master.

A server (gunicorn, two gevent workers, as ``livesale serve`` runs it) takes
orders from a few client threads, with the ledger and load of
``tests/chaos`` (every request keyed and retried with the same key until
acknowledged; see tests/chaos/runner.py), on a topology of the test's own:

* ``redis+sentinel://`` (a master, a replica, three sentinels):
  ``SENTINEL FAILOVER``, which promotes the replica while the old master is
  still up (the sentinels make it a replica of the new one some seconds
  later); then, once it replicates again, ``kill -9`` of the new master, and
  the sentinels promote the old one;
* ``redis+cluster://`` with a replica per master: ``kill -9`` of the master
  that holds the session's slot, and its replica takes over.

After each promotion, quiescent checks (the clients paused a moment, as in
``tests.chaos.runner``) compare the totals API, which reads Redis, with the
SQL sums every ~0.3 s: from 5 s after the promotion on every check must find
them equal (a process may read the other server for up to a second before it
notices the move and rebuilds), and a Socket.IO viewer must show them. After
``SENTINEL FAILOVER`` the checks go on until the old master has been made a
replica (it takes writes on old connections until then, and drops them) and
5 s more. At the end every acknowledged order is in SQL exactly once. What
the failover cost the clients is measured and printed (``-s`` shows it;
docs/deploy.md quotes it).
"""

from __future__ import annotations

import collections
import contextlib
import dataclasses
import json
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
import requests
import sqlalchemy as sa
from sqlalchemy.pool import NullPool

from livesale.core import auth, schema
from tests.chaos.runner import (
    RECOVERY_LIMIT_S,
    ChaosViewer,
    FaultReport,
    Gate,
    Ledger,
    Load,
    Plan,
    Rig,
    Watcher,
    _final,
    _verify,
    backwards,
    drain,
    read_totals,
)
from tests.chaos.services import ChaosServer, PrivateRedis
from tests.ledger import headline, sql_figures

from .services import RedisCluster, SentinelGroup, skip_unless_supported

pytestmark = pytest.mark.slow

#: A modest load on shared cores: three clients, 20 ms between requests, a fifth of them batches.
PLAN = Plan(seconds=4, clients=3, pause_s=0.02, min_acks_before=100)
#: A request slower than this counts as a stall.
STALL_S = 0.5


class TopologyRig(Rig):
    """``tests.chaos.runner.Rig`` on a Redis URL of ours instead of its private redis-server (SQLite)."""

    def __init__(self, workdir: Path, *, redis_url: str, message_queue: str = "", workers: int = 2):
        super().__init__(workdir, database="sqlite", workers=workers)
        self.redis_url = redis_url
        self.message_queue = message_queue

    def start(self) -> TopologyRig:
        try:
            self.workdir.mkdir(parents=True, exist_ok=True)
            self.database_url = f"sqlite:///{self.workdir / 'livesale.sqlite'}"
            schema.upgrade(self.database_url)
            self.engine = sa.create_engine(self.database_url, poolclass=NullPool)
            with self.engine.begin() as conn:
                auth.create_user(conn, name="failover", role="host", password="correct horse battery")
                self.token = auth.issue_token(conn, user_name="failover")
            self.server = self._server().start()
        except BaseException:
            self.close()
            raise
        return self

    def _server(self, port: int | None = None) -> ChaosServer:
        return ChaosServer(database_url=self.database_url, redis_url=self.redis_url,
                           instance=self.workdir / "instance", workers=self.workers, port=port,
                           message_queue=self.message_queue)


@pytest.fixture
def group(tmp_path: Path) -> Iterator[SentinelGroup]:
    """A Sentinel group of this test's own: the faults leave it with one data node."""
    skip_unless_supported()
    with SentinelGroup(tmp_path / "sentinel") as group:
        yield group


def _union_s(intervals: list[tuple[float, float]]) -> float:
    """Seconds covered by the union of ``intervals``."""
    total, end = 0.0, float("-inf")
    for start, stop in sorted(intervals):
        if stop <= end:
            continue
        total += stop - max(start, end)
        end = stop
    return total


def cost(ledger: Ledger, watcher: Watcher, since: float, until: float) -> dict[str, Any]:
    """What the order clients (and the totals API's poller) saw between ``since`` and ``until``."""
    readings = [r for r in watcher.readings if r.answered >= since and r.sent <= until]
    window = [(s, a, k, o) for s, a, k, o in ledger.outcomes if a >= since and s <= until]
    failed = [(s, a, o) for s, a, _k, o in window if o not in ("200", "201")]
    slow = [(s, a) for s, a, _k, o in window if o in ("200", "201") and a - s > STALL_S]
    return {
        "requests": len(window),
        "failed": dict(collections.Counter(o for _s, _a, o in failed)),
        "retries_sent": sum(1 for *_, k, _o in window if k == "retry"),
        "error_s": round(_union_s([(s, a) for s, a, _o in failed]), 2),
        "stalled_s": round(_union_s(slow), 2),
        "slowest_request_s": round(max((a - s for s, a, _k, _o in window), default=0.0), 2),
        "totals_reads": len(readings),
        "totals_reads_failed": dict(collections.Counter(r.status for r in readings if r.status != "200")),
        "totals_error_s": round(_union_s([(r.sent, r.answered) for r in readings if r.status != "200"]), 2),
    }


def replicates(group: SentinelGroup, port: int) -> bool:
    """The node at ``port`` is a replica of the current master, in sync."""
    master = group.master_port()
    info = group.node(port).info("replication")
    return info["role"] == "slave" and info["master_port"] == master and info["master_link_status"] == "up"


@dataclasses.dataclass
class Watched:
    """Quiescent checks after a promotion: (seconds after it, totals API == SQL sums?)."""

    promoted: float
    checks: list[tuple[float, bool]] = dataclasses.field(default_factory=list)
    #: When the ``until`` condition of ``watch`` first held (the old master demoted), seconds after the promotion.
    until_s: float | None = None
    viewer_exact: bool = False
    #: The first inexact checks: (seconds, the API's status, (orders, amount) the API and SQL said).
    wrong: list[tuple[float, str, Any, Any]] = dataclasses.field(default_factory=list)

    @property
    def settled_s(self) -> float | None:
        """Seconds after the promotion from which every check found the totals exact (None: never)."""
        settled = None
        for at, equal in self.checks:
            if not equal:
                settled = None
            elif settled is None:
                settled = at
        return settled

    def check(self, rig: Rig, session_id: int, http: requests.Session) -> tuple[bool, dict[str, Any]]:
        """One check (the clients paused): the totals API against the SQL sums."""
        assert rig.engine is not None
        sql = headline(sql_figures(rig.engine, session_id))
        reading = read_totals(http, f"{rig.url}/api/v1/sessions/{session_id}/totals", rig.headers())
        at = round(time.monotonic() - self.promoted, 2)
        equal = reading.figures == sql
        self.checks.append((at, equal))
        if not equal and len(self.wrong) < 3:
            api = reading.figures and (reading.figures["orders"], reading.figures["amount_fen"])
            self.wrong.append((at, reading.status, api, (sql["orders"], sql["amount_fen"])))
        return equal, sql

    def summary(self) -> dict[str, Any]:
        wrong = [at for at, equal in self.checks if not equal]
        return {"totals_exact_after_promotion_s": self.settled_s, "checks": len(self.checks),
                "inexact_checks": len(wrong), "inexact_from_to_s": [wrong[0], wrong[-1]] if wrong else None,
                "viewer_exact": self.viewer_exact, "first_inexact": self.wrong}


def watch(rig: Rig, session_id: int, gate: Gate, viewer: ChaosViewer, promoted: float, *,
          until: Callable[[], bool], then_s: float, timeout_s: float = 60.0) -> Watched:
    """Quiescent checks every ~0.3 s (the clients paused for a moment: totals API == SQL sums?) from
    the promotion until ``until()`` holds and ``then_s`` more; then one check that the Socket.IO
    viewer shows the SQL sums (within 2 s, as in ``tests.chaos.runner``)."""
    seen = Watched(promoted)
    deadline = promoted + timeout_s
    with requests.Session() as http:
        while seen.until_s is None or time.monotonic() < promoted + seen.until_s + then_s:
            assert time.monotonic() < deadline, f"no end to the watch after {timeout_s} s: {seen.summary()}"
            try:
                assert gate.close(timeout_s=30), "requests in flight for 30 s"
                seen.check(rig, session_id, http)
            finally:
                gate.open()
            if seen.until_s is None:
                try:
                    if until():
                        seen.until_s = round(time.monotonic() - promoted, 2)
                except redis.RedisError:
                    pass
            time.sleep(0.3)
        try:
            assert gate.close(timeout_s=30), "requests in flight for 30 s"
            equal, sql = seen.check(rig, session_id, http)
            seen.viewer_exact = equal and viewer.wait_for(lambda: viewer.showing() == sql, timeout=2.0)
        finally:
            gate.open()
    return seen


class UnderLoad:
    """``tests.chaos.runner``'s load, ledger, totals watcher and Socket.IO viewer on a fresh session of
    ``rig``; on leaving, the load stops, every unanswered request is retried until acknowledged, and
    the ledger is checked against SQL (``report``). ``figures`` collects what the test measured."""

    def __init__(self, rig: TopologyRig, name: str):
        self.rig = rig
        self.name = name
        self.session_id = rig.new_session()
        self.report = FaultReport(fault=name, injected=name, database="sqlite", workers=rig.workers,
                                  clients=PLAN.clients, seconds=PLAN.seconds, session_id=self.session_id)
        self.ledger = Ledger(PLAN.clients)
        self.gate = Gate()
        self.viewer = ChaosViewer(self.session_id)
        self.watcher = Watcher(rig, self.session_id)
        self.load = Load(rig, self.session_id, self.ledger, self.gate, PLAN, tag=f"s{self.session_id}f")
        self.figures: dict[str, Any] = {}

    def __enter__(self) -> UnderLoad:
        try:
            self.viewer.connect(self.rig.url, token=self.rig.token)
            assert self.viewer.wait_for(lambda: bool(self.viewer.of("totals")), timeout=10)
            self.watcher.start()
            began = time.monotonic()
            self.load.start()
            while time.monotonic() < began + 1 or len(self.ledger.acked) < PLAN.min_acks_before:
                assert time.monotonic() < began + 30 and not self.ledger.errors, self.ledger.errors or "too few orders"
                time.sleep(0.05)
        except BaseException:
            self.__exit__()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        left: list[Any] = []
        try:
            try:
                left = self.load.stop()
            finally:
                if exc and exc[0] is None:  # the faults went as planned: settle and verify
                    self.report.unresolved = len(drain(self.rig, self.session_id, left, self.ledger))
                    _final(self.rig, self.session_id, self.viewer, self.report)
        finally:
            self.watcher.stop()
            self.viewer.close()
        if exc and exc[0] is None:
            _verify(self.rig, self.session_id, self.ledger, self.report)

    def watch(self, promoted: float, *, until: Callable[[], bool], then_s: float) -> Watched:
        return watch(self.rig, self.session_id, self.gate, self.viewer, promoted, until=until, then_s=then_s)

    def step(self, name: str, started: float, acked_before: int, seen: Watched, **more: Any) -> None:
        """Record one fault's figures; it must leave the totals exact within 5 s of the promotion."""
        self.figures[name] = {**more, **seen.summary(), "acked_meanwhile": len(self.ledger.acked) - acked_before,
                              "cost": cost(self.ledger, self.watcher, started, time.monotonic())}
        assert seen.settled_s is not None and seen.settled_s <= RECOVERY_LIMIT_S, (name, seen.checks, seen.wrong)
        assert seen.viewer_exact, (name, "the Socket.IO viewer did not show the SQL sums", seen.checks)

    def check_nothing_lost(self) -> None:
        ledger, report, watcher, viewer = self.ledger, self.report, self.watcher, self.viewer
        shown = backwards([r.shown for r in watcher.readings if r.shown is not None], by_version=False, name="API")
        shown += backwards([s for s, _ in viewer.shown()], by_version=True, name="viewer")
        self.figures.update({
            "shown_going_backwards": len(shown), "backwards_examples": shown[:3],
            "acknowledged": len(ledger.acked), "order_requests": len(ledger.outcomes),
            "retried_keys": len(ledger.retried), "stored_before_retry": ledger.stored_before_retry,
            "lost": report.lost, "duplicated": report.duplicated, "unexpected": report.unexpected,
            "unresolved": report.unresolved,
        })
        print(f"\n{self.name} cost:", json.dumps(self.figures, indent=1))
        assert ledger.errors == [] and watcher.errors == [], (ledger.errors, watcher.errors)
        # Every acknowledged order is in SQL under its key, once; nothing stored that was not acknowledged.
        assert report.lost == 0 and report.duplicated == 0, self.figures
        assert report.unexpected == 0 and report.unresolved == 0, self.figures
        assert report.sql_equals_sent, self.figures
        assert report.final_api_equals_sql and report.final_viewer_equals_sql, self.figures
        # The faults really hit the load: orders were taken after each of them.
        assert all(step["acked_meanwhile"] > 0 for step in self.figures.values() if isinstance(step, dict))


def test_failover_then_kill9_of_the_master_loses_nothing_and_totals_are_exact_within_5s(
    group: SentinelGroup, tmp_path: Path
) -> None:
    with TopologyRig(tmp_path / "rig", redis_url=group.url) as rig:
        with UnderLoad(rig, "sentinel failover") as run:
            for step in ("failover", "kill9"):
                started, acked_before = time.monotonic(), len(run.ledger.acked)
                old = group.failover() if step == "failover" else group.kill9_master()
                new, promoted = group.wait_promoted(old)
                if step == "failover":
                    # The old master still takes writes on connections opened before the promotion
                    # until the sentinels make it a replica of the new one, seconds later, and then
                    # drops them: watch until then and 5 s more. (Before the kill it must replicate
                    # the new master, or there would be nothing left to promote.)
                    seen = run.watch(promoted, until=lambda old=old: replicates(group, old), then_s=RECOVERY_LIMIT_S)
                    group.wait_sentinels_agree(timeout_s=60)
                    more = {"old_master_demoted_after_promotion_s": seen.until_s}
                else:
                    seen = run.watch(promoted, until=lambda: True, then_s=RECOVERY_LIMIT_S + 2)
                    more = {}
                run.step(step, started, acked_before, seen, old_master=old, new_master=new,
                         promoted_after_s=round(promoted - started, 2), **more)
        run.check_nothing_lost()


def test_a_cluster_master_killed_under_load_loses_nothing_and_totals_are_exact_within_5s(tmp_path: Path) -> None:
    """``kill -9`` of the cluster master that holds the session's slot; its replica takes over
    (``cluster-node-timeout`` 1 s). The Socket.IO queue is a plain Redis of its own."""
    skip_unless_supported()
    with contextlib.ExitStack() as stack:
        cluster = stack.enter_context(RedisCluster(tmp_path / "cluster", replicas=1, node_timeout_ms=1000))
        queue = PrivateRedis(tmp_path / "queue")
        stack.callback(queue.stop)
        queue.start()
        rig = stack.enter_context(TopologyRig(tmp_path / "rig", redis_url=cluster.url, message_queue=queue.url))
        with UnderLoad(rig, "cluster failover") as run:
            started, acked_before = time.monotonic(), len(run.ledger.acked)
            victim = cluster.node(cluster.node_of(f"ls:{{s:{run.session_id}}}:totals"))
            replica = cluster.replica_of(victim.port)
            victim.kill9()
            promoted = cluster.wait_promoted(replica)
            seen = run.watch(promoted, until=lambda: True, then_s=RECOVERY_LIMIT_S + 2)
            run.step("kill9", started, acked_before, seen, old_master=victim.port, new_master=replica.port,
                     promoted_after_s=round(promoted - started, 2))
        run.check_nothing_lost()
