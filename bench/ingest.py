"""Ingest and read benchmark: requests per second against a running server, each beside its target.

For each database (SQLite on the embedded defaults, PostgreSQL) this script
starts ``gunicorn -k gevent livesale.wsgi:app`` (the same command and worker
count as ``livesale serve``, with the operations layer on: access log at INFO,
``/metrics``, rate limits, request ids, security headers), then measures in the
same run, with wrk (2 threads, 16 connections, ``--seconds`` each, closed loop):

* baseline: ``GET /livez`` (a trivial endpoint of the same server);
* ``GET /api/v1/sessions/<id>/totals`` with a bearer token;
* ``GET /widget/<key>.json`` (the public widget's totals);
* single orders: ``POST /sessions/<id>/orders`` with a fresh Idempotency-Key each;
* batches of 500 orders (fresh external ids each): orders per second;

and, with aiohttp, the latency of single orders at a fixed offered rate
(default 500 orders/s, open loop), and the rebuild of a 1,000,000-order
session's Redis totals from SQL. Each figure is printed with the workers' CPU
time per request (robust to other load on the machine) and beside its target.

Usage::

    .venv/bin/python bench/ingest.py                # both databases
    .venv/bin/python bench/ingest.py --db sqlite --seconds 5
    .venv/bin/python bench/ingest.py --rebuild-orders 0 --rate 0   # wrk figures only

It needs wrk (``apt-get install wrk``), the test extras and aiohttp (``pip install -e '.[test,bench]'``),
Redis (``--redis``, default a scratch database 14 on 127.0.0.1:6379) and, for
PostgreSQL, ``--postgres`` (default ``postgresql+psycopg://postgres@127.0.0.1:5432/test``;
its public schema is dropped and recreated).
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing as mp
import os
import re
import shutil
import statistics
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

import aiohttp
import redis
import sqlalchemy as sa
from common import (  # noqa: E402  (bench/ is on sys.path as the script's folder)
    make_token,
    pct,
    prepare_database,
    seed_orders,
    start_server,
    worker_cpu_s,
)

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
BATCH = 500

#: Targets of issue 16 on this 2-core machine (2 gevent workers): figure -> (sqlite, postgres).
TARGETS = {
    "totals": (4_500, 4_500),
    "widget": (6_000, 6_000),
    "single": (3_000, 2_400),
    "batch": (80_000, 40_000),
}

# --- wrk (closed loops) --------------------------------------------------------------

#: Per-request headers and bodies for wrk. Each wrk thread numbers its requests; the thread's
#: id and the run's seed keep keys and external ids unique across threads and runs.
WRK_SCRIPT = r"""
local counter = 0
local tid = 0
local threads = {}
function setup(thread)
  tid = tid + 1
  thread:set("tid", tid)
  table.insert(threads, thread)
end
local regions = {"浙江杭州", "上海", "广东深圳", "北京", "江苏苏州", "新疆乌鲁木齐"}
local batch_template = nil
function init(args)
  if kind == "batch" then
    local parts = {}
    for k = 0, BATCH - 1 do
      parts[#parts + 1] = string.format(
        '{"sku":"DRIED-1KG","quantity":%d,"buyer_region":"%s","external_id":"@@-%d"}',
        1 + k % 3, regions[k % 6 + 1], k)
    end
    batch_template = '{"orders":[' .. table.concat(parts, ",") .. ']}'
  end
end
local function headers_with(name, value)
  local h = {}
  for k, v in pairs(wrk.headers) do h[k] = v end  -- wrk.format takes the table instead of wrk.headers
  h[name] = value
  return h
end
function request()
  counter = counter + 1
  local id = SEED .. "-" .. tid .. "-" .. counter
  if kind == "single" then
    local body = string.format('{"sku":"APRICOT-5KG","quantity":%d,"buyer_region":"%s"}',
                               1 + counter % 3, regions[counter % 6 + 1])
    return wrk.format("POST", nil, headers_with("Idempotency-Key", id), body)
  elseif kind == "batch" then
    return wrk.format("POST", nil, nil, (string.gsub(batch_template, "@@", id)))
  end
  return wrk.format("GET")
