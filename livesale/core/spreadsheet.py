"""CSV the way a spreadsheet should read it: shared by the review exports and ``livesale export``.

Excel on Chinese Windows reads a CSV as UTF-8 only after a byte-order mark,
and it runs a cell that starts with ``=``, ``+``, ``-`` or ``@`` (or a tab or
carriage return before one) as a formula: text from buyers and hosts (a
product name, a region) must never reach it that way.
"""

from __future__ import annotations

import csv
import io
from decimal import Decimal
from typing import Any

#: Excel on Chinese Windows reads a CSV as UTF-8 only after this mark.
BOM = "\ufeff"

_FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def spreadsheet_cell(value: Any) -> Any:
    """``value``, with text that a spreadsheet would run as a formula quoted as text (a leading ``'``).

    Only text is touched: numbers (negative ones included) stay numbers.
    """
    if isinstance(value, str) and value[:1] in _FORMULA_STARTS:
        return "'" + value
    return value


def csv_line(values: list[Any]) -> str:
    """One CSV record (``\\r\\n`` ended), ``None`` as an empty cell, every text cell guarded."""
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="\r\n").writerow(["" if v is None else spreadsheet_cell(v) for v in values])
    return buffer.getvalue()


def yuan_text(fen: int) -> str:
    """Integer fen as exact yuan with two decimals: ``-1205`` → ``"-12.05"``."""
    sign = "-" if fen < 0 else ""
    return f"{sign}{abs(fen) // 100}.{abs(fen) % 100:02d}"


def yuan(fen: int) -> Decimal:
    """Integer fen as an exact ``Decimal`` of yuan (a number, so the formula guard leaves it alone)."""
    return Decimal(fen).scaleb(-2)
