"""Faults under load, nothing lost: a short run of every fault of ``tests/chaos`` (issue 7).

Each fault runs for a few seconds of load on a fresh session (the Redis
freeze stays 10 s) against private services started for this module: a
private redis-server, and a private SQLite file (SQLite pass) or a private
PostgreSQL cluster (PostgreSQL pass, ``LIVESALE_TEST_DATABASE_URL`` set),
with a real gunicorn server of two gevent workers (``livesale serve``'s
default here). Nothing shared is stopped, frozen or flushed.

The longer runs behind docs/reliability.md: ``python -m tests.chaos``.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
import requests

from tests.conftest import PG_URL
from tests.ledger import api_figures, headline, payload_for, sql_figures

from .runner import FAULTS, NO_ANSWER, RECOVERY_LIMIT_S, Plan, Rig, Shown, backwards, postgres_available, run_fault

pytestmark = pytest.mark.slow

#: A few seconds of load per fault; the fault comes after 30 % of it, the load goes on >= 3 s after it.
SHORT = Plan(seconds=5, down_s=2, freeze_s=10, clients=4, pause_s=0.02, min_acks_before=100)


@pytest.fixture(scope="module")
def rig(tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest) -> Iterator[Rig]:
    workdir = tmp_path_factory.mktemp("chaos")
    if not PG_URL:
        rig = Rig(workdir, database="sqlite")
    elif postgres_available():
        rig = Rig(workdir, database="postgresql")  # a private cluster: the pg fault may crash it
    else:
        # No server binaries to run a private cluster: the app and Redis faults run on the
        # run's own PostgreSQL database (migrated by the conftest), the pg fault is skipped.
        rig = Rig(workdir, database="postgresql", database_url=request.getfixturevalue("_migrated_template"))
    with rig:
        yield rig


@pytest.mark.parametrize("fault", FAULTS)
def test_fault_under_load_loses_nothing_and_totals_recover(rig: Rig, fault: str) -> None:
    if fault == "pg-immediate" and not PG_URL:
        pytest.skip("the PostgreSQL crash runs in the PostgreSQL pass (LIVESALE_TEST_DATABASE_URL set)")
    if not rig.supports(fault):
        pytest.skip("no PostgreSQL server binaries (initdb, pg_ctl) to run a private cluster to crash")
    report = run_fault(rig, fault, SHORT)
    summary = report.as_dict()
    for key in ("totals_timeline", "viewer_timeline"):
        summary.pop(key)
    print(summary)
    assert report.errors == [], report.errors
    assert report.acknowledged >= SHORT.min_acks_before, summary
    # Promise 1: every acknowledged order is in SQL under its key; promise 3: nothing twice.
    assert report.lost == 0, summary
    assert report.duplicated == 0, summary
    assert report.unexpected == 0 and report.unresolved == 0, summary
    assert report.sql_equals_sent, summary
    # Promise 2: nothing shown went backwards; the API and the viewer met the SQL sums in time.
    assert not report.went_backwards, report.backwards
    assert report.recovery_s is not None and report.recovery_s <= RECOVERY_LIMIT_S, report.checks
    assert report.final_api_equals_sql and report.final_viewer_equals_sql, summary
    # The fault really hit the load.
    during = report.failures_during_fault
    if fault == "kill9-app":
        assert during["orders"].get(NO_ANSWER, 0) > 0, during
    elif fault == "redis-shutdown":
        assert sum(during["totals"].values()) > 0, during  # the totals API said 503 (it has no SQL fallback)
        # Orders are still taken (their totals summed from SQL), repeats of stored ones answered 200.
        assert report.acknowledged_during_fault > 0, summary
        assert during["orders"] == {}, during
    elif fault == "pg-immediate":
        assert sum(during["orders"].values()) > 0, during
        # Refused as an outage (503 with Retry-After, retried by clients), never as an internal error.
        assert set(during["orders"]) | set(during["totals"]) <= {"503", NO_ANSWER}, during


def test_an_order_whose_commit_answer_was_lost_is_counted(rig: Rig) -> None:
    """PostgreSQL crashes after it made a commit durable but before it said so.

    ``synchronous_standby_names = '*'`` with no standby makes every commit
    wait after its WAL is flushed locally; an immediate stop then cuts the
    answer off. The app sees an error (503, nothing acknowledged) although
    the order is in the database once the server has recovered. The retry
    answers 200 (already stored) and the totals must count that order
    whichever worker serves them, without a Redis fault to trigger a rebuild.
    """
    if rig.pg is None:
        pytest.skip("needs a private PostgreSQL cluster: the PostgreSQL pass with its server binaries")
    pg = rig.pg
    session_id = rig.new_session()
    url = f"{rig.url}/api/v1/sessions/{session_id}"
    with requests.Session() as http:
        for n in range(3):
            r = http.post(f"{url}/orders", json=payload_for(f"before-{n}"), headers=rig.headers(f"before-{n}"))
            assert r.status_code == 201, r.text
        pg.execute("ALTER SYSTEM SET synchronous_standby_names = '*'")
        pg.execute("SELECT pg_reload_conf()")
        answer: dict[str, Any] = {}

        def post() -> None:
            with requests.Session() as own:
                try:
                    answer["status"] = own.post(f"{url}/orders", json=payload_for("lost"),
                                                headers=rig.headers("lost"), timeout=60).status_code
                except requests.RequestException as exc:
                    answer["status"] = repr(exc)

        poster = threading.Thread(target=post)
        try:
            poster.start()
            deadline = time.monotonic() + 30
            while not pg.execute("SELECT count(*) FROM pg_stat_activity WHERE wait_event = 'SyncRep'")[0][0]:
                assert time.monotonic() < deadline, "the commit never waited for the (missing) standby"
                time.sleep(0.05)
            pg.stop_immediate()  # the commit is in the WAL; its answer is never sent
        finally:
            if not pg.running:
                pg.start_server()
            pg.execute("ALTER SYSTEM RESET synchronous_standby_names")
            pg.execute("SELECT pg_reload_conf()")
            poster.join(timeout=60)
        assert answer["status"] not in (200, 201), answer  # not acknowledged...

        retry = http.post(f"{url}/orders", json=payload_for("lost"), headers=rig.headers("lost"), timeout=60)
        assert retry.status_code == 200, retry.text  # ...yet stored: the retry finds it

        assert rig.engine is not None
        sql = headline(sql_figures(rig.engine, session_id))
        assert sql["orders"] == 4
        # Several reads, so that both workers answer (their connections' order is the kernel's).
        for _ in range(10):
            totals = http.get(f"{url}/totals", headers=rig.headers(), timeout=30)
            assert totals.status_code == 200, totals.text
            assert api_figures(totals.json()) == sql


def test_the_checks_can_fail() -> None:
    """The runner's judgement is not vacuous: it sees a figure going down or back to 0."""
    rising = [Shown(0, 1, 3, 300), Shown(1, 2, 4, 400), Shown(2, 3, 4, 400)]
    assert backwards(rising, by_version=False, name="x") == []
    assert backwards([*rising, Shown(3, 4, 3, 300)], by_version=False, name="x")
    assert "reset to 0" in backwards([*rising, Shown(3, 4, 0, 0)], by_version=False, name="x")[0]
    # A lower version is ignored by the pages, so it does not count as shown...
    assert backwards([*rising, Shown(3, 1, 0, 0)], by_version=True, name="x") == []
    # ...but a higher version with a lower figure does.
    assert backwards([*rising, Shown(3, 5, 4, 399)], by_version=True, name="x")

