"""``livesale serve`` run as a user runs it: the real command, a clean environment, its own process group.

A terminal's Ctrl-C sends SIGINT to the whole foreground process group; the
tests do the same (``os.killpg``) rather than signalling the serve process
alone, which is what made the old shutdown look clean in tests.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import psutil
import requests

from livesale import embedded_redis
from livesale.server import GRACEFUL_TIMEOUT_S

LIVESALE = Path(sys.executable).with_name("livesale")


def user_env(home: Path, instance: Path, **extra: str) -> dict[str, str]:
    """What a user's shell gives livesale: PATH and HOME (a temporary one), development mode, the instance folder."""
    home.mkdir(parents=True, exist_ok=True)
    return {"PATH": os.environ["PATH"], "HOME": str(home), "LANG": "C.UTF-8", "LIVESALE_ENV": "development",
            "LIVESALE_INSTANCE_PATH": str(instance), **extra}


def cli(env: dict[str, str], cwd: Path, *args: str, stdin: str = "") -> str:
    done = subprocess.run([str(LIVESALE), *args], env=env, cwd=cwd, input=stdin, capture_output=True, text=True,
                          timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    assert "Traceback" not in done.stderr, done.stderr
    return done.stdout.strip()


class Serve:
    """One ``livesale serve`` process (and, through it, gunicorn and the embedded Redis)."""

    def __init__(self, env: dict[str, str], cwd: Path, port: int, *, workers: int = 1) -> None:
        self.env, self.cwd, self.port, self.workers = env, cwd, port, workers
        self.url = f"http://127.0.0.1:{port}"
        self.proc: subprocess.Popen[str] | None = None
        self._lines: list[str] = []
        self._reader: threading.Thread | None = None
        self._family: set[int] = set()

    def start(self) -> Serve:
        self.proc = subprocess.Popen(
            [str(LIVESALE), "serve", "--port", str(self.port), "--workers", str(self.workers)],
            env=self.env, cwd=self.cwd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
            text=True, start_new_session=True,  # a terminal's foreground group of its own
        )
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        return self

    def _read(self) -> None:
        assert self.proc is not None and self.proc.stdout is not None
        with self.proc.stdout:
            for line in self.proc.stdout:
                self._lines.append(line)

    @property
    def output(self) -> str:
        return "".join(self._lines)

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def wait_healthy(self, timeout_s: float = 60) -> Serve:
        """Until /healthz says the database and Redis answer (or fail with the server's output)."""
        assert self.proc is not None
        deadline = time.monotonic() + timeout_s
        while True:
            assert self.proc.poll() is None, f"serve exited {self.proc.returncode}:\n{self.output[-3000:]}"
            try:
                if requests.get(f"{self.url}/healthz", timeout=1).json() == {"db": "ok", "redis": "ok"}:
                    break
            except (requests.RequestException, ValueError):
                pass
            assert time.monotonic() < deadline, f"serve did not come up:\n{self.output[-3000:]}"
            time.sleep(0.1)
        self._family = {p.pid for p in psutil.Process(self.proc.pid).children(recursive=True)}
        return self

    def ctrl_c(self) -> float:
        """Press Ctrl-C (SIGINT to the process group); returns the seconds until serve exited."""
        assert self.proc is not None
        started = time.monotonic()
        os.killpg(self.proc.pid, signal.SIGINT)
        self.proc.wait(timeout=GRACEFUL_TIMEOUT_S + 30)
        elapsed = time.monotonic() - started
        self.join_output()
        return elapsed

    def interrupt_only(self) -> None:
        """Ctrl-C, without waiting for the exit."""
        assert self.proc is not None
        os.killpg(self.proc.pid, signal.SIGINT)

    def wait(self, timeout_s: float = GRACEFUL_TIMEOUT_S + 30) -> int:
        assert self.proc is not None
        code = self.proc.wait(timeout=timeout_s)
        self.join_output()
        return code

    def join_output(self) -> None:
        if self._reader is not None:
            self._reader.join(timeout=10)

    def kill9(self) -> None:
        """SIGKILL the serve process alone (as the OOM killer would); its gunicorn must notice."""
        assert self.proc is not None
        self.proc.kill()
        self.proc.wait()
        self.join_output()

    def leftovers(self) -> list[int]:
        """Processes that this serve started (gunicorn and its workers) still running."""
        alive = []
        for pid in self._family:
            try:
                if psutil.Process(pid).status() != psutil.STATUS_ZOMBIE:
                    alive.append(pid)
            except psutil.Error:
                pass
        return alive

    def cleanup(self) -> None:
        """Whatever a failed test left running: serve, its gunicorn, and then the embedded Redis."""
        if self.proc is not None and self.proc.poll() is None:
            self._family |= {p.pid for p in psutil.Process(self.proc.pid).children(recursive=True)}
            self.proc.kill()
            self.proc.wait()
        for pid in self.leftovers():
            try:
                psutil.Process(pid).kill()
            except psutil.Error:
                pass
        self.join_output()


def wait_until(condition: Any, timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, what
        time.sleep(0.05)


def stop_embedded_redis(instance: Path) -> None:
    """After a test: no embedded Redis left running (nobody owns it any more)."""
    if embedded_redis.is_running(instance):
        embedded_redis.stop(instance)
