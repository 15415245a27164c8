"""What the benchmark scripts share: the server under test and its first user."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def prepare_database(url: str) -> None:
    """An empty, migrated database (PostgreSQL: its public schema is dropped first)."""
    import sqlalchemy as sa

    from livesale.core import schema

    if url.startswith("postgresql"):
        engine = sa.create_engine(url)
        with engine.begin() as conn:
            conn.execute(sa.text("DROP SCHEMA public CASCADE"))
            conn.execute(sa.text("CREATE SCHEMA public"))
        engine.dispose()
    schema.upgrade(url)


def make_token(db_url: str) -> str:
    """A host user ``bench`` and an API token for it, in a migrated database."""
    from livesale.core import auth
    from livesale.core.db import create_db_engine, write_transaction

    engine = create_db_engine(db_url)
    with write_transaction(engine) as conn:
        auth.create_user(conn, name="bench", role="host")
        token = auth.issue_token(conn, user_name="bench")
    engine.dispose()
    return token


REGIONS = ["浙江杭州", "上海", "广东深圳", "北京", "江苏苏州", "新疆乌鲁木齐", "四川成都", "山东青岛"]


def seed_orders(
    db_url: str, session_id: int, count: int, *, started_at: Any = None, minutes: int = 120,
    skus: tuple[tuple[str, int], ...] = (("APRICOT-5KG", 6980), ("DRIED-1KG", 5900)),
) -> None:
    """Insert ``count`` paid orders straight into SQL, spread over ``minutes`` from ``started_at``."""
    import uuid
    from datetime import UTC, datetime, timedelta

    import sqlalchemy as sa

    from livesale.core import tables as t
    from livesale.core.db import create_db_engine, write_transaction

    engine = create_db_engine(db_url)
    start = started_at or datetime.now(UTC)
    chunk = 20_000
    with write_transaction(engine) as conn:
        for first in range(0, count, chunk):
            rows = []
            for i in range(first, min(count, first + chunk)):
                sku, price = skus[i % len(skus)]
                quantity = 1 + i % 3
                minute = i * minutes // max(1, count)
                rows.append({
                    "id": uuid.uuid4(), "session_id": session_id, "sku": sku, "quantity": quantity,
                    "unit_price_fen": price, "amount_fen": price * quantity, "buyer_region": REGIONS[i % len(REGIONS)],
                    "channel": "", "external_id": None, "idempotency_key": None, "payload_hash": "x",
                    "status": "paid", "created_at": start + timedelta(minutes=minute, seconds=i % 60),
                    "minute": minute, "txid": 1, "refunded_at": None, "refund_txid": None,
                })
            conn.execute(sa.insert(t.orders), rows)
    engine.dispose()


def server_env(**extra: str) -> dict[str, str]:
    """The environment of a server under test (a testing secret, quiet logs)."""
    return {
        **os.environ,
        "LIVESALE_ENV": "testing",
        "LIVESALE_SECRET_KEY": "bench-only",
        "LIVESALE_LOG_LEVEL": "WARNING",
        **extra,
    }


def start_server(
    db_url: str, redis_url: str, instance: Path, port: int, *, workers: int = 1, connections: int = 1000,
    env: dict[str, str] | None = None,
) -> subprocess.Popen[bytes]:
    """``livesale serve``'s gunicorn command on ``port``; returns once ``/livez`` answers.
    ``env`` adds or overrides settings (``LIVESALE_*``)."""
    import requests

    from livesale.server import gunicorn_command, worker_env

    # The same environment ``livesale serve`` gives its workers.
    env = server_env(**{**worker_env(instance_path=str(instance), database_url=db_url, redis_url=redis_url,
                                     workers=workers), **(env or {})})
    command = gunicorn_command(host="127.0.0.1", port=port, workers=workers, worker_connections=connections)
    with (instance / "server.log").open("ab") as log:
        proc = subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT, cwd=ROOT)
    for _ in range(300):
        if proc.poll() is not None:
            break
        try:
            if requests.get(f"http://127.0.0.1:{port}/livez", timeout=1).ok:
                return proc
        except requests.RequestException:
            time.sleep(0.1)
    proc.kill()
    proc.wait()
    raise RuntimeError((instance / "server.log").read_text()[-3000:])


def start_cluster(
    db_url: str, redis_url: str, instance: Path, *, base_port: int, nginx_port: int | None, processes: int = 2,
    connections: int = 1000,
) -> Any:
    """``livesale cluster``'s processes (and nginx) through the same code as the command
    (``livesale.cluster.start``); returns the started ``Cluster``. Output goes to ``instance/cluster.log``."""
    from livesale import cluster

    return cluster.start(
        processes=processes, base_port=base_port, host="127.0.0.1", database_url=db_url, redis_url=redis_url,
        instance_path=str(instance), nginx_port=nginx_port, worker_connections=connections, env=server_env(),
        output=instance / "cluster.log", echo=lambda line: None,
    )


def worker_cpu_s(proc: subprocess.Popen[bytes]) -> float:
    """CPU seconds (user + system) used so far by the server's workers (the children of gunicorn's master)."""
    import psutil

    total = 0.0
    for child in psutil.Process(proc.pid).children(recursive=True):
        try:
            times = child.cpu_times()
        except psutil.NoSuchProcess:
            continue
        total += times.user + times.system
    return total


def pct(values: list[float], q: float) -> float:
    """The ``q`` quantile of sorted seconds, in milliseconds."""
    if not values:
        return float("nan")
    return values[min(len(values) - 1, int(q * len(values)))] * 1000
