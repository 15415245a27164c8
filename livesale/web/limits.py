"""Rate limits (Flask-Limiter), counted in the app's Redis so that every process shares them.

What is limited (``LIVESALE_RATE_LIMIT_*``, limit strings such as ``"20 per minute;200 per hour"``,
``"off"`` for none; read from ``app.config`` on each request):

* failed logins (``POST /login`` not answered with a redirect) per client IP and per user name;
* API requests answered 401 (missing or bad token) per client IP: over the limit the address's
  API requests are refused before any token lookup, except those with a token this process verified
  in the last few seconds or from a logged-in page;
* every API request per token (per client IP for the pages' cookie calls): generous, a runaway
  integration's brake, far above what one token posts in the ingest benchmark;
* the public widget (page, JSON, ``embed.js``) per client IP;
* signed pushes (``/hooks/orders/<hook_id>``) per hook with the per-token limit, and their 401s per
  client IP with the 401 limit (the hooks' API, ``hooks_api``, is limited as the API is).

``/healthz``, ``/livez``, ``/metrics``, static files and every other page are never limited; neither
is Socket.IO (its joins have their own per-connection limit). Fixed windows: one Lua call (INCR and
EXPIRE) per counted request, on the totals' own Redis connection pool (on a Redis Cluster, ``limits``'
own cluster client of the same nodes: ``redis_urls.limiter_storage``). Over a limit: 429 with
``Retry-After`` (seconds), the app's JSON error (``rate_limited``) for API/JSON clients, a short page
for browsers. If Redis does not answer, Flask-Limiter counts in each process's memory until Redis
answers again, and storage errors are logged, never turned into 500s.

The busy paths are kept lean: an API request whose token this process verified in the last seconds,
and every read of the public widget, skip Flask-Limiter's per-request machinery (about 0.2 ms) and are
counted against their one limit (the token's, the address's widget limit) in Flask-Limiter's storage
under the same key, in blocks of 1 % of the limit per Redis call (``Leases``; in this process's memory
while Redis does not answer); requests that nothing limits skip Flask-Limiter's hooks too (``_route``).

Client IP: the connection's address, or with ``LIVESALE_TRUSTED_PROXIES=N`` the address N proxies
back in ``X-Forwarded-For`` (werkzeug's ProxyFix, which also takes ``X-Forwarded-Proto``).
Leave it 0 unless a proxy you run sets those headers: otherwise anyone can pick their own address.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Callable
from functools import lru_cache, wraps
from typing import Any

from flask import Flask, Response, current_app, g, render_template_string, request
from flask_limiter import Limiter
from flask_limiter.errors import RateLimitExceeded
from limits import RateLimitItem, parse_many
from limits.storage import MemoryStorage
from limits.strategies import FixedWindowRateLimiter
from werkzeug.exceptions import TooManyRequests
from werkzeug.middleware.proxy_fix import ProxyFix

from livesale import redis_urls
from livesale.config import ConfigError
from livesale.core.auth import hash_token
from livesale.extensions import backend

from . import auth
from .errors import error_page, error_response, wants_json
from .login import current_actor

log = logging.getLogger(__name__)

EXTENSION = "livesale.limiter"
LEASES = "livesale.limiter.leases"
KEY_PREFIX = "livesale"
SETTINGS = ("RATE_LIMIT_LOGIN_IP", "RATE_LIMIT_LOGIN_NAME", "RATE_LIMIT_BAD_TOKEN", "RATE_LIMIT_API_TOKEN",
            "RATE_LIMIT_WIDGET")
#: Never limited: probes and metrics (nginx keeps /metrics private). Static files: Flask-Limiter never does.
EXEMPT_VIEWS = ("healthz", "livez", "metrics_view")
_OFF = {"", "off", "none", "0"}
TOKEN_SCOPE = "api-token"
WIDGET_SCOPE = "widget"
#: Blueprints limited as the API (bearer tokens or the pages' cookie calls).
API_BLUEPRINTS = ("api", "hooks_api", "imports_api")

#: The widget's 429 page (people's pages get web.errors' page).
PAGE = """<!doctype html>
<html lang="{{ html_lang() }}" dir="{{ text_dir() }}">
<head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>429 · livesale</title>
<link rel="stylesheet" href="{{ url_for('static', filename='css/app.css') }}"></head>
<body><main><section class="card narrow">
<h1>{{ _("Too many requests") }}</h1><p>{{ _("Please try again in %(n)s s.", n=retry_after) }}</p>
<p><a href="{{ url_for('index') }}">livesale</a></p>
</section></main></body></html>
"""


class LeanLimitExceeded(TooManyRequests):
    """A limit breached on the lean path (``_brake``): the token's or the widget's."""

    def __init__(self, item: RateLimitItem, args: tuple[str, ...]):
        super().__init__(description=str(item))
        self.item = item
        self.args_ = args


def client_ip() -> str:
    return request.remote_addr or "unknown"


def _bearer() -> str:
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    return token.strip() if scheme.lower() == "bearer" else ""


def _token_key() -> str:
    """The token (hashed: no secret goes to Redis), or the client IP for calls without one."""
    token = _bearer()
    return "t:" + hash_token(token)[:32] if token else "ip:" + client_ip()


def _hook_key() -> str:
    """A push's hook (its id is in the path; the signature is checked by the view)."""
    return "h:" + str((request.view_args or {}).get("hook_id", ""))[:64]


