"""Resource hygiene of a real server: thousands of Socket.IO connections come and go, some refused,
and the worker ends where it started — sockets, memory and the viewers gauge.

The clients speak Engine.IO 4 / Socket.IO 5 over aiohttp WebSockets, as the pages' socket.io-client
does (python-socketio's client would cost the load generator more CPU than the server spends on
these two shared cores). Every cycle opens a new WebSocket; the mix includes refusals at each
level: a foreign Origin (the handshake), a bad token (the namespace), a message over the size cap
(the server closes), and clients that vanish without a close frame.
"""

from __future__ import annotations

import asyncio
import json
import os
import socket
import subprocess
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import aiohttp
import pytest
import requests
from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import APRICOT_SESSION, Users

CYCLES = 2000
WARM_UP = 1000
#: python-engineio keeps a closed connection's objects (~12 KB, with its ping greenlet) until its
#: next ping time and the following sweep: up to 45 s with the default pings (25 s + 20 s). The
#: server under test pings every second so that everything is released within seconds.
PING_INTERVAL_S, PING_TIMEOUT_S = 1, 2
CONCURRENCY = 16
#: Sockets the worker may hold beyond its baseline afterwards (pools that grew a connection).
SOCKET_SLACK = 4
RSS_GROWTH_MAX = 0.10


def worker_pid(master: int) -> int:
    pids = subprocess.run(["pgrep", "-P", str(master)], capture_output=True, text=True, check=False).stdout.split()
    assert len(pids) == 1, pids
    return int(pids[0])


def open_sockets(pid: int) -> int:
    count = 0
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            if os.readlink(f"/proc/{pid}/fd/{fd}").startswith("socket:"):
                count += 1
        except FileNotFoundError:  # closed while we looked
            pass
    return count


def rss_kb(pid: int) -> int:
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise AssertionError("no VmRSS")


def viewers_gauge(url: str) -> float:
    text = requests.get(url + "/metrics", timeout=5, headers={"Connection": "close"}).text
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == "livesale_viewers" and not sample.labels:
                return sample.value
    raise AssertionError("no livesale_viewers gauge")


def settle(url: str, pid: int, baseline_sockets: int | None, timeout: float = 20) -> tuple[float, int]:
    """Waits until no viewer is counted and (given a baseline) the sockets are back near it."""
    deadline = time.monotonic() + timeout
    while True:
        gauge, sockets = viewers_gauge(url), open_sockets(pid)
        if gauge == 0 and (baseline_sockets is None or sockets <= baseline_sockets + SOCKET_SLACK):
            return gauge, sockets
        if time.monotonic() > deadline:
            return gauge, sockets
        time.sleep(0.2)


KINDS = ["bad token", "foreign origin", "oversized", "vanish", "join", "join", "join", "join",
         "plain", "plain", "plain", "plain", "plain", "plain", "plain", "plain", "plain", "plain", "plain", "plain"]


async def one_cycle(http: aiohttp.ClientSession, url: str, kind: str, token: str, session_id: int) -> str:
    ws_url = url.replace("http", "ws", 1) + "/socket.io/?EIO=4&transport=websocket"
    origin = "http://evil.example" if kind == "foreign origin" else url
    try:
        ws = await http.ws_connect(ws_url, origin=origin, timeout=aiohttp.ClientWSTimeout(ws_close=5),
                                   max_msg_size=0)
    except aiohttp.WSServerHandshakeError as exc:
        return f"handshake refused {exc.status}"
    try:
        opened = await asyncio.wait_for(ws.receive_str(), 10)
        assert opened.startswith("0{"), opened
        auth = {"token": "not-a-token" if kind == "bad token" else token}
        await ws.send_str("40/live," + json.dumps(auth))
        reply = await asyncio.wait_for(ws.receive_str(), 10)
        if reply.startswith("44/live,"):
            return "namespace refused"
        assert reply.startswith("40/live,"), reply
        if kind == "oversized":
            await ws.send_str('42/live,["join",{"widget":"' + "x" * 17_000 + '"}]')
            message = await asyncio.wait_for(ws.receive(), 10)
            return f"closed by the server ({message.type.name})"
        if kind == "vanish":  # gone without a close frame: the server sees the connection end
            sock = ws.get_extra_info("socket")
            sock.shutdown(socket.SHUT_RDWR)
            return "vanished"
        if kind == "join":
            await ws.send_str('42/live,["join",' + json.dumps({"session": session_id}) + "]")
            while True:
                message = await asyncio.wait_for(ws.receive_str(), 10)
                if message.startswith('42/live,["totals",'):
                    return "joined"
                if message == "2":
                    await ws.send_str("3")
        return "connected"
    finally:
        await ws.close()


