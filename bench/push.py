#!/usr/bin/env python3
"""Push benchmark: many Socket.IO viewers of one session while orders come in.

Starts ``gunicorn -k gevent livesale.wsgi:app`` (``--workers``, default one per
core as ``livesale serve``; several share pushes through Redis) on an SQLite
file in a temporary directory and a scratch Redis database, creates a host, a
token and a live session, then:

* joins ``--viewers`` Socket.IO viewers over WebSocket, many per process, in
  ``--procs`` client processes, to the session's room. By default each viewer
  speaks Engine.IO 4 / Socket.IO 5 itself over an aiohttp WebSocket (open,
  namespace connect with the token, ``join``, pong; see ``LightViewer``), as the
  pages' socket.io-client does; ``--no-light`` uses python-socketio's
  ``AsyncClient``, which costs the load generator so much CPU per message that
  on two shared cores it, not the server, sets the latency;
* posts orders at ``--rate`` per second for ``--seconds`` (open loop, aiohttp);
* prints the latency from an order's acknowledgment (the poster got its 201) to
  each viewer receiving a ``totals`` event whose ``orders`` count includes it,
  p50/p99 over every (viewer, order) pair; the server workers' CPU (from
  ``/proc/<pid>/stat``) while posting, and their RSS per viewer (RSS after the
  joins minus RSS before, divided by the viewers).

"Includes it": a ``totals`` with ``orders >= n`` where ``n`` is the number of
orders whose POST had been *sent* when this one was acknowledged. Any such event
counts this order (it cannot have been computed without it), so the figure is
an upper bound; it errs by at most the requests in flight (~1 at 200/s).

``--compare-nginx`` measures the same load twice in one run: (a) one process
(one gevent worker), clients connected directly, and (b) two processes (one
worker each, ``--compare-processes``) behind nginx, started by
``livesale.cluster`` as ``livesale cluster --nginx`` starts them (Debian's
nginx, the generated config), posters and viewers going through nginx. nginx's
``ip_hash`` would put every bench client (all on 127.0.0.1) on one process, so
the viewers connect from loopback addresses (127.0.X.1) that it spreads evenly;
the connections each process holds are printed. It prints both rows and the
ratio (b) / (a) of each figure; (b)'s CPU and RSS include nginx's workers.

``--max-viewers`` adds viewers in steps (``--steps 1000,2000,4000``) to the same
server and, at each step, posts ``--step-rate`` orders/s for ``--step-seconds``
and reports whether the step held: every viewer joined and every viewer got the
final totals. With ``--workers 1`` and a step of ``--target-viewers`` or more
it also prints the issue's target against the figures: that many viewers on
one process at ≤ ``--target-kb`` KB of RSS each, every one with the exact
final totals (``--steps 2000,8000 --workers 1``).

Usage::

    .venv/bin/python bench/push.py --viewers 1000 --rate 200 --seconds 20
    .venv/bin/python bench/push.py --viewers 1000 --workers 1        # one process
    .venv/bin/python bench/push.py --max-viewers --steps 1000,2000,4000 --workers 1
    .venv/bin/python bench/push.py --max-viewers --steps 2000,8000 --workers 1   # the 8,000-viewer target
    .venv/bin/python bench/push.py --compare-nginx --viewers 1000 --rate 200 --seconds 15

Needs the test and bench extras (python-socketio[client], aiohttp) and Redis
(``--redis``, default the scratch database 7 on 127.0.0.1:6379, flushed).
"""

from __future__ import annotations

import argparse
import asyncio
import bisect
import multiprocessing as mp
import os
import resource
import subprocess
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

from common import make_token, pct, start_cluster, start_server  # noqa: E402  (bench/ is on sys.path)

from livesale.server import default_workers  # noqa: E402

SESSION = {
    "title": "push bench",
    "goal_fen": 6_000_000,
    "products": [{"sku": "APRICOT-5KG", "name": "鲜杏 5斤", "unit_price_fen": 6980}],
}
REGIONS = ["浙江杭州", "上海", "广东深圳", "北京", "江苏苏州", "新疆乌鲁木齐"]
CLK_TCK = os.sysconf("SC_CLK_TCK")


def raise_nofile() -> int:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = hard if hard != resource.RLIM_INFINITY else 1 << 16
    resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))
    return want


# --- viewers (client processes) ---------------------------------------------------