def _login_name() -> str:
    return "n:" + (request.form.get("name") or "").strip().lower()[:64]


def _not_login_form() -> bool:
    return request.endpoint != "login.login"


def _authenticated() -> bool:
    """A token this process verified in the last seconds, or a logged-in page (no query for ingestion)."""
    token = _bearer()
    if token:
        return auth.recently_valid(hash_token(token))
    return current_app.config["SESSION_COOKIE_NAME"] in request.cookies and current_actor() is not None


def _failed_login(response: Response) -> bool:
    return response.status_code not in (301, 302, 303, 429)


def _unauthorized(response: Response) -> bool:
    return response.status_code == 401


def _route() -> None:
    """Which way this request goes, decided once, first: ``g.limit_path``.

    ``skip``: nothing limits it (pages, probes, static files): Flask-Limiter's hooks do not run.
    ``fast``: one limit and one counter, ``g.limit_rule`` (setting, key): an API request with a token
    this process verified recently (ingestion), or a read of the public widget; only ``_brake``
    runs, one Redis call per block. ``full``: Flask-Limiter's hooks (login form, pushes, other API
    requests: the 401 limit and the token limit).
    """
    blueprint = request.blueprint
    if blueprint in API_BLUEPRINTS:
        token = _bearer()
        token_hash = hash_token(token) if token else ""
        if token_hash and auth.recently_valid(token_hash):
            g.limit_path = "fast"
            g.limit_rule = ("RATE_LIMIT_API_TOKEN", (KEY_PREFIX, "t:" + token_hash[:32], TOKEN_SCOPE))
        else:
            g.limit_path = "full"
    elif blueprint == "widget":
        if request.method in ("GET", "HEAD"):
            g.limit_path = "fast"
            g.limit_rule = ("RATE_LIMIT_WIDGET", (KEY_PREFIX, client_ip(), WIDGET_SCOPE))
        else:
            g.limit_path = "skip"
    elif blueprint == "hooks" or (request.endpoint == "login.login" and request.method == "POST"):
        g.limit_path = "full"
    else:
        g.limit_path = "skip"


def _gate_before(hook: Callable[[], Any]) -> Callable[[], Any]:
    @wraps(hook)
    def gated() -> Any:
        return hook() if g.get("limit_path", "full") == "full" else None

    return gated


def _gate_after(hook: Callable[[Any], Any]) -> Callable[[Any], Any]:
    @wraps(hook)
    def gated(arg: Any) -> Any:
        return hook(arg) if g.get("limit_path", "full") == "full" else arg

    return gated


def _limit_string(value: Any) -> str:
    """The limit string of a setting ("" for none)."""
    value = str(value or "").strip()
    return "" if value.lower() in _OFF else value


@lru_cache(maxsize=32)
def _items(value: str) -> tuple[RateLimitItem, ...]:
    return tuple(parse_many(value)) if value else ()


def _setting(name: str) -> Callable[[], str]:
    """The limit as ``app.config[name]`` says at request time (a test may change one on an existing app)."""
    return lambda: _limit_string(current_app.config[name])


