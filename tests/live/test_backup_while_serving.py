"""``livesale db backup`` while a real server records orders, then ``db restore`` and ``export``, each run
as a user runs them: the real ``livesale`` command in a subprocess with a clean environment.

The backup taken mid-stream is one snapshot: every order acknowledged before it began is in it, none
sent after it ended is, each live session holds exactly the transactions up to its snapshot, and the
restored database's totals (rebuilt in Redis by the restore) and results add up to its orders.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import pytest
import redis
import requests
import sqlalchemy as sa

from livesale.core.db import create_db_engine
from livesale.core.results import aggregate_session
from livesale.core.totals import TotalsEngine
from tests.conftest import APRICOT_SESSION, PG_URL, ServerProcess
from tests.core.test_backup import table_rows
from tests.core.test_export import read_zip

LIVESALE = Path(sys.executable).parent / "livesale"

pytestmark = pytest.mark.skipif(
    bool(PG_URL), reason="the mid-stream backup is SQLite's online backup; PostgreSQL's round trip (pg_dump, "
                         "pg_restore) is tests/core/test_backup.py"
)


def run_livesale(*args: str, database_url: str, redis_url: str, home: Path, cwd: Path) -> subprocess.CompletedProcess[str]:
    """The real command with only what a user's shell would give it."""
    env = {
        "PATH": os.environ["PATH"], "HOME": str(home), "LANG": "C.UTF-8",
        "LIVESALE_ENV": "testing", "LIVESALE_DATABASE_URL": database_url, "LIVESALE_REDIS_URL": redis_url,
        "LIVESALE_INSTANCE_PATH": str(cwd / "instance"),
    }
    return subprocess.run([str(LIVESALE), *args], env=env, cwd=cwd, capture_output=True, text=True, timeout=120)


def clean(done: subprocess.CompletedProcess[str], code: int = 0) -> subprocess.CompletedProcess[str]:
    assert done.returncode == code, (done.returncode, done.stdout, done.stderr)
    assert "Traceback" not in done.stdout + done.stderr
    return done


def wait_for(condition: Any, what: str, timeout_s: float = 30) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.02)


class Writer(threading.Thread):
    """Posts orders to one session as fast as the server answers; notes when each was sent and acknowledged."""

    def __init__(self, url: str, token: str, session_id: int):
        super().__init__(daemon=True)
        self.url, self.session_id = url, session_id
        self.http = requests.Session()
        self.http.headers["Authorization"] = f"Bearer {token}"
        self.stop = threading.Event()
        self.acks: list[tuple[float, float, str]] = []  # (sent, acknowledged, order id)
        self.error: BaseException | None = None

    def run(self) -> None:
        i = 0
        try:
            while not self.stop.is_set():
                i += 1
                body = {"sku": "APRICOT-5KG" if i % 3 else "DRIED-1KG", "quantity": 1 + i % 3,
                        "buyer_region": ("浙江杭州", "新疆喀什", "=cmd|' /C calc'!A0")[i % 3]}
                sent = time.monotonic()
                reply = self.http.post(f"{self.url}/api/v1/sessions/{self.session_id}/orders", json=body, timeout=30)
                assert reply.status_code == 201, reply.text
                self.acks.append((sent, time.monotonic(), reply.json()["order"]["id"]))
        except BaseException as exc:  # reported by the test
            self.error = exc
        finally:
            self.http.close()