class Viewers:
    """The viewers of one client process: per viewer, the (arrival, orders) of each ``totals``."""

    def __init__(self) -> None:
        self.clients: list[Any] = []
        self.received: list[list[tuple[float, int]]] = []
        self.failed = 0
        self.reasons: dict[str, int] = {}

    async def add(
        self, n: int, url: str, token: str, session_id: int, light: bool = False, concurrency: int = 50,
        sources: list[str] | None = None,
    ) -> dict[str, Any]:
        """``sources``: local addresses the light viewers connect from, in turn (viewers from
        many addresses, as nginx's ``ip_hash`` sees real ones)."""
        import socketio

        gate = asyncio.Semaphore(concurrency)
        started = time.monotonic()
        before, failed_before = len(self.clients), self.failed

        async def one(k: int) -> None:
            if light:
                return await one_light(sources[k % len(sources)] if sources else None)
            got: list[tuple[float, int]] = []
            first = asyncio.get_running_loop().create_future()
            client = socketio.AsyncClient(reconnection=False)

            def on_totals(data: dict[str, Any]) -> None:
                got.append((time.monotonic(), data["orders"]))
                if not first.done():
                    first.set_result(None)

            errors: list[Any] = []
            client.on("totals", on_totals, namespace="/live")
            client.on("error", errors.append, namespace="/live")
            async with gate:
                try:
                    await client.connect(url, namespaces=["/live"], transports=["websocket"],
                                         auth={"token": token}, wait_timeout=20)
                    await client.emit("join", {"session": session_id}, namespace="/live")
                    await asyncio.wait_for(first, 20)
                except Exception as exc:  # noqa: BLE001 - counted, not fatal: the step did not hold
                    self.failed += 1
                    reason = f"{type(exc).__name__}: {exc} connected={client.connected} errors={errors}"[:200]
                    self.reasons[reason] = self.reasons.get(reason, 0) + 1
                    try:
                        await client.disconnect()
                    except Exception:  # noqa: BLE001
                        pass
                    return
            self.clients.append(client)
            self.received.append(got)

        async def one_light(source: str | None) -> None:
            viewer = LightViewer()
            async with gate:
                try:
                    await viewer.connect(url, token, session_id, source=source)
                except Exception as exc:  # noqa: BLE001 - counted, not fatal: the step did not hold
                    self.failed += 1
                    reason = f"{type(exc).__name__}: {exc}"[:200]
                    self.reasons[reason] = self.reasons.get(reason, 0) + 1
                    await viewer.disconnect()
                    return
            self.clients.append(viewer)
            self.received.append(viewer.got)

        await asyncio.gather(*(one(k) for k in range(n)))
        return {"joined": len(self.clients) - before, "failed": self.failed - failed_before, "reasons": self.reasons,
                "seconds": time.monotonic() - started}

    def mark(self) -> int:
        """Forget what came so far (the next measurement starts here); returns the viewers."""
        for got in self.received:
            got.clear()
        return len(self.received)

    async def wait_final(self, count: int, timeout: float) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if all(got and got[-1][1] >= count for got in self.received):
                break
            await asyncio.sleep(0.1)
        got_all = sum(1 for got in self.received if got and got[-1][1] >= count)
        return {"viewers": len(self.received), "got_final": got_all,
                "connected": sum(1 for c in self.clients if c.connected)}

    def latencies(self, thresholds: list[int], acks: list[float], sample: int) -> list[float]:
        """Per viewer (every ``sample``-th one) per order: first arrival with orders >= threshold, minus ack."""
        out: list[float] = []
        for got in self.received[::sample]:
            counts = [c for _, c in got]
            for need, ack in zip(thresholds, acks, strict=True):
                k = bisect.bisect_left(counts, need)
                if k < len(got):
                    out.append(max(0.0, got[k][0] - ack))
                else:
                    out.append(float("inf"))  # never arrived
        return out

    async def close(self) -> None:
        await asyncio.gather(*(c.disconnect() for c in self.clients), return_exceptions=True)


