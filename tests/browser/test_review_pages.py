"""An official reviews sessions in a real browser: filter the list, open a report, compare three,
download the CSV; a host-only page is refused; without a login every page goes to the login page."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import Users
from tests.web.test_compare_api import run_session

PASSWORD = "correct horse battery"


@pytest.fixture
def server(server_factory: Any) -> Any:
    return server_factory()


@pytest.fixture
def context(browser: Any, server: Any) -> Iterator[Any]:
    context = browser.new_context(locale="zh-CN", viewport={"width": 1280, "height": 900}, accept_downloads=True)
    context.set_default_timeout(10_000)
    yield context
    context.close()


@pytest.fixture
def sessions(users: Users) -> list[tuple[int, list[dict]]]:
    host = users.api("host")
    users.token("official")
    return [
        run_session(host, seed=21, orders=30, refunds=2, end=True, title="六月杏子", village="疏附县"),
        run_session(host, seed=22, orders=45, refunds=1, end=True, title="七月杏子", village="疏附县"),
        run_session(host, seed=23, orders=20, refunds=0, end=True, title="吐鲁番葡萄", village="吐鲁番"),
        run_session(host, seed=24, orders=10, refunds=0, end=False, title="今天杏子", village="疏附县"),
    ]


def total(paid: list[dict]) -> int:
    return sum(o["amount_fen"] for o in paid)


def test_an_official_filters_reports_compares_and_downloads(
    context: Any, server: Any, sessions: list[tuple[int, list[dict]]], tmp_path: Path
) -> None:
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.goto(f"{server.url}/sessions")
    page.wait_for_url("**/login**")  # not logged in: the login page
    page.fill('input[name="name"]', "official")
    page.fill('input[name="password"]', PASSWORD)
    page.click('button[type="submit"]')
    page.wait_for_url(f"{server.url}/sessions")
    assert page.locator("#sessions tbody tr[data-session]").count() == 4
    # Every row draws its sparkline (ECharts, SVG).
    page.wait_for_function("() => document.querySelectorAll('#sessions .spark svg').length === 4")

    # Filter by village: three sessions of 疏附县.
    page.fill('input[name="village"]', "疏附县")
    page.click('.filters button[type="submit"]')
    page.wait_for_url("**village=**")
    ids = [int(x) for x in page.locator("#sessions tbody tr[data-session]").evaluate_all(
        "rows => rows.map(r => r.dataset.session)")]
    assert sorted(ids) == sorted([sessions[0][0], sessions[1][0], sessions[3][0]])

    # A report: figures, charts and the orders with refunds marked.
    first_id, first_paid = sessions[0]
    page.click(f'#sessions tr[data-session="{first_id}"] a')
    page.wait_for_url(f"{server.url}/sessions/{first_id}")
    assert page.locator('[data-figure="amount_fen"]').get_attribute("data-value") == str(total(first_paid))
    page.wait_for_function("() => document.querySelectorAll('.rchart svg').length >= 4")
    assert page.locator("#orders tr.refunded").count() == 2

    # The orders CSV: a BOM, then every order; the paid ones sum to the total.
    with page.expect_download() as download:
        page.click("#orders-csv")
    path = tmp_path / "orders.csv"
    download.value.save_as(path)
    raw = path.read_bytes()
    assert raw.startswith(b"\xef\xbb\xbf")
    rows = list(csv.reader(io.StringIO(raw.decode("utf-8-sig"))))
    assert len(rows) == 1 + 30
    header = rows[0]
    amount, status = header.index("金额（元）"), header.index("状态")
    assert sum(round(float(r[amount]) * 100) for r in rows[1:] if r[status] == "paid") == total(first_paid)

    # Compare three sessions picked in the list.
    page.goto(f"{server.url}/sessions")
    for sid, _ in sessions[:3]:
        page.check(f'#sessions tr[data-session="{sid}"] input.pick')
    page.click("#compare-button")
    page.wait_for_url("**/compare?ids=**")
    for sid, paid in sessions[:3]:
        cell = page.locator(f'#comparison tr[data-figure="amount_fen"] td[data-value="{total(paid)}"]')
        assert cell.count() == 1, sid
    page.wait_for_function("() => document.querySelectorAll('.rchart svg').length >= 3")
    with page.expect_download() as download:
        page.click("#compare-csv")
    compared = tmp_path / "compare.csv"
    download.value.save_as(compared)
    rows = list(csv.reader(io.StringIO(compared.read_bytes().decode("utf-8-sig"))))
    by_figure = {r[0]: r for r in rows[1:]}
    # Columns in the order of the ids in the address (the list's order); the first is the reference.
    order = [int(x) for x in page.url.split("ids=")[1].split("&")[0].replace("%2C", ",").split(",")]
    assert sorted(order) == sorted(sid for sid, _ in sessions[:3])
    paid_of = dict(sessions)
    first, second = total(paid_of[order[0]]), total(paid_of[order[1]])
    assert by_figure["总销售额"][1:4] == [f"{first / 100:.2f}", f"{second / 100:.2f}", f"{(second - first) / 100:.2f}"]

    # Officials read; recording orders is for hosts: the console is refused.
    refused = page.goto(f"{server.url}/console/{sessions[3][0]}")
    assert refused is not None and refused.status == 403
    assert errors == []
