"""Fixtures: a real Redis and a real database (SQLite or PostgreSQL) for every test.

Choose the backends with environment variables:

``LIVESALE_TEST_REDIS_URL``     default ``redis://127.0.0.1:6379/15`` (flushed per test)
``LIVESALE_TEST_DATABASE_URL``  default: a fresh SQLite file per test; e.g.
                                ``postgresql+psycopg://postgres@127.0.0.1:5432/test``
                                (its ``public`` schema is recreated once per run and
                                its tables emptied per test)
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
import requests
import sqlalchemy as sa

from livesale import create_app
from livesale.core import auth, schema
from livesale.core import tables as t
from livesale.core.db import write_transaction
from livesale.extensions import backend
from livesale.models import Base

REDIS_URL = os.environ.get("LIVESALE_TEST_REDIS_URL", "redis://127.0.0.1:6379/15")
PG_URL = os.environ.get("LIVESALE_TEST_DATABASE_URL", "")
ROOT = Path(__file__).resolve().parent.parent


def pytest_report_header(config: pytest.Config) -> str:
    return f"livesale backends: database={PG_URL or 'sqlite (file per test)'} redis={REDIS_URL}"


@pytest.fixture(scope="session")
def _migrated_template(tmp_path_factory: pytest.TempPathFactory) -> str:
    """Migrate once per run: a template SQLite file, or the PostgreSQL schema."""
    if PG_URL:
        engine = sa.create_engine(PG_URL)
        with engine.begin() as conn:
            conn.execute(sa.text("DROP SCHEMA public CASCADE"))
            conn.execute(sa.text("CREATE SCHEMA public"))
        engine.dispose()
        schema.upgrade(PG_URL)
        return PG_URL
    path = tmp_path_factory.mktemp("template") / "template.sqlite"
    schema.upgrade(f"sqlite:///{path}")
    return str(path)


@pytest.fixture
def database_url(_migrated_template: str, tmp_path: Path) -> str:
    """A migrated, empty database for this test."""
    if PG_URL:
        engine = sa.create_engine(PG_URL)
        names = ", ".join(t.name for t in Base.metadata.sorted_tables)
        with engine.begin() as conn:
            conn.execute(sa.text(f"TRUNCATE {names} RESTART IDENTITY CASCADE"))
        engine.dispose()
        return PG_URL
    path = tmp_path / "livesale.sqlite"
    shutil.copyfile(_migrated_template, path)
    return f"sqlite:///{path}"


@pytest.fixture
def redis_url() -> Iterator[str]:
    client = redis.Redis.from_url(REDIS_URL)
    client.flushdb()
    yield REDIS_URL
    client.flushdb()
    client.close()


@pytest.fixture
def redis_client(redis_url: str) -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(redis_url)
    yield client
    client.close()


@pytest.fixture
def app(database_url: str, redis_url: str, tmp_path: Path) -> Iterator[Any]:
    app = create_app(
        {
            "ENV": "testing",
            "SECRET_KEY": "test-secret-not-for-production",
            "DATABASE_URL": database_url,
            "REDIS_URL": redis_url,
            "INSTANCE_PATH": str(tmp_path / "instance"),
            "ASYNC_MODE": "threading",
            "PUSH_TICK_S": 0,  # no background ticker: tests call ticker.tick() themselves
        }
    )
    yield app
    backend.close(app)


@pytest.fixture
def store(app: Any) -> Any:
    return backend.store_of(app)


@pytest.fixture
def client(app: Any) -> Any:
    return app.test_client()


@pytest.fixture
def runner(app: Any) -> Any:
    return app.test_cli_runner()


class Api:
    """The test client with a bearer token, speaking JSON."""

    def __init__(self, client: Any, token: str | None):
        self.client = client
        self.token = token

    def _headers(self, headers: dict[str, str] | None) -> dict[str, str]:
        out = dict(headers or {})
        if self.token:
            out.setdefault("Authorization", f"Bearer {self.token}")
        return out

    def get(self, path: str, **kw: Any) -> Any:
        return self.client.get(path, headers=self._headers(kw.pop("headers", None)), **kw)

    def post(self, path: str, json: Any = None, **kw: Any) -> Any:
        return self.client.post(path, json=json, headers=self._headers(kw.pop("headers", None)), **kw)

    def patch(self, path: str, json: Any = None, **kw: Any) -> Any:
        return self.client.patch(path, json=json, headers=self._headers(kw.pop("headers", None)), **kw)


class Users:
    """Creates users and tokens on demand: ``users.api("host")``."""

    def __init__(self, app: Any):
        self.app = app
        self.tokens: dict[str, str] = {}

    def token(self, role: str, name: str | None = None) -> str:
        name = name or role
        if name not in self.tokens:
            with write_transaction(backend.store_of(self.app).db) as conn:
                auth.create_user(conn, name=name, role=role, password="correct horse battery")
                self.tokens[name] = auth.issue_token(conn, user_name=name)
        return self.tokens[name]

    def api(self, role: str, name: str | None = None) -> Api:
        return Api(self.app.test_client(), self.token(role, name))

    def actor(self, role: str, name: str | None = None) -> auth.Actor:
        """The user ``name`` (made with ``role`` if new) as the domain core sees them."""
        self.token(role, name)
        with backend.store_of(self.app).db.connect() as conn:
            user_id = conn.execute(sa.select(t.users.c.id).where(t.users.c.name == (name or role))).scalar_one()
            actor = auth.actor_by_id(conn, user_id=user_id)
        assert actor is not None
        return actor


@pytest.fixture
def users(app: Any) -> Users:
    return Users(app)


@pytest.fixture
def host_api(users: Users) -> Api:
    return users.api("host")


APRICOT_SESSION: dict[str, Any] = {
    "title": "喀什杏子直播",
    "village": "疏附县",
    "hosts": ["阿依古丽"],
    "platform": "douyin",
    "goal_fen": 6_000_000,
    "products": [
        {"sku": "APRICOT-5KG", "name": "鲜杏 5斤", "unit": "2.5 kg box", "unit_price_fen": 6980, "stock": 100},
        {"sku": "DRIED-1KG", "name": "杏干 1公斤", "unit": "1 kg bag", "unit_price_fen": 5900},
    ],
}


@pytest.fixture
def live_session(host_api: Api) -> dict[str, Any]:
    """A started apricot session owned by the ``host`` user."""
    created = host_api.post("/api/v1/sessions", json=APRICOT_SESSION)
    assert created.status_code == 201, created.json
    started = host_api.post(f"/api/v1/sessions/{created.json['id']}/start")
    assert started.status_code == 200, started.json
    return started.json


# --- a real server in a child process ------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class ServerProcess:
    """``gunicorn -k gevent livesale.wsgi:app`` on a free port, against the test backends."""

    def __init__(
        self, *, database_url: str, redis_url: str, instance: Path, workers: int = 1, port: int | None = None,
        message_queue: str = "",
    ):
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        from livesale.server import worker_env

        self.env = {
            **os.environ,
            "LIVESALE_ENV": "testing",
            "LIVESALE_SECRET_KEY": "test-secret-not-for-production",
            # The same environment ``livesale serve`` gives its workers.
            **worker_env(instance_path=str(instance), database_url=database_url, redis_url=redis_url, workers=workers,
                         message_queue=message_queue),
        }
        self.workers = workers
        self.proc: subprocess.Popen[bytes] | None = None
        self.log = instance / f"server-{self.port}.log"

    def start(self, timeout_s: float = 20) -> ServerProcess:
        from livesale.server import gunicorn_command

        self.log.parent.mkdir(parents=True, exist_ok=True)
        command = gunicorn_command(host="127.0.0.1", port=self.port, workers=self.workers)
        command[0] = sys.executable
        # The child gets its own copy of the descriptor; ours is closed at once
        # (left open it leaks, a ResourceWarning that filterwarnings=error fails on).
        with self.log.open("ab") as log:
            self.proc = subprocess.Popen(command, env=self.env, stdout=log, stderr=subprocess.STDOUT, cwd=ROOT)
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited: {self.log.read_text()[-2000:]}")
            try:
                if requests.get(self.url + "/healthz", timeout=1).status_code == 200:
                    return self
            except requests.RequestException:
                pass
            time.sleep(0.1)
        raise RuntimeError(f"server did not start: {self.log.read_text()[-2000:]}")

    def kill(self) -> None:
        """SIGKILL the whole server (master and workers): a crash, not a shutdown."""
        if self.proc is None:
            return
        subprocess.run(["pkill", "-9", "-P", str(self.proc.pid)], check=False)
        self.proc.kill()
        self.proc.wait()
        self.proc = None

    def stop(self) -> None:
        if self.proc is None:
            return
        self.proc.terminate()
        try:
            self.proc.wait(timeout=25)
        except subprocess.TimeoutExpired:
            self.kill()
        self.proc = None


@pytest.fixture
def server_factory(database_url: str, redis_url: str, tmp_path: Path) -> Iterator[Any]:
    """Start real server processes: ``server_factory()`` returns a started ``ServerProcess``."""
    started: list[ServerProcess] = []

    def make(workers: int = 1, port: int | None = None, shared: bool = False) -> ServerProcess:
        """``port``: reuse a port (e.g. a killed server's), else a free one. ``shared``: one of several
        servers (processes) pushing through the Redis message queue, as behind a load balancer."""
        server = ServerProcess(
            database_url=database_url, redis_url=redis_url, instance=tmp_path / "instance", workers=workers,
            port=port, message_queue=redis_url if shared else "",
        )
        started.append(server.start())
        return server

    yield make
    for server in started:
        server.stop()