class LightViewer:
    """A viewer speaking Engine.IO 4 / Socket.IO 5 over one WebSocket with aiohttp, as the browser does.

    python-socketio's client costs the load generator about as much CPU per
    message as the server spends sending it; on a two-core machine where the
    viewers and the server share the cores, a thousand of them measure the
    clients more than the server. This one does the protocol's few steps
    (open, namespace connect with the token, join, answer pings) and decodes
    only ``totals`` events (aiohttp reads frames in C).
    """

    def __init__(self) -> None:
        self.got: list[tuple[float, int]] = []
        self.ws: Any = None
        self.http: Any = None
        self.reader: asyncio.Task[None] | None = None

    @property
    def connected(self) -> bool:
        return self.ws is not None and not self.ws.closed

    async def connect(self, url: str, token: str, session_id: int, source: str | None = None) -> None:
        import aiohttp

        from livesale import json_codec as orjson  # orjson where installed, else the standard json

        self.http = aiohttp.ClientSession(connector=aiohttp.TCPConnector(local_addr=(source, 0)) if source else None)
        ws_url = url.replace("http", "ws", 1) + "/socket.io/?EIO=4&transport=websocket"
        self.ws = await self.http.ws_connect(ws_url, timeout=aiohttp.ClientWSTimeout(ws_close=5), autoping=True,
                                             max_msg_size=0)
        opened = await asyncio.wait_for(self.ws.receive_str(), 20)
        assert opened.startswith("0{"), opened
        await self.ws.send_str("40/live," + orjson.dumps({"token": token}).decode())
        connected = await asyncio.wait_for(self.ws.receive_str(), 20)
        if not connected.startswith("40/live,"):
            raise RuntimeError(f"namespace refused: {connected[:120]}")
        await self.ws.send_str('42/live,["join",' + orjson.dumps({"session": session_id}).decode() + "]")
        first = asyncio.get_running_loop().create_future()
        self.reader = asyncio.create_task(self._read(first))
        await asyncio.wait_for(first, 20)

    async def _read(self, first: asyncio.Future[None]) -> None:
        from livesale import json_codec as orjson  # orjson where installed, else the standard json

        ws, got = self.ws, self.got
        async for msg in ws:
            data = msg.data
            if type(data) is not str:
                continue
            if data == "2":  # Engine.IO ping
                await ws.send_str("3")
            elif data.startswith('42/live,["totals",'):
                got.append((time.monotonic(), orjson.loads(data[8:])[1]["orders"]))
                if not first.done():
                    first.set_result(None)
            elif data.startswith('42/live,["error",') and not first.done():
                first.set_exception(RuntimeError(data[:200]))

    async def disconnect(self) -> None:
        if self.reader is not None:
            self.reader.cancel()
        if self.ws is not None:
            await self.ws.close()
        if self.http is not None:
            await self.http.close()


def _viewer_process(conn: Connection) -> None:
    raise_nofile()

    async def main() -> None:
        viewers = Viewers()
        loop = asyncio.get_running_loop()
        while True:
            cmd, *args = await loop.run_in_executor(None, conn.recv)
            if cmd == "add":
                conn.send(await viewers.add(*args))
            elif cmd == "mark":
                conn.send(viewers.mark())
            elif cmd == "wait_final":
                conn.send(await viewers.wait_final(*args))
            elif cmd == "latencies":
                conn.send(viewers.latencies(*args))
            elif cmd == "stop":
                await viewers.close()
                conn.send("bye")
                return

    asyncio.run(main())


class ViewerPool:
    def __init__(self, procs: int):
        ctx = mp.get_context("spawn")
        self.conns: list[Connection] = []
        self.procs: list[Any] = []
        for _ in range(procs):
            parent, child = ctx.Pipe()
            p = ctx.Process(target=_viewer_process, args=(child,), daemon=True)
            p.start()
            child.close()
            self.conns.append(parent)
            self.procs.append(p)

    def call(self, per_proc: list[tuple[Any, ...]], timeout: float = 300) -> list[Any]:
        for conn, msg in zip(self.conns, per_proc, strict=True):
            conn.send(msg)
        out = []
        for conn in self.conns:
            if not conn.poll(timeout):
                raise TimeoutError(f"client process did not answer {per_proc[0][0]!r} in {timeout} s")
            out.append(conn.recv())
        return out

    def all(self, *msg: Any, timeout: float = 300) -> list[Any]:
        return self.call([msg] * len(self.conns), timeout)

    def close(self) -> None:
        try:
            self.all("stop", timeout=60)
        except (OSError, EOFError, TimeoutError):
            pass
        for p in self.procs:
            p.join(10)
            if p.is_alive():
                p.kill()
                p.join()