def cycles(url: str, token: str, session_id: int, count: int) -> Counter[str]:
    """``count`` cycles, ``CONCURRENCY`` at a time, on an event loop of their own thread (the browser
    tests' Playwright keeps one running on this thread for the whole session)."""
    with ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, _cycles(url, token, session_id, count)).result()


async def _cycles(url: str, token: str, session_id: int, count: int) -> Counter[str]:
    outcomes: Counter[str] = Counter()
    gate = asyncio.Semaphore(CONCURRENCY)
    connector = aiohttp.TCPConnector(limit=CONCURRENCY * 2, force_close=True)
    async with aiohttp.ClientSession(connector=connector) as http:

        async def run(i: int) -> None:
            async with gate:
                outcomes[await one_cycle(http, url, KINDS[i % len(KINDS)], token, session_id)] += 1

        await asyncio.gather(*(run(i) for i in range(count)))
    return outcomes


def released(url: str, pid: int, baseline_sockets: int | None = None) -> tuple[float, int, int]:
    """After the viewers are gone: engineio's sweep, then the gauge, open sockets and RSS (KB)."""
    gauge, sockets = settle(url, pid, baseline_sockets)
    time.sleep(PING_INTERVAL_S + PING_TIMEOUT_S + 1)
    return gauge, open_sockets(pid), rss_kb(pid)


def test_connections_come_and_go_without_leaking(
    server_factory: Any, users: Users, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LIVESALE_SOCKET_PING_INTERVAL_S", str(PING_INTERVAL_S))
    monkeypatch.setenv("LIVESALE_SOCKET_PING_TIMEOUT_S", str(PING_TIMEOUT_S))
    server = server_factory()
    token = users.token("host")
    auth = {"Authorization": f"Bearer {token}"}
    sid = requests.post(server.url + "/api/v1/sessions", json=APRICOT_SESSION, headers=auth, timeout=5).json()["id"]
    assert requests.post(f"{server.url}/api/v1/sessions/{sid}/start", headers=auth, timeout=5).status_code == 200
    pid = worker_pid(server.proc.pid)

    # Warm up (pools, lazy imports, the ticker, the allocator's high-water mark), then the baseline.
    warm = cycles(server.url, token, sid, WARM_UP)
    assert sum(warm.values()) == WARM_UP
    gauge, base_sockets, base_rss = released(server.url, pid)
    assert gauge == 0

    started = time.monotonic()
    outcomes = cycles(server.url, token, sid, CYCLES)
    elapsed = time.monotonic() - started
    per_kind = CYCLES // len(KINDS)
    assert outcomes["namespace refused"] == per_kind, outcomes
    assert outcomes["handshake refused 400"] == per_kind, outcomes
    assert outcomes["joined"] == 4 * per_kind, outcomes
    assert outcomes["vanished"] == per_kind, outcomes
    closed = sum(n for what, n in outcomes.items() if what.startswith("closed by the server"))
    assert closed == per_kind, outcomes
    assert sum(outcomes.values()) == CYCLES

    gauge, sockets, rss = released(server.url, pid, base_sockets)
    report = (f"{CYCLES} cycles in {elapsed:.1f} s; worker sockets {base_sockets} -> {sockets}, "
              f"RSS {base_rss} -> {rss} KB; outcomes {dict(outcomes)}")
    print(report)
    assert gauge == 0, report
    assert sockets <= base_sockets + SOCKET_SLACK, report
    assert rss < base_rss * (1 + RSS_GROWTH_MAX), report
    # And the server still serves: a new viewer joins and gets the totals.
    assert cycles(server.url, token, sid, 5)["joined"] >= 1
