"""What an export's row says, once read: one order line of a platform, in livesale's terms."""

from __future__ import annotations

import dataclasses
from datetime import datetime

#: Platforms whose exports can be imported (``generic``: livesale's own column names).
IMPORT_PLATFORMS = ("douyin", "kuaishou", "channels", "taobao", "generic")

#: What a line's status words mean.
PAID, REFUNDED, NOT_PAID = "paid", "refunded", "not_paid"


@dataclasses.dataclass(frozen=True, slots=True)
class ExportLine:
    """One row of a platform's order export, read and normalised (not yet matched to a session).

    ``row`` is the row number as a spreadsheet shows it (the header is row 1).
    ``line_id`` is the platform's own line id, without the ``<platform>:`` prefix.
    ``status`` is ``paid`` (paid or later: shipped, completed…), ``refunded`` (paid, then refunded
    or cancelled after payment) or ``not_paid`` (never paid: skipped by the import).
    ``paid_at`` is aware (the export's local time read in the session's time zone), ``None`` when
    the line was never paid.
    """

    row: int
    line_id: str
    order_ref: str
    product_name: str
    spec: str
    merchant_code: str
    quantity: int
    amount_fen: int
    paid_at: datetime | None
    province: str
    city: str
    status: str