# --- orders (the main process) ------------------------------------------------------


async def post_orders(url: str, token: str, rate: float, seconds: float, seed: int) -> dict[str, Any]:
    """Open loop at ``rate``/s; per acknowledged order: (ack time, orders sent when it was acked)."""
    import aiohttp

    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
    sent = 0
    acked: list[tuple[float, int]] = []
    errors = 0
    kinds: dict[str, int] = {}  # what the errors were: a status, or the exception
    http_latency: list[float] = []
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=200)) as http:

        async def one(i: int) -> None:
            nonlocal sent, errors
            kind = ""
            body = f'{{"sku":"APRICOT-5KG","quantity":1,"buyer_region":"{REGIONS[i % 6]}"}}'
            sent += 1
            t0 = time.monotonic()
            try:
                async with http.post(url, data=body.encode(),
                                     headers={**headers, "Idempotency-Key": f"p{seed}-{i}"}) as r:
                    await r.read()
                    ok = r.status == 201
                    kind = str(r.status)
            except aiohttp.ClientError as exc:
                ok = False
                kind = type(exc).__name__
            now = time.monotonic()
            if ok:
                acked.append((now, sent))
                http_latency.append(now - t0)
            else:
                errors += 1
                kinds[kind] = kinds.get(kind, 0) + 1

        tasks = []
        start = time.monotonic()
        for i in range(int(rate * seconds)):
            delay = start + i / rate - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            tasks.append(asyncio.create_task(one(i)))
        await asyncio.gather(*tasks)
    return {"acked": acked, "errors": errors, "kinds": kinds, "sent": sent, "http": sorted(http_latency)}


# --- the server under test ----------------------------------------------------------


def prepare(db_url: str, redis_url: str) -> str:
    """Migrate, create the bench user, empty the scratch Redis database; returns the token."""
    import redis

    from livesale.core import schema

    schema.upgrade(db_url)
    token = make_token(db_url)
    r = redis.Redis.from_url(redis_url)
    r.flushdb()
    r.close()
    return token


def worker_pids(master: int, count: int) -> list[int]:
    for _ in range(100):
        children = Path(f"/proc/{master}/task/{master}/children").read_text().split()
        if len(children) >= count:
            return [int(c) for c in children]
        time.sleep(0.1)
    raise RuntimeError("gunicorn workers did not start")


def cpu_seconds(pids: list[int]) -> float:
    """CPU time (user + system) of the workers, together."""
    total = 0
    for pid in pids:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        total += int(fields[11]) + int(fields[12])
    return total / CLK_TCK


def rss_kb(pids: list[int]) -> int:
    """Resident memory of the workers, together."""
    total = 0
    for pid in pids:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                total += int(line.split()[1])
    return total


