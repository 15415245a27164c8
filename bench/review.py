#!/usr/bin/env python3
"""Review benchmark: server time of the officials' pages over a realistic history.

Seeds, straight into SQL and then ended through the core (so results are
persisted as in production): 200 ended sessions holding 100,000 orders in
all, spread unevenly over them, plus 6 ended sessions of 100,000 orders each
(700,000 orders); then starts the server (``livesale serve``'s gunicorn
command and worker count) and measures, with sequential requests on one
keep-alive connection after a warm-up, the time to answer:

* ``GET /livez`` — the baseline, a trivial endpoint of the same server;
* ``GET /sessions`` — the list (206 sessions, first page, sorted by total);
* ``GET /sessions/<id>`` — the report of a 100,000-order session;
* ``GET /compare?ids=…`` — the 6 large sessions side by side;
* ``GET /api/v1/compare?ids=…`` — the same figures as JSON.

Each figure is the median and p95 of ``--repeat`` requests, measured at the
client on loopback (so it includes the HTTP round trip: an upper bound of
the server's time). Usage::

    .venv/bin/python bench/review.py                      # SQLite, then PostgreSQL
    .venv/bin/python bench/review.py --db sqlite --repeat 50
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import redis
import requests
import sqlalchemy as sa
from common import make_token, pct, prepare_database, seed_orders, start_server  # noqa: E402  (bench/ is on sys.path)

from livesale.core import auth  # noqa: E402
from livesale.core import sessions as session_service  # noqa: E402
from livesale.core.db import create_db_engine, write_transaction  # noqa: E402
from livesale.core.sessions import Store  # noqa: E402
from livesale.core.totals import TotalsEngine  # noqa: E402
from livesale.core.validation import parse_session  # noqa: E402
from livesale.server import default_workers  # noqa: E402

VILLAGES = ["疏附县", "吐鲁番", "阿克苏", "喀什", "和田"]
PRODUCTS = [
    {"sku": "APRICOT-5KG", "name": "鲜杏 5斤", "unit_price_fen": 6980},
    {"sku": "DRIED-1KG", "name": "杏干 1公斤", "unit_price_fen": 5900},
]


def seed(db_url: str, redis_url: str, *, small: int, small_orders: int, large: int, large_orders: int) -> list[int]:
    """The history; returns the ids of the large sessions."""
    engine = create_db_engine(db_url)
    store = Store(db=engine, totals=TotalsEngine(redis.Redis.from_url(redis_url)))
    actor = auth.Actor(user_id=1, name="bench", role="host")
    rng = random.Random(7)
    # Uneven sizes that add up to small_orders.
    weights = [rng.paretovariate(1.5) for _ in range(small)]
    sizes = [int(small_orders * w / sum(weights)) for w in weights]
    sizes[0] += small_orders - sum(sizes)
    large_ids = []
    day0 = datetime(2025, 6, 1, 12, tzinfo=UTC)
    for i, size in enumerate([*sizes, *([large_orders] * large)]):
        is_large = i >= small
        data = parse_session({
            "title": f"{'大场' if is_large else '直播'} {i + 1}", "village": VILLAGES[i % len(VILLAGES)],
            "hosts": ["阿依古丽"], "platform": "douyin", "goal_fen": 6_000_000, "products": PRODUCTS,
        })
        info = session_service.create_session(store, actor=actor, data=data)
        session_service.start_session(store, actor=actor, session_id=info.id)
        started = day0 + timedelta(days=i)
        with write_transaction(engine) as conn:
            conn.execute(sa.update(session_service.t.live_sessions)
                         .where(session_service.t.live_sessions.c.id == info.id).values(started_at=started))
        seed_orders(db_url, info.id, size, started_at=started, minutes=120)
        session_service.end_session(store, actor=actor, session_id=info.id)
        if is_large:
            large_ids.append(info.id)
    if engine.dialect.name == "postgresql":
        with engine.connect() as conn:
            conn.execute(sa.text("ANALYZE"))
            conn.commit()
    engine.dispose()
    return large_ids


def timed(http: requests.Session, url: str, repeat: int) -> list[float]:
    for _ in range(3):
        http.get(url).raise_for_status()
    out = []
    for _ in range(repeat):
        started = time.perf_counter()
        r = http.get(url)
        r.raise_for_status()
        out.append(time.perf_counter() - started)
    return sorted(out)


def login(http: requests.Session, base: str, name: str, password: str) -> None:
    import re

    page = http.get(f"{base}/login").text
    token = re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', page)
    assert token, "no CSRF token on the login page"
    r = http.post(f"{base}/login", data={"name": name, "password": password, "csrf_token": token.group(1)},
                  allow_redirects=False)
    assert r.status_code == 302, r.text[:300]


def bench_database(name: str, db_url: str, opts: argparse.Namespace) -> list[tuple[str, str]]:
    prepare_database(db_url)
    make_token(db_url)  # user 1, "bench", a host: owns every session seeded
    engine = create_db_engine(db_url)
    with write_transaction(engine) as conn:
        auth.create_user(conn, name="official", role="official", password="review the apricots")
    engine.dispose()
    redis.Redis.from_url(opts.redis).flushdb()
    started = time.perf_counter()
    large = seed(db_url, opts.redis, small=opts.small, small_orders=opts.small_orders, large=6,
                 large_orders=opts.large_orders)
    seeded = time.perf_counter() - started
    total_orders = opts.small_orders + 6 * opts.large_orders
    rows = [(f"{name}: seeded", f"{opts.small + 6} ended sessions, {total_orders:,} orders in {seeded:.0f} s")]
    with tempfile.TemporaryDirectory() as tmp:
        port = 5640 + (0 if name == "sqlite" else 1)
        proc = start_server(db_url, opts.redis, Path(tmp), port, workers=opts.workers)
        try:
            base = f"http://127.0.0.1:{port}"
            with requests.Session() as http:
                login(http, base, "official", "review the apricots")
                ids = ",".join(map(str, large))
                figures = {
                    "baseline GET /livez": timed(http, f"{base}/livez", opts.repeat),
                    "list GET /sessions (sorted by total)": timed(http, f"{base}/sessions?sort=total", opts.repeat),
                    "report of a 100,000-order session": timed(http, f"{base}/sessions/{large[0]}", opts.repeat),
                    "compare 6 sessions (page)": timed(http, f"{base}/compare?ids={ids}", opts.repeat),
                    "compare 6 sessions (API)": timed(http, f"{base}/api/v1/compare?ids={ids}", opts.repeat),
                }
        finally:
            proc.terminate()
            proc.wait()
    for label, times in figures.items():
        rows.append((f"{name}: {label}",
                     f"median {statistics.median(times) * 1000:.1f} ms  p95 {pct(times, .95):.1f} ms"))
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--db", choices=["sqlite", "postgres", "both"], default="both")
    parser.add_argument("--repeat", type=int, default=30)
    parser.add_argument("--small", type=int, default=200)
    parser.add_argument("--small-orders", type=int, default=100_000)
    parser.add_argument("--large-orders", type=int, default=100_000)
    parser.add_argument("--workers", type=int, default=default_workers())
    parser.add_argument("--redis", default="redis://127.0.0.1:6379/6")
    parser.add_argument("--postgres", default="postgresql+psycopg://postgres@127.0.0.1:5432/test")
    opts = parser.parse_args()
    rows: list[tuple[str, str]] = []
    with tempfile.TemporaryDirectory() as tmp:
        if opts.db in ("sqlite", "both"):
            rows += bench_database("sqlite", f"sqlite:///{tmp}/review.sqlite", opts)
        if opts.db in ("postgres", "both"):
            rows += bench_database("postgres", opts.postgres, opts)
    width = max(len(r[0]) for r in rows)
    print(f"\nlivesale review benchmark — {os.cpu_count()} cores, {opts.workers} gevent worker(s), "
          f"{opts.repeat} requests per figure")
    for label, value in rows:
        print(f"  {label.ljust(width)}  {value}")


if __name__ == "__main__":
    main()
