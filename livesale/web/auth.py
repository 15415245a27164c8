"""Who is calling the API: a bearer token, resolved by the core."""

from __future__ import annotations

import time
from collections.abc import Callable
from functools import wraps
from typing import Any, TypeVar

from flask import g, request

from livesale.core.auth import Actor, actor_for_token, hash_token
from livesale.core.errors import Unauthorized
from livesale.extensions import backend

F = TypeVar("F", bound=Callable[..., Any])

# Token lookups are cached briefly per process: an order POST should not
# pay for a second query. A revoked token stops working within this time.
TOKEN_CACHE_S = 5.0
_cache: dict[str, tuple[float, Actor]] = {}


def actor_from_request() -> Actor:
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Unauthorized("send an API token: Authorization: Bearer <token>")
    token = token.strip()
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


def forget_cached_tokens() -> None:
    _cache.clear()


def api_auth(view: F) -> F:
    """Require a valid token; the actor is in ``g.actor``."""

    @wraps(view)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        g.actor = actor_from_request()
        return view(*args, **kwargs)

    return wrapper  # type: ignore[return-value]
