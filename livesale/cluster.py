"""``livesale cluster``: N app processes on N ports, optionally behind Debian's nginx.

The production topology of ``docker-compose.yml`` without Docker, for tests,
benchmarks and people without Docker: one gunicorn per process with one
gevent worker (``livesale.server``'s command), all on the same database and
Redis, with the Socket.IO message queue set so that a viewer on any process
gets the totals that the one elected ticker pushes. The schema is migrated
once, before any process starts (concurrent schema creation races).

With ``nginx_port``, Debian's nginx (``nginx-light`` is enough) runs in the
foreground in front of them, as an ordinary user: its configuration is
generated under ``<instance>/nginx/`` with every path it writes (pid, logs,
temporary files) in that folder, and the same choices as
``docker/nginx.conf`` (``ip_hash``, WebSocket upgrade, long read timeouts for
viewers, the widget's one-second microcache), plus ``X-Request-ID`` and
``/metrics`` refused from outside.

Every child runs in its own process group, so a Ctrl-C in the terminal
reaches only this process, which stops them in order: SIGTERM to each
gunicorn (graceful: in-flight requests finish), then SIGQUIT to nginx. On
Linux each child also gets SIGTERM if this process dies without stopping
them (``PR_SET_PDEATHSIG``), so none is left behind holding its port.

No Flask here: the command line (``livesale.cli``) reads the settings and
starts the embedded Redis when no ``LIVESALE_REDIS_URL`` is set; the
processes of a cluster share it through its Unix socket in the instance
folder, as ``serve``'s workers do.
"""

from __future__ import annotations

import contextlib
import http.client
import os
import pwd
import resource
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from .core import schema
from .server import gunicorn_command, raise_nofile, worker_env

MAX_PROCESSES = 64
NGINX_FALLBACK = "/usr/sbin/nginx"  # Debian's, often not on an ordinary user's PATH
APP_STOP_TIMEOUT_S = 30.0  # gunicorn's graceful timeout is 20 s
NGINX_STOP_TIMEOUT_S = 15.0  # worker_shutdown_timeout is 10 s


class ClusterError(RuntimeError):
    """The cluster cannot start as asked; the message says why, for the command line."""


Echo = Callable[[str], None]


