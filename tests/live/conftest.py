"""Fixtures for tests against real server processes: Socket.IO viewers and concurrent order posts."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
import requests
import socketio

NS = "/live"
PRICE = 6980  # APRICOT-5KG


class Viewer:
    """A ``socketio.Client`` on ``/live`` that records what it receives, with arrival times."""

    def __init__(self, *, reconnection: bool = False, origin: str | None = None):
        # websocket-client always sends an Origin (the server's own): replace it through its
        # options; an Origin in ``headers`` would go out as a second header.
        self.origin = origin
        self.client = socketio.Client(
            reconnection=reconnection, reconnection_delay=0.2, reconnection_delay_max=0.5,
            randomization_factor=0.1, reconnection_attempts=100,
            websocket_extra_options={"origin": origin} if origin else None,
        )
        self.cond = threading.Condition()
        self.events: list[tuple[float, str, Any]] = []
        self.connects = 0
        self.disconnects = 0
        for name in ("totals", "orders", "error"):
            self.client.on(name, self._recorder(name), namespace=NS)
        self.client.on("connect", self._on_connect, namespace=NS)
        self.client.on("disconnect", self._on_disconnect, namespace=NS)

    def _recorder(self, name: str) -> Callable[[Any], None]:
        def record(data: Any) -> None:
            with self.cond:
                self.events.append((time.monotonic(), name, data))
                self.cond.notify_all()

        return record

    def _on_connect(self) -> None:
        with self.cond:
            self.connects += 1
            self.cond.notify_all()

    def _on_disconnect(self, reason: Any = None) -> None:
        with self.cond:
            self.disconnects += 1
            self.cond.notify_all()

    def connect(self, url: str, token: str | None = None, transport: str = "websocket") -> Viewer:
        self.client.connect(
            url, namespaces=[NS], transports=[transport], auth={"token": token} if token else None,
            headers={"Origin": self.origin} if self.origin and transport == "polling" else {},
            wait_timeout=5,
        )
        return self

    def join(self, data: Any) -> None:
        self.client.emit("join", data, namespace=NS)

    def of(self, name: str) -> list[Any]:
        with self.cond:
            return [d for _, n, d in self.events if n == name]

    def timed(self, name: str) -> list[tuple[float, Any]]:
        with self.cond:
            return [(at, d) for at, n, d in self.events if n == name]

    def wait_for(self, predicate: Callable[[], bool], timeout: float = 5.0) -> bool:
        with self.cond:
            return self.cond.wait_for(predicate, timeout=timeout)

    def wait_totals(self, check: Callable[[dict[str, Any]], bool], timeout: float = 5.0) -> dict[str, Any]:
        found: list[dict[str, Any]] = []

        def ready() -> bool:
            found[:] = [d for _, n, d in self.events if n == "totals" and check(d)]
            return bool(found)

        assert self.wait_for(ready, timeout), f"no matching totals within {timeout} s; got {self.of('totals')}"
        return found[-1]

    def close(self) -> None:
        self.client.disconnect()
        self.client.shutdown()
        # After a close by the server, python-engineio leaves its websocket open (a ResourceWarning).
        ws = getattr(self.client.eio, "ws", None)
        if ws is not None:
            ws.shutdown()


@pytest.fixture
def viewers() -> Iterator[Callable[..., Viewer]]:
    made: list[Viewer] = []

    def make(**kw: Any) -> Viewer:
        made.append(Viewer(**kw))
        return made[-1]

    yield make
    for v in made:
        v.close()


def post_orders(url: str, token: str, session_id: int, quantities: list[int], threads: int = 16) -> list[float]:
    """POST one order per quantity, concurrently; returns the times the 201s were received."""
    local = threading.local()

    def one(quantity: int) -> float:
        if not hasattr(local, "http"):
            local.http = requests.Session()
            opened.append(local.http)
        r = local.http.post(
            f"{url}/api/v1/sessions/{session_id}/orders",
            json={"sku": "APRICOT-5KG", "quantity": quantity, "buyer_region": "浙江杭州"},
            headers={"Authorization": f"Bearer {token}"}, timeout=10,
        )
        assert r.status_code == 201, r.text
        return time.monotonic()

    opened: list[requests.Session] = []
    try:
        with ThreadPoolExecutor(threads) as pool:
            return list(pool.map(one, quantities))
    finally:
        for http in opened:
            http.close()
