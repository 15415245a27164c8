"""A sale session's audience figures (typed in from the platform) and what they make of its sales.

The platforms show a host 场观 (viewers: how many watched), 峰值在线 (peak
concurrent viewers), new followers, likes and comments; with the session's
sales they give the conversion figures officials report: orders per viewer
(看播转化率), sales per viewer (UV价值), GPM (sales per thousand viewers) and
the average order (客单价). A figure that cannot be known (no viewers given,
or zero of them; no orders) is ``None``: never a division error, never a
made-up 0 %.

The sales are the ones the session's report shows (``sessions.session_figures``):
the live totals while it is live; once it has ended, the figures that stand —
the persisted live count, or the platform's record once that is final
(``core.final``). Paid orders only: a refunded order is in neither the amount
nor the count.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Mapping
from decimal import ROUND_HALF_EVEN, Decimal
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite

from livesale.models import utcnow

from . import tables as t
from .auth import Actor
from .db import is_sqlite, read_transaction, write_transaction
from .errors import Conflict, InvalidInput, Unavailable
from .results import aggregate_session
from .sessions import SessionInfo, Store, manageable, session_figures
from .validation import InvalidFields, integer, reject_unknown, require_object

#: The figures a host may give, in the order pages show them.
AUDIENCE_FIELDS = ("viewers", "peak_viewers", "new_followers", "likes", "comments")
#: The conversion figures, in the order pages show them.
FIGURE_FIELDS = ("orders_per_viewer", "sales_per_viewer_fen", "gpm_fen", "average_order_fen")
#: The largest figure accepted: far above any stream's likes, inside a BIGINT and exact as a
#: JavaScript number (2**53), so every client reads back what it sent.
MAX_AUDIENCE = 10**12
_KNOWN = frozenset(AUDIENCE_FIELDS)


def divide_half_even(numerator: int, denominator: int) -> int:
    """``numerator / denominator`` rounded half to even, exactly (integers only, no floats).

    ``denominator`` must be positive; ``divmod`` floors, so a negative numerator rounds right too.
    """
    quotient, remainder = divmod(numerator, denominator)
    twice = 2 * remainder
    if twice > denominator or (twice == denominator and quotient % 2 == 1):
        quotient += 1
    return quotient


def audience_figures(*, amount_fen: int, orders: int, audience: Mapping[str, int | None]) -> dict[str, object]:
    """The conversion figures of a session that sold ``amount_fen`` in ``orders`` orders.

    ``orders_per_viewer`` is a ratio rounded half-even to 4 decimals (a float
    in JSON); the money figures are integer fen rounded half-even. GPM is
    ``amount × 1000 ÷ viewers``.
    """
    viewers = audience.get("viewers")
    per_viewer = viewers is not None and viewers > 0
    return {
        "orders_per_viewer": (
            float((Decimal(orders) / Decimal(viewers)).quantize(Decimal("0.0001"), rounding=ROUND_HALF_EVEN))
            if per_viewer else None
        ),
        "sales_per_viewer_fen": divide_half_even(amount_fen, viewers) if per_viewer else None,
        "gpm_fen": divide_half_even(amount_fen * 1000, viewers) if per_viewer else None,
        "average_order_fen": divide_half_even(amount_fen, orders) if orders > 0 else None,
    }


def load_audience(conn: sa.Connection, *, session_id: int) -> dict[str, int | None]:
    """The audience figures given for a session: every field, ``None`` where not given."""
    row = conn.execute(
        sa.select(*(t.session_audience.c[name] for name in AUDIENCE_FIELDS))
        .where(t.session_audience.c.session_id == session_id)
    ).first()
    return {name: (None if row is None else row._mapping[name]) for name in AUDIENCE_FIELDS}


def audience_view(audience: Mapping[str, int | None], *, amount_fen: int, orders: int) -> dict[str, Any]:
    """The API's shape: ``{"audience": {…five fields…}, "audience_figures": {…four figures…}}``."""
    return {
        "audience": {name: audience.get(name) for name in AUDIENCE_FIELDS},
        "audience_figures": audience_figures(amount_fen=amount_fen, orders=orders, audience=audience),
    }


# --- what a host sends --------------------------------------------------------------------------


def parse_audience(body: Any, *, all_errors: bool = False) -> dict[str, int | None]:
    """``{"viewers", "peak_viewers", "new_followers", "likes", "comments"}``, each optional: the fields
    given, an integer from 0 to ``MAX_AUDIENCE`` each, or ``None`` to clear one.

    Booleans, fractions, strings, negatives and unknown fields are refused, each by an
    ``InvalidInput`` naming its field; with ``all_errors`` every wrong field at once
    (``InvalidFields``, for a form).
    """
    body = require_object(body, "")
    errors: list[InvalidInput] = []
    out: dict[str, int | None] = {}
    try:
        reject_unknown(body, _KNOWN)
    except InvalidInput as exc:
        errors.append(exc)
    for name in AUDIENCE_FIELDS:
        if name not in body:
            continue
        value = body[name]
        try:
            out[name] = None if value is None else _count(value, name)
        except InvalidInput as exc:
            errors.append(exc)
    if errors:
        if all_errors and len(errors) > 1:
            raise InvalidFields(errors)
        raise errors[0]
    return out