def _stderr(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


# --- input --------------------------------------------------------------------------------


def check_options(*, processes: int, base_port: int, nginx_port: int | None = None) -> None:
    """Refuse counts and ports that cannot work, before anything starts."""
    if not 1 <= processes <= MAX_PROCESSES:
        raise ClusterError(f"--processes must be between 1 and {MAX_PROCESSES}, not {processes}")
    last = base_port + processes - 1
    if base_port < 1 or last > 65535:
        raise ClusterError(f"the app processes need ports {base_port}–{last}: outside 1–65535")
    if nginx_port is not None:
        if not 1 <= nginx_port <= 65535:
            raise ClusterError(f"--nginx port must be between 1 and 65535, not {nginx_port}")
        if base_port <= nginx_port <= last:
            raise ClusterError(f"--nginx port {nginx_port} is one of the app processes' ports ({base_port}–{last})")


def find_nginx(binary: str | None = None) -> str:
    """The nginx executable: ``binary`` if given, else ``nginx`` on the PATH, else Debian's."""
    if binary:
        found = shutil.which(binary)
        if not found:
            raise ClusterError(f"nginx binary {binary!r} not found or not executable")
        return found
    found = shutil.which("nginx") or (NGINX_FALLBACK if os.access(NGINX_FALLBACK, os.X_OK) else None)
    if not found:
        raise ClusterError(
            "nginx not found (neither `nginx` on the PATH nor /usr/sbin/nginx): install Debian's nginx-light "
            "(`apt-get install nginx-light`), pass --nginx-binary PATH, or run without --nginx"
        )
    return found


def _connect_host(host: str) -> str:
    """Where to reach a server bound to ``host`` from this machine (a wildcard means loopback)."""
    if host in ("", "0.0.0.0"):
        return "127.0.0.1"
    if host == "::":
        return "::1"
    return host


def _hostport(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def url_of(host: str, port: int) -> str:
    return f"http://{_hostport(_connect_host(host), port)}"


def check_port_free(*, host: str, port: int) -> None:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError as exc:
            raise ClusterError(f"cannot listen on {_hostport(host, port)}: {exc.strerror}") from exc


# --- nginx --------------------------------------------------------------------------------


def nginx_prefix(instance_path: str | os.PathLike[str]) -> Path:
    return Path(instance_path) / "nginx"


def _nofile_limit() -> int:
    """The open-files limit nginx's workers may raise themselves to (the hard limit, capped)."""
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    return 65536 if hard == resource.RLIM_INFINITY else min(hard, 65536)


#: The widget's page, JSON and embed.js through a one-second microcache, as in docker/nginx.conf:
#: however many readers, about one request per widget per second reaches the app (one fills the
#: entry, ``proxy_cache_lock``; the others get the entry, or the previous one while it is refreshed,
#: ``updating``). The widget depends on no cookie (web/widget.py): none is passed to the app and
#: none is kept or sent back, so the key is the URL and the Host (the page's policy names the host).
#: 404s are kept the same second, so that a turned-off key's answer replaces the last figures at
#: once. No ``proxy_cache_background_update``: with it an answer that may not be cached (a 429, a
#: 503) would leave the last figures served for as long as readers keep coming.
WIDGET_LOCATION = """\
    location ~ ^/(widget/[^/]+|embed\\.js)$ {{
      proxy_pass http://livesale;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
{proxy_common}
      proxy_set_header Cookie "";
      proxy_hide_header Set-Cookie;
      proxy_cache widget;
      proxy_cache_key $scheme$http_host$request_uri;
      proxy_cache_valid 200 404 1s;
      proxy_cache_lock on;
      proxy_cache_lock_timeout 5s;
      proxy_cache_use_stale updating error timeout;
      # This request's id, not that of the request that filled the entry.
      proxy_hide_header X-Request-ID;
      add_header X-Request-ID $request_id always;
      add_header X-Cache-Status $upstream_cache_status always;
    }}
"""


#: nginx's own refusals (request line or header over ``large_client_header_buffers``' 8 KB) in the
#: API's JSON error shape, as in docker/nginx.conf; gunicorn answers the smaller ones the same way.
REFUSALS = """\
    error_page 400 /_refused/400.json;
    error_page 414 /_refused/414.json;
    error_page 494 =431 /_refused/431.json;
    location = /_refused/400.json { internal; default_type application/json; return 400 '{"error": {"code": "bad_request", "message": "the request could not be read"}}'; }
    location = /_refused/414.json { internal; default_type application/json; return 414 '{"error": {"code": "uri_too_long", "message": "the request line (method, path and query) is longer than 8 KB"}}'; }
    location = /_refused/431.json { internal; default_type application/json; return 431 '{"error": {"code": "headers_too_large", "message": "a request header is longer than 8 KB"}}'; }
"""


def nginx_config(
    *, prefix: Path, host: str, port: int, upstreams: Sequence[str], worker_processes: str = "auto",
) -> str:
    """nginx.conf for the app processes at ``upstreams`` (``host:port`` each), listening on ``host:port``.

    Runs as an ordinary user in the foreground: every file nginx writes is
    under ``prefix``. The proxy settings are ``docker/nginx.conf``'s.
    """
    def path(name: str) -> str:  # quoted: the instance folder may hold spaces
        return '"' + str(prefix.resolve() / name).replace("\\", "\\\\").replace('"', '\\"') + '"'

    nofile = _nofile_limit()
    # A proxied viewer holds two connections (client and upstream).
    connections = max(512, min(8192, nofile // 2))
    servers = "\n".join(f"    server {u} max_fails=3 fail_timeout=5s;" for u in upstreams)
    # As root (a container, a test machine) nginx would run its workers as
    # `nobody`, who may not reach the temporary folders inside the instance
    # folder; they run as the user who started the cluster instead.
    user = f"user {pwd.getpwuid(os.geteuid()).pw_name};\n" if os.geteuid() == 0 else ""
    proxy_common = """\
      proxy_set_header Host $http_host;  # with the port: Socket.IO's same-origin check compares it to Origin
      proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
      proxy_set_header X-Forwarded-Proto $scheme;
      proxy_set_header X-Request-ID $request_id;"""
    return f"""\
# Generated by `livesale cluster`; rewritten at every start. See docs/deploy.md.
{user}daemon off;
worker_processes {worker_processes};
worker_rlimit_nofile {nofile};
worker_shutdown_timeout 10s;  # then open WebSockets are closed
pid {path('nginx.pid')};
lock_file {path('nginx.lock')};
error_log {path('error.log')} warn;

events {{ worker_connections {connections}; }}

http {{
  log_format livesale '$remote_addr [$time_local] "$request" $status $body_bytes_sent '
                      '$request_time "$http_user_agent" id=$request_id upstream=$upstream_addr';
  access_log {path('access.log')} livesale;
  client_body_temp_path {path('client_body_temp')};
  proxy_temp_path {path('proxy_temp')};
  fastcgi_temp_path {path('fastcgi_temp')};
  uwsgi_temp_path {path('uwsgi_temp')};
  scgi_temp_path {path('scgi_temp')};
  server_tokens off;

  # The public widget's microcache (docs/deploy.md): small entries kept a second, written once a
  # second per widget (the page cache holds them; no need for a tmpfs here).
  proxy_cache_path {path('widget_cache')} levels=1:2 keys_zone=widget:10m max_size=256m inactive=60s
                   use_temp_path=off;

  map $http_upgrade $connection_upgrade {{
    default upgrade;
    ''      close;
  }}

  # ip_hash keeps each client on one process: the pages connect over
  # WebSocket only and need no stickiness, but a long-polling client does.
  upstream livesale {{
    ip_hash;
{servers}
    keepalive 64;
    keepalive_timeout 1s;  # under gunicorn's 2 s: nginx never reuses a connection gunicorn is closing
  }}

  server {{
    listen {_hostport(host, port)};
    client_max_body_size 2m;  # the app answers 413 over 1 MB itself

{REFUSALS}
    location /socket.io/ {{
      proxy_pass http://livesale;
      proxy_http_version 1.1;
      proxy_set_header Upgrade $http_upgrade;
      proxy_set_header Connection $connection_upgrade;
{proxy_common}
      proxy_read_timeout 3600s;  # long-lived viewers
      proxy_send_timeout 3600s;
      proxy_buffering off;
    }}

    location / {{
      proxy_pass http://livesale;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
{proxy_common}
    }}

{WIDGET_LOCATION.format(proxy_common=proxy_common)}
    # Platform order exports are larger than any API body: up to 64 MB, there only.
    location ~ ^/(api/v1/)?sessions/[0-9]+/imports {{
      client_max_body_size 65m;
      proxy_pass http://livesale;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
{proxy_common}
      proxy_read_timeout 120s;
    }}

    # The app's metrics are for the machine's own scraper (the app ports), not the world.
    location = /metrics {{ deny all; }}

    location = /nginx-health {{ access_log off; return 200 "ok\\n"; }}
  }}
}}
"""


def write_nginx_config(
    *, instance_path: str | os.PathLike[str], host: str, port: int, upstreams: Sequence[str],
    worker_processes: str = "auto",
) -> Path:
    """Write ``<instance>/nginx/nginx.conf`` (and the folders it names); returns its path."""
    prefix = nginx_prefix(instance_path)
    prefix.mkdir(parents=True, exist_ok=True)
    conf = prefix / "nginx.conf"
    conf.write_text(nginx_config(prefix=prefix, host=host, port=port, upstreams=upstreams,
                                 worker_processes=worker_processes))
    return conf


def nginx_command(*, binary: str, conf: Path, test: bool = False) -> list[str]:
    prefix = conf.parent.resolve()
    return [binary, *(["-t", "-q"] if test else []), "-p", f"{prefix}/", "-c", str(conf.resolve())]


def check_nginx_config(*, binary: str, conf: Path) -> None:
    """``nginx -t``: the configuration parses and every module it uses is built in."""
    done = subprocess.run(nginx_command(binary=binary, conf=conf, test=True), capture_output=True, text=True,
                          timeout=30, check=False)
    if done.returncode != 0:
        raise ClusterError(f"nginx refuses {conf}:\n{(done.stderr or done.stdout).strip()}")


# --- processes ----------------------------------------------------------------------------


def _die_with_parent() -> None:  # pragma: no cover - runs in the child between fork and exec
    """SIGTERM this child when the cluster process dies (Linux), so no server outlives it."""
    if sys.platform.startswith("linux"):
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


def _spawn(command: list[str], *, env: Mapping[str, str], output: Path | None) -> subprocess.Popen[bytes]:
    # Own process group: the terminal's Ctrl-C reaches the cluster only, which stops the
    # children in order. ``output``: the child gets its own descriptor, ours is closed at once.
    with contextlib.ExitStack() as stack:
        out = stack.enter_context(output.open("ab")) if output is not None else None
        return subprocess.Popen(command, env=dict(env), stdout=out, stderr=subprocess.STDOUT if out else None,
                                process_group=0, preexec_fn=_die_with_parent)


@dataclass
class Child:
    name: str  # "process 1", "nginx"
    url: str
    proc: subprocess.Popen[bytes]
    port: int

    @property
    def pid(self) -> int:
        return self.proc.pid


@dataclass
class Cluster:
    """What ``start`` started. ``stop()`` ends them all (apps first, then nginx)."""

    apps: list[Child] = field(default_factory=list)
    nginx: Child | None = None

    @property
    def children(self) -> list[Child]:
        return [*self.apps, *([self.nginx] if self.nginx else [])]

    @property
    def url(self) -> str:
        """Where clients go: nginx when it runs, else the first process."""
        return self.nginx.url if self.nginx else self.apps[0].url

    def exited(self) -> Child | None:
        """The first child that is no longer running, if any."""
        return next((c for c in self.children if c.proc.poll() is not None), None)

    def stop(self, *, echo: Echo | None = None) -> dict[str, int]:
        """Stop everything gracefully; returns each child's exit code by name."""
        codes: dict[str, int] = {}
        _stop_group(self.apps, signal.SIGTERM, APP_STOP_TIMEOUT_S, codes, echo)
        if self.nginx is not None:
            _stop_group([self.nginx], signal.SIGQUIT, NGINX_STOP_TIMEOUT_S, codes, echo)
        return codes


def _stop_group(children: Sequence[Child], sig: signal.Signals, timeout_s: float, codes: dict[str, int],
                echo: Echo | None) -> None:
    for child in children:
        if child.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                child.proc.send_signal(sig)
    deadline = time.monotonic() + timeout_s
    for child in children:
        try:
            child.proc.wait(timeout=max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            if echo:
                echo(f"livesale cluster: {child.name} (pid {child.pid}) did not stop in {timeout_s:.0f} s; killed")
            with contextlib.suppress(ProcessLookupError):
                os.killpg(child.pid, signal.SIGKILL)  # its workers too: they share its process group
            child.proc.wait()
        codes[child.name] = child.proc.returncode
        _end_group(child.pid, timeout_s=GROUP_SWEEP_TIMEOUT_S)


#: How long what is left in a stopped child's process group gets after SIGTERM, before SIGKILL.
GROUP_SWEEP_TIMEOUT_S = 5.0


def _group_alive(pgid: int) -> bool:
    """Whether a process of group ``pgid`` still runs (zombies waiting for init do not count)."""
    proc = Path("/proc")
    if not proc.is_dir():  # pragma: no cover - not Linux: ask the kernel, zombies included
        try:
            os.killpg(pgid, 0)
        except ProcessLookupError:
            return False
        return True
    for stat in proc.glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if int(fields[2]) == pgid and fields[0] != "Z":
            return True
    return False


def _end_group(pgid: int, *, timeout_s: float) -> None:
    """Stop what is left in a stopped child's process group: the workers of a gunicorn master that
    was killed outright are orphaned there, still holding the port until they notice (up to their
    next heartbeat). SIGTERM, then SIGKILL; nothing to do after a graceful stop."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        if not _group_alive(pgid):
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pgid, sig)
        deadline = time.monotonic() + timeout_s
        while _group_alive(pgid) and time.monotonic() < deadline:
            time.sleep(0.05)


def _health(url: str) -> str:
    """``/healthz``'s answer: "200", another status with its body, or why there was none."""
    try:
        with urllib.request.urlopen(f"{url}/healthz", timeout=2) as response:
            return str(response.status)
    except urllib.error.HTTPError as exc:
        with exc:
            return f"{exc.code} {exc.read(200).decode(errors='replace').strip()}"
    except (OSError, http.client.HTTPException) as exc:
        return f"no answer ({exc})"


def _wait_healthy(child: Child, *, deadline: float, stopping: Callable[[], bool]) -> None:
    while (health := _health(child.url)) != "200":
        if child.proc.poll() is not None:
            raise ClusterError(f"{child.name} exited with code {child.proc.returncode} while starting")
        if stopping():
            return
        if time.monotonic() > deadline:
            # A 503 names what is down (the database or Redis).
            raise ClusterError(f"{child.name} did not get healthy at {child.url}/healthz: {health}")
        time.sleep(0.1)


def start(
    *,
    processes: int,
    base_port: int,
    host: str,
    database_url: str,
    redis_url: str,
    instance_path: str,
    message_queue: str = "",
    nginx_port: int | None = None,
    nginx_host: str | None = None,
    nginx_binary: str | None = None,
    nginx_worker_processes: str = "auto",
    worker_connections: int = 2000,
    env: Mapping[str, str] | None = None,
    output: Path | None = None,
    timeout_s: float = 60.0,
    migrate: bool = True,
    echo: Echo = _stderr,
    stopping: Callable[[], bool] = lambda: False,
) -> Cluster:
    """Migrate once, start ``processes`` gunicorns (one gevent worker each) on ``base_port + i``,
    then nginx on ``nginx_port`` if given; returns once each answers ``/healthz``.

    ``env``: the children's environment before the shared settings are added
    (default: this process's). ``output``: a file for the children's output
    (default: this process's). On any failure what was started is stopped.
    """
    check_options(processes=processes, base_port=base_port, nginx_port=nginx_port)
    nginx_host = nginx_host or host
    binary = find_nginx(nginx_binary) if nginx_port is not None else None
    ports = [base_port + i for i in range(processes)]
    for port in ports:
        check_port_free(host=host, port=port)
    conf = None
    if nginx_port is not None and binary is not None:
        check_port_free(host=nginx_host, port=nginx_port)
        upstreams = [_hostport(_connect_host(host), port) for port in ports]
        conf = write_nginx_config(instance_path=instance_path, host=nginx_host, port=nginx_port, upstreams=upstreams,
                                  worker_processes=nginx_worker_processes)
        check_nginx_config(binary=binary, conf=conf)

    if migrate:  # once, before any process: concurrent schema creation races
        schema.upgrade(database_url)

    child_env = {
        **(os.environ if env is None else env),
        # Several processes: Socket.IO events go through Redis to every process's viewers.
        **worker_env(instance_path=instance_path, database_url=database_url, redis_url=redis_url,
                     workers=processes, message_queue=message_queue or redis_url),
    }
    if nginx_port is not None:
        # Behind our nginx every client arrives from its address: trust its one X-Forwarded-For
        # hop, or the per-IP rate limits would count all visitors together.
        child_env.setdefault("LIVESALE_TRUSTED_PROXIES", "1")
    cluster = Cluster()
    try:
        for i, port in enumerate(ports, start=1):
            command = gunicorn_command(host=host, port=port, workers=1, worker_connections=worker_connections)
            proc = _spawn(command, env=child_env, output=output)
            cluster.apps.append(Child(name=f"process {i}", url=url_of(host, port), proc=proc, port=port))
        deadline = time.monotonic() + timeout_s
        for child in cluster.apps:
            _wait_healthy(child, deadline=deadline, stopping=stopping)
        if conf is not None and binary is not None and nginx_port is not None and not stopping():
            proc = _spawn(nginx_command(binary=binary, conf=conf), env=child_env, output=output)
            cluster.nginx = Child(name="nginx", url=url_of(nginx_host, nginx_port), proc=proc, port=nginx_port)
            _wait_healthy(cluster.nginx, deadline=time.monotonic() + timeout_s, stopping=stopping)
    except BaseException:
        cluster.stop(echo=echo)
        raise
    return cluster


def run(
    *,
    processes: int,
    base_port: int,
    host: str,
    database_url: str,
    redis_url: str,
    instance_path: str,
    message_queue: str = "",
    nginx_port: int | None = None,
    nginx_host: str | None = None,
    nginx_binary: str | None = None,
    worker_connections: int = 2000,
    echo: Echo = _stderr,
) -> int:
    """``livesale cluster``: start (see ``start``), print the addresses, then wait.

    Ctrl-C or SIGTERM stops everything gracefully (exit code 0). A child that
    exits on its own is reported and the rest are stopped (exit code 1).
    """
    stop_requested = threading.Event()

    def request_stop(signum: int, _frame: object) -> None:
        stop_requested.set()

    previous = {sig: signal.signal(sig, request_stop) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        raise_nofile()
        cluster = start(
            processes=processes, base_port=base_port, host=host, database_url=database_url, redis_url=redis_url,
            instance_path=instance_path, message_queue=message_queue, nginx_port=nginx_port, nginx_host=nginx_host,
            nginx_binary=nginx_binary, worker_connections=worker_connections, echo=echo,
            stopping=stop_requested.is_set,
        )
        for child in cluster.apps:
            echo(f"livesale cluster: {child.name} on {child.url}/ (pid {child.pid})")
        if cluster.nginx is not None:
            echo(f"livesale cluster: nginx on {cluster.nginx.url}/ (pid {cluster.nginx.pid}) in front of "
                 f"{len(cluster.apps)} process(es); its config and logs in {nginx_prefix(instance_path)}/")
        echo(f"livesale cluster: ready at {cluster.url}/ (database {_safe_url(database_url)}); Ctrl-C stops it")
        died = None
        while not stop_requested.wait(0.2):
            died = cluster.exited()
            if died is not None:
                echo(f"livesale cluster: {died.name} (pid {died.pid}) exited unexpectedly with code "
                     f"{died.proc.returncode}; stopping the rest")
                break
        if died is None:
            echo("livesale cluster: stopping")
        codes = cluster.stop(echo=echo)
        if died is not None:
            return 1
        bad = {name: code for name, code in codes.items() if code != 0}
        if bad:
            echo(f"livesale cluster: stopped, but not cleanly: {bad}")
            return 1
        echo("livesale cluster: stopped")
        return 0
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _safe_url(url: str) -> str:
    """A database URL without its password, for printing."""
    scheme, sep, rest = url.partition("://")
    if not sep or "@" not in rest:
        return url
    credentials, _, where = rest.rpartition("@")
    user = credentials.split(":", 1)[0]
    return f"{scheme}://{user}:***@{where}" if ":" in credentials else url
