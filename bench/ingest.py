#!/usr/bin/env python3
"""Ingest benchmark: durable orders per second and latency, against a running server.

For each database (SQLite on the embedded defaults, PostgreSQL) this script
starts ``gunicorn -k gevent livesale.wsgi:app`` (the same command as
``livesale serve``), then measures in the same run:

* baseline: ``GET /livez`` (a trivial endpoint of the same server), closed loop;
* single orders: ``POST /sessions/<id>/orders`` with a fresh Idempotency-Key each, closed loop;
* latency at a fixed offered rate (default 500 orders/s, open loop): p50/p99;
* batches of 1,000 orders: orders per second;
* rebuilding the Redis totals of a 1,000,000-order session from SQL.

Figures are printed as a table; ratios are against the baseline of the same
run. Usage::

    .venv/bin/python bench/ingest.py                # both databases
    .venv/bin/python bench/ingest.py --db sqlite --seconds 5
    .venv/bin/python bench/ingest.py --rebuild-orders 0   # skip the 1M rebuild

It needs the test extras and aiohttp (``pip install -e '.[test,bench]'``),
Redis (``--redis``, default a scratch database 14 on 127.0.0.1:6379) and, for
PostgreSQL, ``--postgres`` (default ``postgresql+psycopg://postgres@127.0.0.1:5432/test``;
its public schema is dropped and recreated).
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing as mp
import os
import statistics
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import aiohttp
import redis
import sqlalchemy as sa
from common import make_token, pct, prepare_database, seed_orders, start_server  # noqa: E402  (bench/ is on sys.path as the script's folder)

from livesale.core import auth  # noqa: E402
from livesale.core.db import create_db_engine  # noqa: E402
from livesale.server import default_workers  # noqa: E402

SESSION = {
    "title": "bench",
    "goal_fen": 6_000_000,
    "products": [
        {"sku": "APRICOT-5KG", "name": "鲜杏 5斤", "unit_price_fen": 6980},
        {"sku": "DRIED-1KG", "name": "杏干 1公斤", "unit_price_fen": 5900},
    ],
}
REGIONS = ["浙江杭州", "上海", "广东深圳", "北京", "江苏苏州", "新疆乌鲁木齐"]


# --- load generation (runs in client processes) ----------------------------------

#: A batch of 1,000 orders; ``@@`` becomes a per-request prefix of the external ids. Building
#: the body per request would cost the load generator, on the same two cores, ~2 ms a batch.
BATCH_BODY = (
    '{"orders":['
    + ",".join(
        f'{{"sku":"DRIED-1KG","quantity":{1 + k % 3},"buyer_region":"{REGIONS[k % 6]}","external_id":"@@-{k}"}}'
        for k in range(1000)
    )
    + "]}"
).encode()


async def _closed_loop(url: str, token: str, kind: str, seconds: float, conns: int, seed: int) -> dict[str, Any]:
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
    latencies: list[float] = []
    errors = 0
    count = 0
    deadline = time.perf_counter() + seconds
    connector = aiohttp.TCPConnector(limit=conns)
    async with aiohttp.ClientSession(connector=connector) as http:

        async def worker(w: int) -> None:
            nonlocal errors, count
            i = 0
            while time.perf_counter() < deadline:
                i += 1
                started = time.perf_counter()
                if kind == "baseline":
                    async with http.get(url) as r:
                        await r.read()
                        ok = r.status == 200
                    n = 1
                elif kind == "single":
                    body = f'{{"sku":"APRICOT-5KG","quantity":{1 + i % 3},"buyer_region":"{REGIONS[i % 6]}"}}'
                    h = {**headers, "Idempotency-Key": f"{seed}-{w}-{i}-{uuid.uuid4().hex[:8]}"}
                    async with http.post(url, data=body.encode(), headers=h) as r:
                        await r.read()
                        ok = r.status == 201
                    n = 1
                else:  # batch: the body is built once; each request only gets its own external ids
                    body = BATCH_BODY.replace(b"@@", f"{seed}-{w}-{i}".encode())
                    async with http.post(url, data=body, headers=headers) as r:
                        await r.read()
                        ok = r.status == 201
                    n = 1000
                if ok:
                    latencies.append(time.perf_counter() - started)
                    count += n
                else:
                    errors += 1

        await asyncio.gather(*(worker(w) for w in range(conns)))
    return {"count": count, "errors": errors, "latencies": latencies}


async def _open_loop(url: str, token: str, rate: float, seconds: float, seed: int) -> dict[str, Any]:
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
    latencies: list[float] = []
    errors = 0
    connector = aiohttp.TCPConnector(limit=500)
    async with aiohttp.ClientSession(connector=connector) as http:

        async def one(i: int) -> None:
            nonlocal errors
            body = f'{{"sku":"APRICOT-5KG","quantity":1,"buyer_region":"{REGIONS[i % 6]}"}}'
            started = time.perf_counter()
            async with http.post(url, data=body.encode(), headers={**headers, "Idempotency-Key": f"o{seed}-{i}"}) as r:
                await r.read()
                if r.status == 201:
                    latencies.append(time.perf_counter() - started)
                else:
                    errors += 1

        tasks = []
        start = time.perf_counter()
        total = int(rate * seconds)
        for i in range(total):
            # Requests leave on schedule whatever the server does (open loop).
            delay = start + i / rate - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            tasks.append(asyncio.create_task(one(i)))
        await asyncio.gather(*tasks)
    return {"count": len(latencies), "errors": errors, "latencies": latencies}


def _client_process(args: tuple[Any, ...]) -> dict[str, Any]:
    mode, *rest = args
    if mode == "open":
        return asyncio.run(_open_loop(*rest))
    return asyncio.run(_closed_loop(*rest))


def run_clients(mode: str, processes: int, *args: Any) -> dict[str, Any]:
    with mp.get_context("spawn").Pool(processes) as pool:
        parts = pool.map(_client_process, [(mode, *args[:-1], args[-1] * 100 + p) for p in range(processes)])
    return {
        "count": sum(p["count"] for p in parts),
        "errors": sum(p["errors"] for p in parts),
        "latencies": sorted(x for p in parts for x in p["latencies"]),
    }


# --- the server under test ---------------------------------------------------------


def bench_database(name: str, db_url: str, redis_url: str, opts: argparse.Namespace) -> list[tuple[str, str]]:
    import requests

    prepare_database(db_url)
    token = make_token(db_url)
    redis.Redis.from_url(redis_url).flushdb()
    rows: list[tuple[str, str]] = []
    with tempfile.TemporaryDirectory() as tmp:
        instance = Path(tmp)
        port = 5600 + (0 if name == "sqlite" else 1)
        proc = start_server(db_url, redis_url, instance, port, workers=opts.workers)
        try:
            base = f"http://127.0.0.1:{port}"
            auth_h = {"Authorization": f"Bearer {token}"}
            sid = requests.post(f"{base}/api/v1/sessions", json=SESSION, headers=auth_h).json()["id"]
            requests.post(f"{base}/api/v1/sessions/{sid}/start", headers=auth_h).raise_for_status()
            orders_url = f"{base}/api/v1/sessions/{sid}/orders"
            # Warm up connections, pools and caches.
            run_clients("closed", 1, orders_url, token, "single", 1.0, 8, 1)

            b = run_clients("closed", opts.clients, f"{base}/livez", token, "baseline", opts.seconds, opts.conns, 2)
            s = run_clients("closed", opts.clients, orders_url, token, "single", opts.seconds, opts.conns, 3)
            o = run_clients("open", 1, orders_url, token, opts.rate, opts.seconds, 4)
            bt = run_clients("closed", 1, orders_url, token, "batch", opts.seconds, 2 * opts.workers, 5)
            base_rps = b["count"] / opts.seconds
            single_rps = s["count"] / opts.seconds
            rows += [
                (f"{name}: baseline GET /livez", f"{base_rps:,.0f} req/s  p50 {pct(b['latencies'], .5):.1f} ms  p99 {pct(b['latencies'], .99):.1f} ms"),
                (f"{name}: single-order POST (closed loop, {opts.clients}x{opts.conns} conns)",
                 f"{single_rps:,.0f} orders/s  p50 {pct(s['latencies'], .5):.1f} ms  p99 {pct(s['latencies'], .99):.1f} ms  "
                 f"= {single_rps / base_rps:.2f} x baseline  errors {s['errors']}"),
                (f"{name}: single-order POST at {opts.rate:.0f}/s offered (open loop)",
                 f"{o['count'] / opts.seconds:,.0f} orders/s  p50 {pct(o['latencies'], .5):.1f} ms  p99 {pct(o['latencies'], .99):.1f} ms  errors {o['errors']}"),
                (f"{name}: batches of 1,000", f"{bt['count'] / opts.seconds:,.0f} orders/s  p50 {pct(bt['latencies'], .5):.0f} ms per batch  errors {bt['errors']}"),
            ]
            totals = requests.get(f"{base}/api/v1/sessions/{sid}/totals", headers=auth_h).json()
            rows.append((f"{name}: check", f"{totals['orders']:,} orders in totals, version {totals['version']}"))
        finally:
            proc.terminate()
            proc.wait()

    if opts.rebuild_orders:
        rows.append((f"{name}: rebuild {opts.rebuild_orders:,} orders", bench_rebuild(db_url, redis_url, opts.rebuild_orders)))
    return rows


def bench_rebuild(db_url: str, redis_url: str, count: int) -> str:
    from livesale.core import sessions as session_service
    from livesale.core.sessions import Store
    from livesale.core.totals import TotalsEngine

    engine = create_db_engine(db_url)
    store = Store(db=engine, totals=TotalsEngine(redis.Redis.from_url(redis_url)))
    actor = auth.Actor(user_id=1, name="bench", role="host")
    from livesale.core.validation import parse_session

    info = session_service.create_session(store, actor=actor, data=parse_session(SESSION))
    session_service.start_session(store, actor=actor, session_id=info.id)
    started = time.perf_counter()
    seed_orders(db_url, info.id, count)
    seeded = time.perf_counter() - started
    if engine.dialect.name == "postgresql":
        with engine.connect() as conn:
            conn.execute(sa.text("ANALYZE orders"))
            conn.commit()
    times = []
    for _ in range(3):
        started = time.perf_counter()
        live = session_service.rebuild_totals(store, session_id=info.id, force=True)
        times.append(time.perf_counter() - started)
    assert live.figures.orders == count, live.figures.orders
    engine.dispose()
    return f"{statistics.median(times):.2f} s (median of 3; seeding took {seeded:.0f} s)"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--db", choices=["sqlite", "postgres", "both"], default="both")
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--rate", type=float, default=500.0, help="offered orders/s for the latency figure")
    parser.add_argument("--clients", type=int, default=1, help="client processes for closed loops")
    parser.add_argument("--conns", type=int, default=32, help="connections per client process")
    parser.add_argument("--workers", type=int, default=default_workers(),
                        help="gunicorn workers (default: livesale serve's, one per core)")
    parser.add_argument("--rebuild-orders", type=int, default=1_000_000)
    parser.add_argument("--redis", default="redis://127.0.0.1:6379/14")
    parser.add_argument("--postgres", default="postgresql+psycopg://postgres@127.0.0.1:5432/test")
    opts = parser.parse_args()

    rows: list[tuple[str, str]] = []
    with tempfile.TemporaryDirectory() as tmp:
        if opts.db in ("sqlite", "both"):
            rows += bench_database("sqlite", f"sqlite:///{tmp}/bench.sqlite", opts.redis, opts)
        if opts.db in ("postgres", "both"):
            rows += bench_database("postgres", opts.postgres, opts.redis, opts)
    width = max(len(r[0]) for r in rows)
    print(f"\nlivesale ingest benchmark — {os.cpu_count()} cores, {opts.workers} gevent worker(s), {opts.seconds:.0f} s per figure")
    for label, value in rows:
        print(f"  {label.ljust(width)}  {value}")


if __name__ == "__main__":
    main()
