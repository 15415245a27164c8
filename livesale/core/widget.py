"""The public widget of a session: who may see it, what it shows, and its settings.

A widget is reached by its secret key alone, so what it shows is public:
the session's title, totals, goal, products and the latest orders as
product and quantity — no buyer region, no buyer, no order id. The owner
turns it on or off, rotates the key (the old one stops at once), lists the
origins allowed to embed it and sets a celebration milestone.
"""

from __future__ import annotations

import dataclasses
import re
import secrets
from typing import Any

import sqlalchemy as sa

from . import tables as t
from .auth import Actor
from .db import write_transaction
from .errors import InvalidInput, NotFound
from .sessions import SessionInfo, Store, load_session, manageable, read_widget_session, session_totals
from .totals import FeedEntry
from .validation import MAX_GOAL_FEN

THEMES = ("light", "dark", "transparent")
LANGS = ("zh", "ug", "en")
PARTS = ("total", "goal", "orders", "latest", "products")
DEFAULT_PARTS = ("total", "goal", "orders")
_ACCENT_RE = re.compile(r"#?([0-9a-fA-F]{3}|[0-9a-fA-F]{6})\Z")
_KEY_RE = re.compile(r"[A-Za-z0-9_-]{16,64}\Z")
_ORIGIN_RE = re.compile(r"https?://[A-Za-z0-9.-]+(:[0-9]{1,5})?\Z")
MAX_ORIGINS = 20


def room_of_widget(info: SessionInfo) -> str:
    """The Socket.IO room of a widget's viewers: a new key is a new room."""
    return f"w:{info.id}:{info.widget_key}"


def widget_session(store: Store, *, key: str) -> SessionInfo:
    """The session whose enabled widget has this key; NotFound otherwise (a wrong, old or disabled key)."""
    if not isinstance(key, str) or not _KEY_RE.match(key):
        raise NotFound("no widget with this key")
    info = read_widget_session(store, key=key)
    if info is None:
        raise NotFound("no widget with this key")
    return info


def public_totals(store: Store, *, info: SessionInfo) -> dict[str, Any]:
    """What a widget shows: the totals without buyer regions, with product names."""
    return public_view(info, session_totals(store, info=info))


def public_view(info: SessionInfo, totals: dict[str, Any]) -> dict[str, Any]:
    """The public part of a session's totals (as ``session_totals`` gives them)."""
    names = {p.sku: p.name for p in info.products}
    return {
        "title": info.title,
        "status": info.status,
        "version": totals["version"],
        "amount_fen": totals["amount_fen"],
        "orders": totals["orders"],
        "items": totals["items"],
        "goal_fen": info.goal_fen,
        "currency": info.currency,
        "milestone_fen": info.widget_milestone_fen,
        "products": [
            {"name": names.get(sku, sku), "quantity": fig["quantity"], "amount_fen": fig["amount_fen"]}
            for sku, fig in totals["by_product"].items()
        ],
        "updated_at": totals["updated_at"],
    }


def public_feed(info: SessionInfo, entries: list[FeedEntry]) -> list[dict[str, Any]]:
    """The latest orders as a widget may show them: product and quantity, nothing about the buyer."""
    names = {p.sku: p.name for p in info.products}
    return [{"name": names.get(e.sku, e.sku), "quantity": e.quantity, "at_ms": e.at_ms} for e in entries]


@dataclasses.dataclass(frozen=True, slots=True)
class WidgetOptions:
    """A widget's look, from its URL; anything unknown or malformed falls back to the default."""

    theme: str = "light"
    lang: str | None = None
    parts: tuple[str, ...] = DEFAULT_PARTS
    accent: str | None = None


def parse_options(args: dict[str, str]) -> WidgetOptions:
    theme = args.get("theme", "")
    lang = args.get("lang", "")
    wanted = [p.strip() for p in args.get("show", "").split(",") if p.strip()]
    parts = tuple(p for p in PARTS if p in wanted) or DEFAULT_PARTS
    accent = _ACCENT_RE.match(args.get("accent", "").strip())
    return WidgetOptions(
        theme=theme if theme in THEMES else "light",
        lang=lang if lang in LANGS else None,
        parts=parts,
        accent=("#" + accent.group(1).lower()) if accent else None,
    )


def frame_ancestors(info: SessionInfo) -> str:
    """The CSP ``frame-ancestors`` source list: the session's origins, or any (``*``)."""
    origins = info.widget_origins.split()
    return " ".join(origins) if origins else "*"


def _parse_origins(value: Any) -> str:
    if not isinstance(value, list) or len(value) > MAX_ORIGINS:
        raise InvalidInput(f"must be a list of at most {MAX_ORIGINS} origins", field="origins")
    out = []
    for i, origin in enumerate(value):
        if not isinstance(origin, str) or not _ORIGIN_RE.match(origin.strip().rstrip("/")):
            raise InvalidInput("must be an origin like https://news.example.cn", field=f"origins[{i}]")
        out.append(origin.strip().rstrip("/").lower())
    return " ".join(dict.fromkeys(out))


def update_widget(store: Store, *, actor: Actor, session_id: int, data: Any) -> tuple[SessionInfo, SessionInfo]:
    """Change ``enabled``, ``origins`` or ``milestone_fen``; returns (before, after)."""
    if not isinstance(data, dict):
        raise InvalidInput("must be a JSON object", field="body")
    unknown = set(data) - {"enabled", "origins", "milestone_fen"}
    if unknown:
        raise InvalidInput("unknown field", field=sorted(unknown)[0])
    values: dict[str, Any] = {}
    if "enabled" in data:
        if not isinstance(data["enabled"], bool):
            raise InvalidInput("must be true or false", field="enabled")
        values["widget_enabled"] = data["enabled"]
    if "origins" in data:
        values["widget_origins"] = _parse_origins(data["origins"])
    if "milestone_fen" in data:
        milestone = data["milestone_fen"]
        if type(milestone) is not int or not 0 <= milestone <= MAX_GOAL_FEN:
            raise InvalidInput(f"must be an integer from 0 to {MAX_GOAL_FEN}", field="milestone_fen")
        values["widget_milestone_fen"] = milestone
    with write_transaction(store.db) as conn:
        before = manageable(conn, actor, session_id)
        if values:
            conn.execute(sa.update(t.live_sessions).where(t.live_sessions.c.id == session_id).values(**values))
        return before, load_session(conn, session_id=session_id)


def rotate_key(store: Store, *, actor: Actor, session_id: int) -> tuple[SessionInfo, SessionInfo]:
    """A new widget key; the old one stops working at once. Returns (before, after)."""
    with write_transaction(store.db) as conn:
        before = manageable(conn, actor, session_id)
        conn.execute(
            sa.update(t.live_sessions)
            .where(t.live_sessions.c.id == session_id)
            .values(widget_key=secrets.token_urlsafe(24))
        )
        return before, load_session(conn, session_id=session_id)
