"""Who is calling the API: a bearer token, resolved by the core."""

from __future__ import annotations

import time
from collections.abc import Callable
from functools import wraps
from typing import Any, TypeVar

from flask import g, request
from flask_wtf.csrf import validate_csrf
from wtforms import ValidationError

from livesale.core.auth import Actor, actor_for_token, hash_token
from livesale.core.errors import Forbidden, Unauthorized
from livesale.extensions import backend

from .login import current_actor

F = TypeVar("F", bound=Callable[..., Any])

# Token lookups are cached briefly per process: an order POST should not
# pay for a second query. A revoked token stops working within this time.
TOKEN_CACHE_S = 5.0
_cache: dict[str, tuple[float, Actor]] = {}


def actor_from_request() -> Actor:
    """The caller: a bearer token, else (for the app's own pages) the login cookie.

    A cookie is sent by the browser on its own, so a request that changes
    something with it must also carry the page's CSRF token (``X-CSRFToken``).
    """
    header = request.headers.get("Authorization", "")
    if not header:
        actor = actor_from_cookie()
        if actor is not None:
            return actor
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Unauthorized("send an API token: Authorization: Bearer <token>")
    return actor_for_bearer(token.strip())


def actor_from_cookie() -> Actor | None:
    actor = current_actor()
    if actor is not None and request.method not in ("GET", "HEAD", "OPTIONS"):
        try:
            validate_csrf(request.headers.get("X-CSRFToken", ""))
        except ValidationError:
            raise Forbidden("missing or expired CSRF token; reload the page", code="csrf") from None
    return actor


def actor_for_bearer(token: str) -> Actor:
    """The actor of an API token (cached for ``TOKEN_CACHE_S``)."""
    key = hash_token(token)
    now = time.monotonic()
    hit = _cache.get(key)
    if hit is not None and hit[0] > now:
        return hit[1]
    with backend.store.db.connect() as conn:
        actor = actor_for_token(conn, token=token)
    if actor is None:
        _cache.pop(key, None)
        raise Unauthorized("the API token is not valid")
    if len(_cache) > 10_000:
        _cache.clear()
    _cache[key] = (now + TOKEN_CACHE_S, actor)
    return actor


def recently_valid(token_hash: str) -> bool:
    """Whether this process found the token of ``hash_token(token)`` valid within ``TOKEN_CACHE_S``
    (no query; for the rate limiter)."""
    hit = _cache.get(token_hash)
    return hit is not None and hit[0] > time.monotonic()


def forget_cached_tokens() -> None:
    _cache.clear()


def api_auth(view: F) -> F:
    """Require a valid token; the actor is in ``g.actor``."""

    @wraps(view)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        g.actor = actor_from_request()
        return view(*args, **kwargs)

    return wrapper  # type: ignore[return-value]
