"""Prometheus metrics of a livesale process, served at ``/metrics``.

No Flask here: the web layer, the push ticker and the totals engine's
rebuild hook update these. Under gunicorn with several workers,
``PROMETHEUS_MULTIPROC_DIR`` is set before the workers import this module
(``gunicorn_conf.py``) and ``render`` adds up every worker's figures;
otherwise the process's own registry is served.
"""

from __future__ import annotations

import os

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client import multiprocess as _multiprocess

ORDERS_RECORDED = Counter(
    "livesale_orders_recorded_total", "New orders committed to SQL (a repeated idempotency key is not counted).",
)
ORDER_REQUESTS = Counter(
    "livesale_order_requests_total", "Order requests answered, by kind (single, batch) and outcome (new, repeat, "
    "refused).", ["kind", "outcome"],
)
INGEST_SECONDS = Histogram(
    "livesale_ingest_seconds", "Time to answer an order request (validation, SQL commit, Redis totals), by kind.",
    ["kind"], buckets=(0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0),
)
HTTP_REQUESTS = Counter(
    "livesale_http_requests_total", "HTTP requests answered, by endpoint and status class.",
    ["endpoint", "status"],
)
VIEWERS = Gauge(
    "livesale_viewers", "Socket.IO viewers connected (hosts, officials and widgets).", multiprocess_mode="livesum",
)
WIDGET_SOCKETS_REFUSED = Counter(
    "livesale_widget_sockets_refused_total",
    "Widget connections told to poll their JSON instead: the process held WIDGET_SOCKET_LIMIT widget sockets.",
)
PUSH_TICKS = Counter("livesale_push_ticks_total", "Ticks that pushed totals to at least one session's viewers.")
PUSHED_SESSIONS = Counter("livesale_pushed_sessions_total", "Totals events emitted (one per session per tick).")
REDIS_REBUILDS = Counter(
    "livesale_redis_rebuilds_total", "Running totals recomputed from SQL into Redis (lost, flushed or unverified).",
)
REDIS_UNAVAILABLE = Counter(
    "livesale_redis_unavailable_total", "Requests refused (503) because Redis could not be reached.",
)
DATABASE_UNAVAILABLE = Counter(
    "livesale_database_unavailable_total", "Requests refused (503) because the database could not be reached.",
)


def multiprocess() -> bool:
    return bool(os.environ.get("PROMETHEUS_MULTIPROC_DIR"))


def render() -> tuple[bytes, str]:
    """The exposition text and its content type."""
    if multiprocess():
        registry = CollectorRegistry()
        _multiprocess.MultiProcessCollector(registry)
        return generate_latest(registry), CONTENT_TYPE_LATEST
    return generate_latest(), CONTENT_TYPE_LATEST