def _count(value: Any, field: str) -> int:
    # The same refusals as every other integer of the API (booleans, fractions, strings), then
    # the bounds said in words a form can show: "not negative", "at most …".
    if isinstance(value, int) and not isinstance(value, bool):
        if value < 0:
            raise InvalidInput("must not be negative", field=field)
        if value > MAX_AUDIENCE:
            raise InvalidInput(f"must be at most {MAX_AUDIENCE}", field=field)
    return integer(value, field, minimum=0, maximum=MAX_AUDIENCE)


_FORM_NUMBER = re.compile(r"-?[0-9]+(\.[0-9]*)?\Z")
_FORM_GROUPING = str.maketrans("", "", ",_ '\u00a0\u2009\u202f\u3000\uff0c")


def from_form(form: Mapping[str, str]) -> dict[str, Any]:
    """A page form's text boxes as the body ``parse_audience`` reads: an empty box clears its figure;
    a number is a number (full-width digits and grouping commas allowed, "56,789"); anything else
    stays text, so the parse refuses it naming the box, exactly as the API would."""
    body: dict[str, Any] = {}
    for name in AUDIENCE_FIELDS:
        if name not in form:
            continue
        raw = unicodedata.normalize("NFKC", form[name]).strip().translate(_FORM_GROUPING)
        if not raw:
            body[name] = None
        elif _FORM_NUMBER.match(raw) and len(raw) <= 40:
            number = float(raw) if "." in raw else int(raw)
            body[name] = int(number) if isinstance(number, float) and number.is_integer() else number
        else:
            body[name] = form[name]
    return body


# --- storing and reading ------------------------------------------------------------------------


def set_audience(store: Store, *, actor: Actor, session_id: int, body: Any) -> dict[str, int | None]:
    """Give (or correct, or clear) a session's audience figures: the fields of ``body`` change, the others
    stay. Its host or an admin (officials: 403), while the session is live or after it ended (a
    scheduled session has had no audience yet: 409). One transaction; nothing is stored on any error.
    Returns the stored figures (all five)."""
    with write_transaction(store.db) as conn:
        info = manageable(conn, actor, session_id)  # 404, then 403: as every other change
        given = parse_audience(body)
        if info.status == "scheduled":
            raise Conflict("audience figures are given once the session has started", code="session_not_live")
        if given:
            _upsert(conn, session_id, given, actor)
        return load_audience(conn, session_id=session_id)


def _upsert(conn: sa.Connection, session_id: int, given: dict[str, int | None], actor: Actor) -> None:
    table = t.session_audience
    changes = {**given, "updated_by": actor.user_id, "updated_at": utcnow()}
    insert = (sqlite if is_sqlite(conn) else postgresql).insert(table)
    conn.execute(
        insert.values(session_id=session_id, **changes)
        .on_conflict_do_update(index_elements=[table.c.session_id], set_=changes)
    )


def sales_of(store: Store, *, info: SessionInfo) -> tuple[int, int]:
    """(amount_fen, orders) as the session's report shows them (see the module's docstring).

    A live session whose running totals cannot be read (Redis down) is summed from SQL: the
    same paid orders, so the figures are never made up and a GET does not fail for them.
    """
    try:
        figures = session_figures(store, info=info).figures
    except Unavailable:
        if info.status != "live":
            raise
        with read_transaction(store.db) as conn:
            figures = aggregate_session(conn, session_id=info.id)
    return figures.amount_fen, figures.orders


def session_audience(store: Store, *, info: SessionInfo, sales: tuple[int, int] | None = None) -> dict[str, Any]:
    """``audience_view`` of a session: its audience, and its figures on ``sales`` (amount_fen, orders),
    by default the ones its report shows."""
    with store.db.connect() as conn:
        audience = load_audience(conn, session_id=info.id)
    amount_fen, orders = sales if sales is not None else sales_of(store, info=info)
    return audience_view(audience, amount_fen=amount_fen, orders=orders)


def audiences_of(conn: sa.Connection, session_ids: list[int]) -> dict[int, dict[str, int | None]]:
    """``load_audience`` of several sessions in one query (for comparisons)."""
    out = {sid: dict.fromkeys(AUDIENCE_FIELDS) for sid in session_ids}
    if session_ids:
        a = t.session_audience
        rows = conn.execute(sa.select(a.c.session_id, *(a.c[n] for n in AUDIENCE_FIELDS))
                            .where(a.c.session_id.in_(session_ids)))
        for row in rows:
            out[row[0]] = dict(zip(AUDIENCE_FIELDS, row[1:], strict=True))
    return out