def split(n: int, parts: int) -> list[int]:
    return [n // parts + (1 if i < n % parts else 0) for i in range(parts)]


def children_of(pid: int) -> list[int]:
    return [int(c) for c in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]


def established(port: int) -> int:
    """Established TCP connections to local ``port``: what one app process holds."""
    count = 0
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            if fields[3] == "01" and int(fields[1].rsplit(":", 1)[1], 16) == port:
                count += 1
    return count


def ip_hash_peer(address: str, peers: int) -> int:
    """The upstream nginx's ``ip_hash`` picks for an IPv4 client (equal weights, every peer up):
    a hash of the address's first three octets (ngx_http_upstream_ip_hash_module.c)."""
    h = 89
    for octet in address.split(".")[:3]:
        h = (h * 113 + int(octet)) % 6271
    return h % peers


def balanced_sources(peers: int, per_peer: int = 4) -> list[str]:
    """Loopback addresses (127.0.X.1) that ``ip_hash`` spreads evenly over ``peers``, in turn.

    Every bench client is on 127.0.0.1, which ``ip_hash`` would send to one
    process; real viewers come from many networks. Linux answers on all of
    127.0.0.0/8, so the viewers connect from these instead."""
    by_peer: list[list[str]] = [[] for _ in range(peers)]
    for x in range(1, 256):
        address = f"127.0.{x}.1"
        by_peer[ip_hash_peer(address, peers)].append(address)
        if min(len(b) for b in by_peer) >= per_peer:
            break
    return [by_peer[k % peers][k // peers] for k in range(peers * per_peer)]


# --- the setups under test ------------------------------------------------------------


@dataclass
class Target:
    """A started setup: where clients go, and the processes whose CPU and memory count."""

    label: str
    url: str
    app_ports: list[int]
    workers: list[int]  # gunicorn workers (the app)
    proxy: list[int]  # nginx workers
    sources: list[str] | None
    close: Callable[[], object]


def direct_target(opts: argparse.Namespace, tmp: Path, *, workers: int, connections: int) -> tuple[Target, str]:
    """``livesale serve``'s gunicorn on ``--port``: ``workers`` gevent workers, clients connect directly."""
    db_url = f"sqlite:///{tmp}/bench.sqlite"
    token = prepare(db_url, opts.redis)
    proc = start_server(db_url, opts.redis, tmp, opts.port, workers=workers, connections=connections)

    def close() -> None:
        proc.terminate()
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()

    label = "one process" if workers == 1 else f"one process, {workers} workers"
    return Target(label=label, url=f"http://127.0.0.1:{opts.port}", app_ports=[opts.port],
                  workers=worker_pids(proc.pid, workers), proxy=[], sources=None, close=close), token


def nginx_target(opts: argparse.Namespace, tmp: Path, *, processes: int, connections: int) -> tuple[Target, str]:
    """``livesale cluster --processes N --nginx``: N processes (one worker each) on ``--port``+1…,
    nginx on ``--port``+N+1; viewers connect through nginx from addresses ``ip_hash`` spreads evenly."""
    db_url = f"sqlite:///{tmp}/bench.sqlite"
    token = prepare(db_url, opts.redis)
    cluster = start_cluster(db_url, opts.redis, tmp, base_port=opts.port + 1, nginx_port=opts.port + processes + 1,
                            processes=processes, connections=connections)
    workers = [w for app in cluster.apps for w in worker_pids(app.pid, 1)]
    return Target(label=f"{processes} processes + nginx", url=cluster.url, app_ports=[a.port for a in cluster.apps],
                  workers=workers, proxy=children_of(cluster.nginx.pid), sources=balanced_sources(processes),
                  close=cluster.stop), token


# --- runs -----------------------------------------------------------------------------


class Bench:
    def __init__(self, opts: argparse.Namespace, target: Target, token: str):
        import requests

        self.opts = opts
        self.target = target
        self.token = token
        self.workers = target.workers
        self.base = target.url
        auth_h = {"Authorization": f"Bearer {self.token}"}
        self.sid = requests.post(f"{self.base}/api/v1/sessions", json=SESSION, headers=auth_h).json()["id"]
        requests.post(f"{self.base}/api/v1/sessions/{self.sid}/start", headers=auth_h).raise_for_status()
        self.orders_url = f"{self.base}/api/v1/sessions/{self.sid}/orders"
        self.posted = 0
        self.pool = ViewerPool(opts.procs)
        self.viewers = 0

    def add_viewers(self, n: int) -> dict[str, Any]:
        parts = self.pool.call(
            [("add", k, self.base, self.token, self.sid, self.opts.light, 50, self.target.sources)
             for k in split(n, self.opts.procs)]
        )
        joined = sum(p["joined"] for p in parts)
        self.viewers += joined
        reasons: dict[str, int] = {}
        for p in parts:
            for k, v in p["reasons"].items():
                reasons[k] = reasons.get(k, 0) + v
        return {"joined": joined, "failed": sum(p["failed"] for p in parts), "reasons": reasons,
                "seconds": max(p["seconds"] for p in parts)}

    def cpu(self) -> tuple[float, float]:
        """CPU seconds of the app's workers and of nginx's."""
        return cpu_seconds(self.workers), cpu_seconds(self.target.proxy)

    def rss(self) -> tuple[int, int]:
        return rss_kb(self.workers), rss_kb(self.target.proxy)

    def orders(self, rate: float, seconds: float, *, latency: bool) -> dict[str, Any]:
        self.pool.all("mark")
        (cpu0, proxy0), t0 = self.cpu(), time.monotonic()
        posted = asyncio.run(post_orders(self.orders_url, self.token, rate, seconds, seed=self.posted))
        self.posted += len(posted["acked"])
        final = self.pool.all("wait_final", self.posted, 10.0, timeout=60)
        (cpu1, proxy1), elapsed = self.cpu(), time.monotonic() - t0
        out = {
            "acked": len(posted["acked"]), "errors": posted["errors"], "error_kinds": posted["kinds"],
            "cpu": (cpu1 - cpu0) / elapsed, "proxy_cpu": (proxy1 - proxy0) / elapsed,
            "got_final": sum(f["got_final"] for f in final), "connected": sum(f["connected"] for f in final),
            "http_p50": pct(posted["http"], 0.5), "http_p99": pct(posted["http"], 0.99),
        }
        if latency:
            # Thresholds count every order the bench posted (earlier runs included).
            base = self.posted - len(posted["acked"])
            acks = [a for a, _ in posted["acked"]]
            thresholds = [base + n for _, n in posted["acked"]]
            lat = sorted(x for part in self.pool.all("latencies", thresholds, acks, self.opts.sample)
                         for x in part)
            out.update(pairs=len(lat), missing=sum(1 for x in lat if x == float("inf")),
                       p50=pct(lat, 0.5), p90=pct(lat, 0.9), p99=pct(lat, 0.99), max=pct(lat, 1.0))
        return out

    def close(self) -> None:
        self.pool.close()
        self.target.close()


def measure(opts: argparse.Namespace, target: Target, token: str) -> tuple[list[tuple[str, str]], dict[str, float]]:
    """Join ``--viewers``, then post at ``--rate`` for ``--seconds``: the rows to print and the figures."""
    bench = Bench(opts, target, token)
    rows: list[tuple[str, str]] = []
    try:
        bench.orders(20, 1.0, latency=False)  # warm up pools and the ticker
        time.sleep(1)
        (rss0, proxy_rss0) = bench.rss()
        j = bench.add_viewers(opts.viewers)
        time.sleep(2)
        (rss1, proxy_rss1) = bench.rss()
        per_process = [established(port) for port in target.app_ports]
        rows.append(("viewers joined", f"{j['joined']:,} of {opts.viewers:,} in {j['seconds']:.1f} s, failed {j['failed']} {j['reasons'] or ''}"))
        joined = max(1, j["joined"])
        per = (rss1 - rss0) / joined
        proxy_per = (proxy_rss1 - proxy_rss0) / joined
        rows.append(("server RSS", f"{rss0 / 1024:.0f} MB before joins, {rss1 / 1024:.0f} MB after: "
                                   f"{per:.0f} KB per viewer"
                     + (f"; nginx {proxy_rss1 / 1024:.0f} MB, {proxy_per:.0f} KB per viewer" if target.proxy else "")))
        if len(per_process) > 1:
            rows.append(("connections per process", " / ".join(f"{n:,}" for n in per_process)))
        (cpu0, proxy0), t0 = bench.cpu(), time.monotonic()
        time.sleep(3)
        (cpu1, proxy1), elapsed = bench.cpu(), time.monotonic() - t0
        idle, proxy_idle = (cpu1 - cpu0) / elapsed, (proxy1 - proxy0) / elapsed
        rows.append(("server CPU, viewers idle", f"{idle * 100:.0f} % of a core"
                     + (f" (+ nginx {proxy_idle * 100:.0f} %)" if target.proxy else "")))
        r = bench.orders(opts.rate, opts.seconds, latency=True)
        rows += [
            (f"orders posted at {opts.rate:.0f}/s for {opts.seconds:.0f} s",
             f"{r['acked']:,} acknowledged, errors {r['errors']} {r['error_kinds'] or ''}; POST p50 {r['http_p50']:.1f} ms "
             f"p99 {r['http_p99']:.1f} ms"),
            ("ack -> viewer got totals including it",
             f"p50 {r['p50']:.0f} ms  p90 {r['p90']:.0f} ms  p99 {r['p99']:.0f} ms  max {r['max']:.0f} ms  "
             f"({r['pairs']:,} viewer x order pairs, never arrived {r['missing']})"),
            ("viewers with the exact final totals", f"{r['got_final']:,} of {bench.viewers:,} (connected {r['connected']:,})"),
            ("server CPU while posting", f"{r['cpu'] * 100:.0f} % of a core (workers {bench.workers})"
             + (f" + nginx {r['proxy_cpu'] * 100:.0f} % (workers {target.proxy})" if target.proxy else "")),
        ]
        figures = {
            "joined": j["joined"], "held": r["got_final"], "missing": r["missing"], "errors": r["errors"],
            "p50": r["p50"], "p90": r["p90"], "p99": r["p99"], "http_p99": r["http_p99"],
            "cpu": r["cpu"] + r["proxy_cpu"], "app_cpu": r["cpu"], "proxy_cpu": r["proxy_cpu"],
            "idle_cpu": idle + proxy_idle, "rss_per_viewer": per + proxy_per, "app_rss_per_viewer": per,
            "proxy_rss_per_viewer": proxy_per,
        }
    finally:
        bench.close()
    return rows, figures


def run_latency(opts: argparse.Namespace, tmp: Path) -> list[tuple[str, str]]:
    target, token = direct_target(opts, tmp, workers=opts.workers, connections=opts.viewers + 200)
    return measure(opts, target, token)[0]


COMPARED = [
    # (label, key, unit, decimals)
    ("viewers held (joined, got the exact final totals)", "held", "", 0),
    ("ack -> viewer p50", "p50", " ms", 0),
    ("ack -> viewer p90", "p90", " ms", 0),
    ("ack -> viewer p99", "p99", " ms", 0),
    ("POST p99 (the poster's own latency)", "http_p99", " ms", 1),
    ("server CPU while posting, % of a core", "cpu", " %", 0),
    ("  of which the app processes", "app_cpu", " %", 0),
    ("  of which nginx", "proxy_cpu", " %", 0),
    ("server CPU, viewers idle", "idle_cpu", " %", 0),
    ("server RSS per viewer", "rss_per_viewer", " KB", 0),
    ("  of which the app processes", "app_rss_per_viewer", " KB", 0),
    ("  of which nginx", "proxy_rss_per_viewer", " KB", 0),
]
PERCENT = {"cpu", "app_cpu", "proxy_cpu", "idle_cpu"}


def run_compare(opts: argparse.Namespace, tmp: Path) -> list[tuple[str, str]]:
    """(a) one process, clients direct; (b) ``--compare-processes`` processes (one worker each) behind
    nginx, started by ``livesale.cluster``; the same viewers and rate; both rows and the ratio b / a."""
    results: list[tuple[Target, list[tuple[str, str]], dict[str, float]]] = []
    for name, make in (
        ("one", lambda d: direct_target(opts, d, workers=1, connections=opts.viewers + 200)),
        ("two", lambda d: nginx_target(opts, d, processes=opts.compare_processes, connections=opts.viewers + 200)),
    ):
        folder = tmp / name
        folder.mkdir()
        target, token = make(folder)
        print(f"measuring {target.label} at {target.url} …", flush=True)
        rows, figures = measure(opts, target, token)
        results.append((target, rows, figures))
        time.sleep(2)  # let the machine settle between the two

    out: list[tuple[str, str]] = []
    for target, rows, _ in results:
        out.append((f"[{target.label}]", ""))
        out += [(f"  {label}", value) for label, value in rows]
    (one, _, a), (two, _, b) = results
    out.append(("", ""))
    out.append(("figure", f"{one.label:>14}  {two.label:>20}  {'ratio':>6}"))
    for label, key, unit, decimals in COMPARED:
        scale = 100 if key in PERCENT else 1
        va, vb = a[key] * scale, b[key] * scale
        ratio = f"{vb / va:.2f}" if va else "—"
        out.append((label, f"{va:>12.{decimals}f}{unit:<3} {vb:>18.{decimals}f}{unit:<3} {ratio:>7}"))
    return out


def run_max(opts: argparse.Namespace, tmp: Path) -> list[tuple[str, str]]:
    steps = [int(s) for s in opts.steps.split(",")]
    setup, token = direct_target(opts, tmp, workers=opts.workers, connections=steps[-1] + 200)
    bench = Bench(opts, setup, token)
    rows: list[tuple[str, str]] = []
    best: tuple[int, float] | None = None  # the largest step held: viewers, KB per viewer
    try:
        bench.orders(20, 1.0, latency=False)
        time.sleep(1)
        rss0 = rss_kb(bench.workers)
        for target in steps:
            j = bench.add_viewers(target - bench.viewers)
            time.sleep(1)
            rss = rss_kb(bench.workers)
            r = bench.orders(opts.step_rate, opts.step_seconds, latency=True)
            held = bench.viewers == target and r["got_final"] == target and r["errors"] == 0
            rows.append((
                f"{target:,} viewers",
                f"{'HELD' if held else 'FAILED'}: joined {bench.viewers:,} (this step failed {j['failed']}, "
                f"{j['seconds']:.1f} s), final totals at {r['got_final']:,}; "
                f"{(rss - rss0) / max(1, bench.viewers):.0f} KB RSS/viewer; CPU {r['cpu'] * 100:.0f} %; "
                f"latency p50 {r['p50']:.0f} ms p99 {r['p99']:.0f} ms at {opts.step_rate:.0f} orders/s",
            ))
            if not held:
                break
            best = (target, (rss - rss0) / max(1, bench.viewers))
    finally:
        bench.close()
    want, budget = opts.target_viewers, opts.target_kb
    if opts.workers == 1 and steps[-1] >= want:
        if best is not None and best[0] >= want:
            verdict = ("MET" if best[1] <= budget else
                       f"MISSED by {best[1] - budget:.1f} KB per viewer ({best[1] / budget - 1:.1%})")
            rows.append((f"target: {want:,} viewers on one process, <= {budget:.0f} KB each, exact totals",
                         f"{verdict}: {best[0]:,} viewers held at {best[1]:.1f} KB RSS each"))
        else:
            held = f"{best[0]:,}" if best else "no step"
            rows.append((f"target: {want:,} viewers on one process, <= {budget:.0f} KB each, exact totals",
                         f"MISSED: {held} held"))
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--viewers", type=int, default=1000)
    parser.add_argument("--rate", type=float, default=200.0, help="orders/s while measuring latency")
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--procs", type=int, default=2, help="client processes holding the viewers")
    parser.add_argument("--sample", type=int, default=1, help="measure latency on every n-th viewer")
    parser.add_argument("--max-viewers", action="store_true", help="add viewers in steps until one fails")
    parser.add_argument("--steps", default="1000,2000,4000")
    parser.add_argument("--step-rate", type=float, default=50.0)
    parser.add_argument("--step-seconds", type=float, default=5.0)
    parser.add_argument("--target-viewers", type=int, default=8000,
                        help="--max-viewers: the viewers one process must hold (issue 16: 8,000)")
    parser.add_argument("--target-kb", type=float, default=70.0,
                        help="--max-viewers: the RSS per viewer they must fit in (issue 16: 70 KB)")
    parser.add_argument("--compare-nginx", action="store_true",
                        help="measure one process (clients direct), then --compare-processes processes behind "
                             "nginx (livesale cluster), and print the ratio")
    parser.add_argument("--compare-processes", type=int, default=2)
    parser.add_argument("--workers", type=int, default=default_workers(),
                        help="gunicorn workers (default: livesale serve's, one per core)")
    parser.add_argument("--light", action=argparse.BooleanOptionalAction, default=True,
                        help="viewers speak the protocol over aiohttp (default) or are python-socketio clients")
    parser.add_argument("--port", type=int, default=5620,
                        help="the server's port (--compare-nginx: also the next ones, for the processes and nginx)")
    parser.add_argument("--redis", default="redis://127.0.0.1:6379/7")
    opts = parser.parse_args()
    if opts.compare_nginx and not opts.light:
        parser.error("--compare-nginx needs the light viewers (they connect from several addresses for ip_hash)")
    limit = raise_nofile()

    with tempfile.TemporaryDirectory() as tmp:
        if opts.compare_nginx:
            rows = run_compare(opts, Path(tmp))
        elif opts.max_viewers:
            rows = run_max(opts, Path(tmp))
        else:
            rows = run_latency(opts, Path(tmp))
    load = os.getloadavg()
    kind = "aiohttp protocol" if opts.light else "python-socketio"
    workers = (f"one process vs {opts.compare_processes} processes (one gevent worker each) behind nginx"
               if opts.compare_nginx else f"{opts.workers} gevent worker(s)")
    print(f"\nlivesale push benchmark — {os.cpu_count()} cores, {workers}, "
          f"{opts.procs} client processes of {kind} viewers, "
          f"nofile {limit}, load {load[0]:.1f}")
    if opts.compare_nginx and (os.cpu_count() or 1) <= opts.compare_processes:
        print(f"  note: {os.cpu_count()} cores: the {opts.compare_processes} app processes, nginx and the load "
              "generator (viewers, poster) share them, so the second process adds no core of its own here")
    width = max(len(r[0]) for r in rows)
    for label, value in rows:
        print(f"  {label.ljust(width)}  {value}")


if __name__ == "__main__":
    main()
