#!/usr/bin/env python3
"""Import benchmark: 100,000 order lines of a platform's export into a session, SQLite and PostgreSQL,
CSV and XLSX.

The export is a Douyin order export (the widest of the four: 26 columns, shuffled, ids with tab and
apostrophe prefixes, amounts as ``1,234.50`` / ``¥69.80`` / full-width digits; XLSX with typed date and
number cells), written by ``tests/imports_samples.py`` once per format. Each case runs three times on a
fresh session and prints, in seconds:

* ``read`` — ``parse_export`` alone: reading the file into lines (the baseline from the same run);
* ``import`` — ``import_files`` into an empty session: reading, matching, storing 100,000 platform lines
  and the import's record, in one transaction (what the API and ``livesale import`` do, minus HTTP);
* ``again`` — the same file imported again: every line repeated, nothing stored but the record.

The worst of the three runs is printed beside the median. Usage::

    .venv/bin/python bench/import.py                       # SQLite and PostgreSQL, CSV and XLSX
    .venv/bin/python bench/import.py --db sqlite --lines 20000
    LIVESALE_BENCH_PG=postgresql+psycopg://postgres@127.0.0.1:5432/livesale_bench .venv/bin/python bench/import.py

PostgreSQL's database (``LIVESALE_BENCH_PG``) has its public schema dropped and migrated again.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from common import ROOT, prepare_database  # noqa: E402  (bench/ is on sys.path)

sys.path.insert(0, str(ROOT))

import sqlalchemy as sa  # noqa: E402

from livesale import create_app  # noqa: E402
from livesale.core import auth, validation  # noqa: E402
from livesale.core import sessions as session_service  # noqa: E402
from livesale.core import tables as t  # noqa: E402
from livesale.core.db import write_transaction  # noqa: E402
from livesale.core.imports import parsing, service  # noqa: E402
from livesale.extensions import backend  # noqa: E402
from tests.imports_samples import export_file, sample_lines  # noqa: E402

CN = ZoneInfo("Asia/Shanghai")
START = datetime(2026, 6, 1, 20, 0, tzinfo=CN)
PRODUCTS = [("APPLE-5", "红富士苹果", 6980), ("HONEY-1", "土蜂蜜", 4800), ("RICE-10", "稻花香大米", 123450),
            ("TEA-2", "高山绿茶", 19900)]
PG_DEFAULT = "postgresql+psycopg://postgres@127.0.0.1:5432/livesale_h2"


def new_session(store: service.Store, admin: auth.Actor) -> int:
    """A session that ran 20:00-22:00 on 1 June 2026 (results not needed: the import does not read them)."""
    info = session_service.create_session(store, actor=admin, data=validation.parse_session({
        "title": "bench", "village": "洛川县", "platform": "douyin",
        "products": [{"sku": s, "name": n, "unit_price_fen": p} for s, n, p in PRODUCTS]}))
    with write_transaction(store.db) as conn:
        conn.execute(sa.update(t.live_sessions).where(t.live_sessions.c.id == info.id).values(
            status="ended", started_at=START, ended_at=START + timedelta(hours=2)))
    return info.id


def run_case(store: service.Store, admin: auth.Actor, name: str, content: bytes, lines: int,
             repeat: int) -> dict[str, list[float]]:
    times: dict[str, list[float]] = {"read": [], "import": [], "again": []}
    files = [(name, content)]
    for _ in range(repeat):
        began = time.perf_counter()
        read = parsing.parse_export(files, platform="douyin", timezone="Asia/Shanghai")
        times["read"].append(time.perf_counter() - began)
        assert len(read) == lines
        session_id = new_session(store, admin)
        began = time.perf_counter()
        outcome = service.import_files(store, actor=admin, session_id=session_id, platform="douyin", files=files)
        times["import"].append(time.perf_counter() - began)
        assert outcome.added == lines, outcome.report() | {"skipped": len(outcome.skipped)}
        began = time.perf_counter()
        outcome = service.import_files(store, actor=admin, session_id=session_id, platform="douyin", files=files)
        times["again"].append(time.perf_counter() - began)
        assert outcome.repeated == lines and outcome.added == 0
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--db", choices=("sqlite", "postgresql", "both"), default="both")
    parser.add_argument("--fmt", choices=("csv", "xlsx", "both"), default="both")
    parser.add_argument("--lines", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()

    lines = sample_lines(args.lines, start=START + timedelta(minutes=1), minutes=118)
    formats = ("csv", "xlsx") if args.fmt == "both" else (args.fmt,)
    exports = {}
    for fmt in formats:
        began = time.perf_counter()
        name, content = export_file("douyin", lines, fmt="csv-utf8" if fmt == "csv" else "xlsx")
        exports[fmt] = (name, content)
        print(f"{fmt}: {len(content) / 1e6:.1f} MB, {args.lines:,} lines (written in {time.perf_counter() - began:.1f} s)",
              file=sys.stderr)

    databases = ("sqlite", "postgresql") if args.db == "both" else (args.db,)
    print(f"{'case':<18} {'read (baseline)':>16} {'import':>16} {'again':>16}   median / worst of {args.repeat}, s")
    with tempfile.TemporaryDirectory() as tmp:
        for db in databases:
            url = f"sqlite:///{tmp}/bench.sqlite" if db == "sqlite" else os.environ.get("LIVESALE_BENCH_PG", PG_DEFAULT)
            prepare_database(url)
            app = create_app({"ENV": "testing", "SECRET_KEY": "bench-secret-not-for-production", "DATABASE_URL": url,
                              "REDIS_URL": os.environ.get("LIVESALE_BENCH_REDIS", "redis://127.0.0.1:6379/2"),
                              "INSTANCE_PATH": f"{tmp}/instance-{db}"})
            store = backend.store_of(app)
            with write_transaction(store.db) as conn:
                admin_id = auth.create_user(conn, name="bench-admin", role="admin")
            admin = auth.Actor(user_id=admin_id, name="bench-admin", role="admin")
            for fmt in formats:
                name, content = exports[fmt]
                times = run_case(store, admin, name, content, args.lines, args.repeat)
                cells = [f"{statistics.median(v):7.2f} / {max(v):6.2f}" for v in times.values()]
                print(f"{db + ' ' + fmt:<18} {cells[0]:>16} {cells[1]:>16} {cells[2]:>16}", flush=True)
            backend.close(app)


if __name__ == "__main__":
    main()