end
"""


def run_wrk(url: str, *, kind: str, token: str | None, seconds: float, seed: int, opts: argparse.Namespace,
            proc: subprocess.Popen[bytes]) -> dict[str, Any]:
    """One wrk run; requests per second, latency and errors as wrk counts them, and the
    server workers' CPU time per request over the run."""
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as script:
        script.write(f'kind = "{kind}"\nSEED = "{seed}"\nBATCH = {BATCH}\n' + WRK_SCRIPT)
    command = [opts.wrk, "-t", str(opts.threads), "-c", str(opts.connections), "-d", f"{seconds:g}s", "--latency",
               "-s", script.name]
    if token:
        command += ["-H", f"Authorization: Bearer {token}"]
    if kind in ("single", "batch"):
        command += ["-H", "Content-Type: application/json"]
    cpu_before = worker_cpu_s(proc)
    try:
        out = subprocess.run([*command, url], capture_output=True, text=True, check=True).stdout
    finally:
        os.unlink(script.name)
    cpu = worker_cpu_s(proc) - cpu_before
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    total = int(re.search(r"(\d+) requests in", out).group(1))  # type: ignore[union-attr]
    bad = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    errors = int(bad.group(1)) if bad else 0
    socket_errors = re.search(r"Socket errors: (.*)", out)
    latency = dict(re.findall(r"^\s+(50|99)%\s+(\S+)", out, re.M))
    return {
        "rps": rps, "errors": errors, "socket_errors": socket_errors.group(1) if socket_errors else "",
        "p50": latency.get("50", "?"), "p99": latency.get("99", "?"),
        "cpu_us": cpu / max(1, total) * 1e6,
    }


# --- open loop (aiohttp, runs in a client process) ---------------------------------------
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
    return asyncio.run(_open_loop(*args))


def run_open_loop(url: str, token: str, rate: float, seconds: float, seed: int) -> dict[str, Any]:
    """The open loop in a process of its own (its event loop must not share this one's core time)."""
    with mp.get_context("spawn").Pool(1) as pool:
        part = pool.map(_client_process, [(url, token, rate, seconds, seed)])[0]
    part["latencies"].sort()
    return part


# --- the server under test ---------------------------------------------------------


def _verdict(value: float, target: float) -> str:
    return f"target ≥ {target:,.0f}: " + ("met" if value >= target else f"missed by {1 - value / target:.0%}")


