"""Every CSV a person downloads from the pages is safe to open in Excel or WPS.

Text from buyers, hosts and platforms (product names, regions, channels, external ids, titles) that a
spreadsheet would run as a formula comes out quoted as text; amounts stay numbers, negative ones too.
(``livesale export`` has the same guard: tests/core/test_export.py.)
"""

from __future__ import annotations

import csv
import io
from typing import Any

from tests.conftest import APRICOT_SESSION, Api, Users
from tests.web.test_pages import login

HOSTILE = ["=cmd|' /C calc'!A0", "+1+1", "-2+3", "@SUM(1+1)", "=HYPERLINK(\"http://x\")"]
DANGEROUS_STARTS = ("=", "+", "-", "@", "\t", "\r")


def rows_of(body: bytes) -> list[list[str]]:
    assert body.startswith("\ufeff".encode()), "a BOM, for Excel on Chinese Windows"
    return list(csv.reader(io.StringIO(body.decode("utf-8-sig"), newline="")))


def is_number(cell: str) -> bool:
    try:
        float(cell)
    except ValueError:
        return False
    return True


def dangerous_cells(rows: list[list[str]]) -> list[str]:
    """Cells a spreadsheet would run: a formula start that is not simply a number."""
    return [cell for row in rows for cell in row if cell[:1] in DANGEROUS_STARTS and not is_number(cell)]


def hostile_session(api: Api, title: str, quantities: list[int]) -> int:
    products = [{"sku": f"H{i}", "name": name, "unit": name, "unit_price_fen": 1000 + i, "stock": None}
                for i, name in enumerate(HOSTILE)]
    created = api.post("/api/v1/sessions", json={**APRICOT_SESSION, "title": title, "village": HOSTILE[0],
                                                 "products": products})
    assert created.status_code == 201, created.json
    sid = created.json["id"]
    assert api.post(f"/api/v1/sessions/{sid}/start").status_code == 200
    orders = [{"sku": f"H{i % len(HOSTILE)}", "quantity": q, "buyer_region": HOSTILE[i % len(HOSTILE)],
               "channel": HOSTILE[(i + 1) % len(HOSTILE)][:32], "external_id": f"{HOSTILE[i % len(HOSTILE)]}#{i}"}
              for i, q in enumerate(quantities)]
    recorded = api.post(f"/api/v1/sessions/{sid}/orders", json={"orders": orders})
    assert recorded.status_code == 201, recorded.json
    return sid


def test_the_orders_and_comparison_csvs_quote_formulas_and_keep_numbers(
    client: Any, users: Users, host_api: Api
) -> None:
    big = hostile_session(host_api, HOSTILE[0], [3, 2, 5, 1, 4])
    small = hostile_session(host_api, HOSTILE[2], [1])
    login(client, "host")

    orders = client.get(f"/sessions/{big}/orders.csv")
    assert orders.status_code == 200, orders.text
    rows = rows_of(orders.data)
    assert len(rows) == 1 + 5
    assert not dangerous_cells(rows), dangerous_cells(rows)
    cells = {cell for row in rows[1:] for cell in row}
    for text in HOSTILE:  # names, regions, channels: kept, as text
        assert "'" + text in cells, text
    assert "'" + f"{HOSTILE[0]}#0" in cells  # an external id

    comparison = client.get(f"/compare.csv?ids={big},{small}")
    assert comparison.status_code == 200, comparison.text
    rows = rows_of(comparison.data)
    assert not dangerous_cells(rows), dangerous_cells(rows)
    assert any(cell.startswith("'" + HOSTILE[0]) or cell.startswith("#") and HOSTILE[0] in cell for cell in rows[0])
    # The second session sold less: its differences are negative numbers, not quoted text.
    amount_row = rows[1]
    negative = [cell for cell in amount_row if cell.startswith("-") or cell.startswith("'-")]
    assert negative and all(is_number(cell) for cell in negative), amount_row