def _check(app: Flask, name: str) -> None:
    value = _limit_string(app.config[name])
    try:
        _items(value)
    except ValueError as exc:
        raise ConfigError(f"LIVESALE_{name} is not a rate limit ({value!r}): {exc}") from None


class Leases:
    """The per-token limit counted in blocks: a process takes ``amount // 100`` hits of a window from
    Redis in one INCRBY and spends them locally, so a token posting thousands of orders a second costs
    one Redis call per block instead of one per request. One block is taken at a time per key; the
    requests that arrive meanwhile wait for it (a greenlet switch, not a Redis call each: under load
    about one request in five arrived then) and spend it, or, when it is spent, refused or late
    (``TAKE_WAIT_S``), count themselves one by one. Exact for small limits (blocks of one:
    the ``limits`` library's own fixed-window hit); for large ones a process may refuse up to a block
    early (the hits it holds are counted) or, across a window's end, serve up to a block late.
    """

    #: How long a request waits for the block another one is taking before counting itself in Redis.
    TAKE_WAIT_S = 0.5

    def __init__(self) -> None:
        self._held: dict[str, list[Any]] = {}  # Redis key -> [local expiry (monotonic), hits left]
        self._taking: dict[str, threading.Event] = {}  # keys whose block is being taken -> set when done
        self._memory: FixedWindowRateLimiter | None = None  # made when Redis first fails

    def take(self, limiter: Limiter, item: RateLimitItem, args: tuple[str, ...]) -> bool:
        key = item.key_for(*args)
        waited = False
        while True:
            now = time.monotonic()
            held = self._held.get(key)
            if held is not None and held[0] > now and held[1] > 0:
                held[1] -= 1
                return True
            taking = self._taking.get(key)
            if taking is None or waited:
                break
            taking.wait(self.TAKE_WAIT_S)  # the block on its way, then spend from it
            waited = True
        try:
            return self._take_block(limiter, item, key, now)
        except Exception as exc:  # Redis does not answer: count here until it does (as Flask-Limiter does)
            log.warning("rate limit storage unavailable (%s); counting in this process", type(exc).__name__)
            if self._memory is None:
                self._memory = FixedWindowRateLimiter(MemoryStorage())
            return self._memory.hit(item, *args)

    def _take_block(self, limiter: Limiter, item: RateLimitItem, key: str, now: float) -> bool:
        expiry = item.get_expiry()
        block = max(1, item.amount // 100)
        if block == 1 or key in self._taking:
            return bool(limiter.storage.incr(key, expiry, amount=1) <= item.amount)
        done = self._taking[key] = threading.Event()
        try:
            total = limiter.storage.incr(key, expiry, amount=block)  # the Lua INCRBY (+ EXPIRE when new)
            granted = min(block, item.amount - (total - block))
            if granted <= 0:
                return False
            if len(self._held) > 10_000:
                self._held.clear()
            self._held[key] = [now + expiry, granted - 1]
            return True
        finally:
            self._taking.pop(key, None)
            done.set()  # the waiting requests spend the block (or take the next one)


def _brake() -> None:
    """The one limit of a request on the fast path: Flask-Limiter's storage and key, counted in blocks."""
    if g.get("limit_path") != "fast":
        return
    limiter: Limiter = current_app.extensions[EXTENSION]
    leases: Leases = current_app.extensions[LEASES]
    setting, args = g.limit_rule
    for item in _items(_limit_string(current_app.config[setting])):
        if not leases.take(limiter, item, args):
            raise LeanLimitExceeded(item, args)


def retry_after(limiter: Limiter, exc: TooManyRequests) -> int:
    """Seconds until the breached window ends (at least 1; Redis keeps whole-second TTLs)."""
    try:
        if isinstance(exc, LeanLimitExceeded):
            return max(1, math.ceil(limiter.limiter.get_window_stats(exc.item, *exc.args_)[0] + 1 - time.time()))
        breached = limiter.current_limit
        if breached is not None:
            return max(1, math.ceil(breached.reset_at - time.time()))
    except Exception:  # the storage failed between the check and now: the whole window
        pass
    item = exc.item if isinstance(exc, LeanLimitExceeded) else exc.limit.limit  # type: ignore[attr-defined]
    return max(1, item.get_expiry())


def init_app(app: Flask) -> None:
    proxies = int(app.config.get("TRUSTED_PROXIES") or 0)
    if proxies > 0:
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=proxies, x_proto=proxies)  # type: ignore[method-assign]
    for name in SETTINGS:
        _check(app, name)
    app.register_error_handler(RateLimitExceeded, _too_many_requests)
    app.register_error_handler(LeanLimitExceeded, _too_many_requests)
    if not app.config["RATE_LIMIT_ENABLED"]:
        return

    # The totals' Redis: its pool (one server, Sentinel's master), or limits' own cluster client.
    uri, options = redis_urls.limiter_storage(app.config["REDIS_URL"], backend.store_of(app).totals.redis)
    limiter = Limiter(
        client_ip,
        storage_uri=uri,
        storage_options=options,
        strategy="fixed-window",
        headers_enabled=False,  # X-RateLimit-* would cost two more Redis calls per request
        swallow_errors=True,
        in_memory_fallback_enabled=True,
        key_prefix=KEY_PREFIX,
    )
    # One limiter per app (tests build several apps; Flask-Limiter keeps its storage on the instance).
    app.extensions[EXTENSION] = limiter
    app.extensions[LEASES] = Leases()
    blueprints = app.blueprints
    # Shared limits: one count per key across all the blueprint's endpoints.
    limiter.shared_limit(_setting("RATE_LIMIT_LOGIN_IP"), "login-ip", methods=["POST"], exempt_when=_not_login_form,
                         deduct_when=_failed_login)(blueprints["login"])
    limiter.shared_limit(_setting("RATE_LIMIT_LOGIN_NAME"), "login-name", key_func=_login_name, methods=["POST"],
                         exempt_when=_not_login_form, deduct_when=_failed_login)(blueprints["login"])
    for name in API_BLUEPRINTS:
        limiter.shared_limit(_setting("RATE_LIMIT_BAD_TOKEN"), "api-bad-token", exempt_when=_authenticated,
                             deduct_when=_unauthorized)(blueprints[name])
        limiter.shared_limit(_setting("RATE_LIMIT_API_TOKEN"), TOKEN_SCOPE, key_func=_token_key)(blueprints[name])
    limiter.shared_limit(_setting("RATE_LIMIT_BAD_TOKEN"), "hook-bad-signature", methods=["POST"],
                         deduct_when=_unauthorized)(blueprints["hooks"])
    limiter.shared_limit(_setting("RATE_LIMIT_API_TOKEN"), "hook", key_func=_hook_key, methods=["POST"])(
        blueprints["hooks"])
    for name in EXEMPT_VIEWS:
        limiter.exempt(app.view_functions[name])
    app.before_request(_route)
    # Flask-Limiter's hooks cost ~0.1 ms per request even with nothing to count: they run only on
    # the "full" path (found as the hooks init_app adds, not by their private names).
    hooks = (app.before_request_funcs, app.after_request_funcs, app.teardown_request_funcs)
    before = [list(funcs.get(None, [])) for funcs in hooks]
    limiter.init_app(app)
    for funcs, known, gate in zip(hooks, before, (_gate_before, _gate_after, _gate_after), strict=True):
        funcs[None] = [f if f in known else gate(f) for f in funcs[None]]
    app.before_request(_brake)


def _too_many_requests(exc: TooManyRequests) -> Response:
    seconds = retry_after(current_app.extensions[EXTENSION], exc)
    if wants_json() or request.path.endswith(".json"):
        response = error_response(429, f"too many requests ({exc.description}); retry in {seconds} s")
    elif request.blueprint == "widget":  # inside partners' pages: a bare page that sets no cookie
        html = render_template_string(PAGE, retry_after=seconds)
        response = Response(html, status=429, mimetype="text/html")
    else:  # people: the site's error page (web.errors), like every other error
        response = error_page(429, retry_after=seconds)
    response.headers["Retry-After"] = str(seconds)
    response.headers["Cache-Control"] = "no-store"
    if request.blueprint == "widget":  # partners' pages read the widget's answers cross-origin
        response.headers["Access-Control-Allow-Origin"] = "*"
        g.pop("lang_choice", None)  # and it leaves no cookie there
    return response