def bench_database(name: str, db_url: str, redis_url: str, opts: argparse.Namespace) -> list[tuple[str, str]]:
    import requests

    prepare_database(db_url)
    token = make_token(db_url)
    redis.Redis.from_url(redis_url).flushdb()
    rows: list[tuple[str, str]] = []
    target_of = {kind: pair[0 if name == "sqlite" else 1] for kind, pair in TARGETS.items()}
    seed = time.time_ns() // 1_000_000
    with tempfile.TemporaryDirectory() as tmp:
        instance = Path(tmp)
        port = 5600 + (0 if name == "sqlite" else 1)
        # The operations layer as served: access lines at INFO (to the server's log file), metrics,
        # limits. The widget's per-address limit is raised: here every reader is one address.
        env = {"LIVESALE_LOG_LEVEL": "INFO", "LIVESALE_RATE_LIMIT_WIDGET": "100000000 per minute"}
        proc = start_server(db_url, redis_url, instance, port, workers=opts.workers, env=env)
        try:
            base = f"http://127.0.0.1:{port}"
            auth_h = {"Authorization": f"Bearer {token}"}
            info = requests.post(f"{base}/api/v1/sessions", json=SESSION, headers=auth_h).json()
            sid = info["id"]
            requests.post(f"{base}/api/v1/sessions/{sid}/start", headers=auth_h).raise_for_status()
            orders_url = f"{base}/api/v1/sessions/{sid}/orders"
            # Warm up connections, pools and caches; the totals read below have orders in every region.
            run_wrk(orders_url, kind="single", token=token, seconds=1, seed=seed, opts=opts, proc=proc)

            def figure(label: str, kind: str, url: str, *, per_request: int = 1, auth_token: str | None = None,
                       target: str | None = None) -> None:
                r = run_wrk(url, kind=kind, token=auth_token, seconds=opts.seconds, seed=seed + len(rows),
                            opts=opts, proc=proc)
                unit = "orders/s" if per_request > 1 or kind == "single" else "req/s"
                value = r["rps"] * per_request
                figures[kind] = value
                text = (f"{value:>9,.0f} {unit:<8}  p50 {r['p50']:>7}  p99 {r['p99']:>7}  "
                        f"CPU {r['cpu_us']:5.0f} µs/req  errors {r['errors']}")
                if r["socket_errors"]:
                    text += f" (socket: {r['socket_errors']})"
                if kind != "baseline":
                    text += f"  = {value / per_request / figures['baseline']:.2f} × baseline"
                if target:
                    text += f"  [{_verdict(value, target_of[target])}]"
                rows.append((f"{name}: {label}", text))

            figures: dict[str, float] = {}
            figure("baseline GET /livez", "baseline", f"{base}/livez")
            figure("GET …/totals (token)", "totals", f"{base}/api/v1/sessions/{sid}/totals", auth_token=token,
                   target="totals")
            figure("GET /widget/<key>.json", "widget", f"{base}/widget/{info['widget_key']}.json", target="widget")
            figure("single orders", "single", orders_url, auth_token=token, target="single")
            figure(f"batches of {BATCH}", "batch", orders_url, per_request=BATCH, auth_token=token, target="batch")
            if opts.rate:
                o = run_open_loop(orders_url, token, opts.rate, opts.seconds, seed)
                rows.append((f"{name}: single orders at {opts.rate:.0f}/s offered (open loop)",
                             f"{o['count'] / opts.seconds:>9,.0f} orders/s  p50 {pct(o['latencies'], .5):.1f} ms  "
                             f"p99 {pct(o['latencies'], .99):.1f} ms  errors {o['errors']}"))
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
    parser.add_argument("--seconds", type=float, default=8.0)
    parser.add_argument("--rate", type=float, default=500.0,
                        help="offered orders/s for the open-loop latency figure (0: skip it)")
    parser.add_argument("--threads", type=int, default=2, help="wrk threads")
    parser.add_argument("--connections", type=int, default=16, help="wrk connections")
    parser.add_argument("--wrk", default=shutil.which("wrk") or "wrk")
    parser.add_argument("--workers", type=int, default=default_workers(),
                        help="gunicorn workers (default: livesale serve's, one per core)")
    parser.add_argument("--rebuild-orders", type=int, default=1_000_000)
    parser.add_argument("--redis", default="redis://127.0.0.1:6379/14")
    parser.add_argument("--postgres", default="postgresql+psycopg://postgres@127.0.0.1:5432/test")
    opts = parser.parse_args()
    if not shutil.which(opts.wrk):
        parser.error(f"wrk not found ({opts.wrk}): install it (apt-get install wrk) or pass --wrk PATH")

    rows: list[tuple[str, str]] = []
    with tempfile.TemporaryDirectory() as tmp:
        if opts.db in ("sqlite", "both"):
            rows += bench_database("sqlite", f"sqlite:///{tmp}/bench.sqlite", opts.redis, opts)
        if opts.db in ("postgres", "both"):
            rows += bench_database("postgres", opts.postgres, opts.redis, opts)
    width = max(len(r[0]) for r in rows)
    print(f"\nlivesale ingest benchmark — {os.cpu_count()} cores, {opts.workers} gevent worker(s), wrk "
          f"{opts.threads} threads × {opts.connections} connections, {opts.seconds:g} s per figure")
    for label, value in rows:
        print(f"  {label.ljust(width)}  {value}")


if __name__ == "__main__":
    main()