def test_backup_while_serving_restores_a_consistent_database(
    server_factory: Any, users: Any, database_url: str, redis_url: str, tmp_path: Path
) -> None:
    server = server_factory()
    token = users.token("host")
    api = requests.Session()
    api.headers["Authorization"] = f"Bearer {token}"

    def post(path: str, body: Any = None) -> Any:
        reply = api.post(server.url + path, json=body, timeout=30)
        assert reply.status_code in (200, 201), reply.text
        return reply.json()

    ended = post("/api/v1/sessions", {**APRICOT_SESSION, "title": "ended before the backup"})["id"]
    post(f"/api/v1/sessions/{ended}/start")
    post(f"/api/v1/sessions/{ended}/orders", {"orders": [{"sku": "DRIED-1KG", "quantity": 2}] * 9})
    post(f"/api/v1/sessions/{ended}/end")
    live = [post("/api/v1/sessions", {**APRICOT_SESSION, "title": f"live {i}"})["id"] for i in (1, 2)]
    for sid in live:
        post(f"/api/v1/sessions/{sid}/start")

    work = tmp_path / "work"
    home = tmp_path / "home"
    work.mkdir()
    home.mkdir()
    writers = [Writer(server.url, token, sid) for sid in live]
    for writer in writers:
        writer.start()
    try:
        wait_for(lambda: all(len(w.acks) >= 20 for w in writers), "orders before the backup")
        began = time.monotonic()
        made = clean(run_livesale("db", "backup", "mid-stream.sqlite", database_url=database_url,
                                  redis_url=redis_url, home=home, cwd=work))
        finished = time.monotonic()
        wait_for(lambda: all(any(sent > finished for sent, _, _ in w.acks[-5:]) for w in writers),
                 "orders after the backup")
    finally:
        for writer in writers:
            writer.stop.set()
        for writer in writers:
            writer.join(timeout=60)
    assert all(w.error is None for w in writers), [w.error for w in writers]
    assert made.stdout.startswith(f"backup written to {work / 'mid-stream.sqlite'} (")
    assert "orders" in made.stdout and "schema" in made.stdout and made.stdout.count("\n") == 1
    server.stop()
    source = table_rows(database_url)

    restored_url = f"sqlite:///{tmp_path / 'restored.sqlite'}"
    done = clean(run_livesale("db", "restore", "mid-stream.sqlite", database_url=restored_url,
                              redis_url=redis_url, home=home, cwd=work))
    assert done.stdout.startswith(f"restored {work / 'mid-stream.sqlite'} (")
    assert "running totals rebuilt for 2 live session(s)" in done.stderr
    restored = table_rows(restored_url)

    # One snapshot of the stream: in it every order acknowledged before the backup began, none sent after it ended.
    ids = {uuid.UUID(str(row[0])) for row in restored["orders"]}
    for writer in writers:
        assert {uuid.UUID(oid) for _, acked, oid in writer.acks if acked < began} <= ids
        assert not {uuid.UUID(oid) for sent, _, oid in writer.acks if sent > finished} & ids
    assert len(restored["orders"]) < len(source["orders"])
    # Restored rows are the source's rows; each live session holds exactly the write transactions up to
    # its restored counter (SQLite's transaction id), the ended session all of it.
    by_id = {row[0]: row for row in source["orders"]}
    assert all(by_id[row[0]] == row for row in restored["orders"])
    seq = {row[0]: row for row in restored["live_sessions"]}
    # Columns in the database's order (migrations added some after the models' order).
    inspector_engine = sa.create_engine(restored_url)
    columns = [c["name"] for c in sa.inspect(inspector_engine).get_columns("live_sessions")]
    order_columns = [c["name"] for c in sa.inspect(inspector_engine).get_columns("orders")]
    inspector_engine.dispose()
    sid_at, txid_at = order_columns.index("session_id"), order_columns.index("txid")
    for row in source["orders"]:
        write_seq = seq[row[sid_at]][columns.index("write_seq")]
        assert (row in restored["orders"]) == (row[txid_at] <= write_seq)
    without_seq = [i for i, name in enumerate(columns) if name != "write_seq"]
    assert [[r[i] for i in without_seq] for r in restored["live_sessions"]] == \
        [[r[i] for i in without_seq] for r in source["live_sessions"]]
    for name in ("users", "api_tokens", "products", "session_results", "alembic_version"):
        assert restored[name] == source[name], name

    # The restore rebuilt the Redis totals (which held the source's larger figures) from the restored orders.
    engine = create_db_engine(restored_url, pool_size=1)
    client = redis.Redis.from_url(redis_url)
    try:
        with engine.connect() as conn:
            sums = {sid: aggregate_session(conn, session_id=sid) for sid in live}
        for sid in live:
            in_redis = TotalsEngine(client).read(session_id=sid)
            assert in_redis is not None and in_redis.figures == sums[sid].without_empty()
    finally:
        client.close()
        engine.dispose()

    # A server on the restored database: its totals are those sums, and ending a session gives them as results.
    second = ServerProcess(database_url=restored_url, redis_url=redis_url, instance=tmp_path / "instance2").start()
    try:
        for sid in live:
            totals = api.get(f"{second.url}/api/v1/sessions/{sid}/totals", timeout=30).json()
            assert (totals["orders"], totals["amount_fen"]) == (sums[sid].orders, sums[sid].amount_fen)
        reply = api.post(f"{second.url}/api/v1/sessions/{live[0]}/end", timeout=30)
        assert reply.status_code == 200, reply.text
        results = api.get(f"{second.url}/api/v1/sessions/{live[0]}/results", timeout=30).json()
        assert (results["orders"], results["amount_fen"]) == (sums[live[0]].orders, sums[live[0]].amount_fen)
        expected = {sid: api.get(f"{second.url}/api/v1/sessions/{sid}/totals", timeout=30).json()
                    for sid in (ended, *live)}
    finally:
        second.stop()
        api.close()

    # A second restore over it is refused without --force: one line, exit code 1, nothing changed.
    again = clean(run_livesale("db", "restore", "mid-stream.sqlite", database_url=restored_url,
                               redis_url=redis_url, home=home, cwd=work), code=1)
    assert again.stderr.startswith("Error: the database is not empty") and "--force" in again.stderr
    assert again.stderr.count("\n") == 1 and again.stdout == ""

    # The export of the restored database sums to what its server answered.
    exported = clean(run_livesale("export", "all.zip", database_url=restored_url, redis_url=redis_url,
                                  home=home, cwd=work))
    assert exported.stdout.startswith(f"export written to {work / 'all.zip'} (")
    tables, manifest, _ = read_zip(work / "all.zip")
    for sid, totals in expected.items():
        paid = [r for r in tables["orders.csv"] if int(r["session_id"]) == sid and r["status"] == "paid"]
        assert len(paid) == totals["orders"], sid
        assert sum(int(r["amount_fen"]) for r in paid) == totals["amount_fen"], sid
        assert sum(int(r["quantity"]) for r in paid) == totals["items"], sid
    assert {r["buyer_region"] for r in tables["orders.csv"]} >= {"'=cmd|' /C calc'!A0", "新疆喀什"}
    assert manifest["files"]["results.csv"]["rows"] == 2

    # Nothing stray: the working folder holds what the commands were asked to write (and the instance
    # folder the restore uses for the embedded Redis's place, if any); HOME is untouched.
    assert {p.name for p in work.iterdir()} <= {"mid-stream.sqlite", "all.zip", "instance"}
    assert list(home.iterdir()) == []
    check = sa.create_engine(restored_url)
    with check.connect() as conn:
        assert conn.execute(sa.text("PRAGMA integrity_check")).scalar() == "ok"
    check.dispose()
