"""A host imports a platform's order export on the session page, in a real browser against a real server:
picks the file, reads the dry run's report (figures the test sums itself from its sample lines), maps an
unknown product to one of the session's, confirms, and finds the import listed. An official sees the list
and no forms. Strict CSP holds (no violation, no page error).

With ``LIVESALE_SHOTS=<folder>`` the page is also photographed at 390, 1366 and 1920 px wide in zh and en.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import sqlalchemy as sa

from livesale.core import tables as t
from livesale.core.db import write_transaction
from livesale.extensions import backend
from tests.browser.site import log_in, watch
from tests.conftest import Users
from tests.imports_samples import export_file, sample_lines

CN = ZoneInfo("Asia/Shanghai")
START = datetime(2026, 6, 1, 20, 0, tzinfo=CN)
END = datetime(2026, 6, 1, 22, 0, tzinfo=CN)
PRODUCTS = [("APPLE-5", "红富士苹果", 6980), ("HONEY-1", "土蜂蜜", 4800), ("RICE-10", "稻花香大米", 123450),
            ("TEA-2", "高山绿茶", 19900)]
SIZES = ((390, 844), (1366, 768), (1920, 1080))


@pytest.fixture
def server(server_factory: Any) -> Any:
    return server_factory()


@pytest.fixture
def context(browser: Any, server: Any) -> Iterator[Any]:
    context = browser.new_context(locale="zh-CN", viewport={"width": 1366, "height": 900})
    context.set_default_timeout(15_000)
    yield context
    context.close()


def session_of_host(app: Any, users: Users) -> int:
    host = users.api("host")
    created = host.post("/api/v1/sessions", json={
        "title": "洛川苹果直播", "village": "洛川县", "platform": "douyin",
        "products": [{"sku": s, "name": n, "unit_price_fen": p} for s, n, p in PRODUCTS]})
    assert created.status_code == 201, created.json
    for step in ("start", "end"):  # run (its results kept), then dated 20:00-22:00 on 1 June 2026
        assert host.post(f"/api/v1/sessions/{created.json['id']}/{step}").status_code == 200
    with write_transaction(backend.store_of(app).db) as conn:
        conn.execute(sa.update(t.live_sessions).where(t.live_sessions.c.id == created.json["id"])
                     .values(started_at=START, ended_at=END))
    return int(created.json["id"])


def photograph(page: Any, url: str, name: str) -> None:
    folder = os.environ.get("LIVESALE_SHOTS")
    if not folder:
        return
    Path(folder).mkdir(parents=True, exist_ok=True)
    for lang in ("en", "zh"):  # zh last: the page remembers the language
        for width, height in SIZES:
            page.set_viewport_size({"width": width, "height": height})
            page.goto(f"{url}{'&' if '?' in url else '?'}lang={lang}")
            page.locator("#imports").scroll_into_view_if_needed()
            page.locator("#imports").screenshot(path=f"{folder}/{name}-{lang}-{width}.png")
    page.set_viewport_size({"width": 1366, "height": 900})


def test_a_host_checks_maps_and_confirms_an_export(context: Any, server: Any, app: Any, users: Users,
                                                   tmp_path: Path) -> None:
    session_id = session_of_host(app, users)
    users.token("official")
    paid = sample_lines(12, start=START + timedelta(minutes=3), minutes=100, statuses=("paid", "paid", "not_paid"))
    odd = [dataclasses.replace(x, product_name="野生菌", spec="干货", merchant_code="", amount_fen=3300)
           for x in sample_lines(2, start=START + timedelta(minutes=40), prefix="69208")]
    lines = paid + odd
    export = tmp_path / "抖店订单导出.csv"
    export.write_bytes(export_file("douyin", lines, fmt="csv-gb18030")[1])
    in_file = [x for x in paid if x.status == "paid"]
    never = [i + 2 for i, x in enumerate(lines) if x.status == "not_paid"]

    page = context.new_page()
    problems = watch(page)
    log_in(page, server.url, "host")
    report_url = f"{server.url}/sessions/{session_id}"
    page.goto(report_url + "?lang=zh")
    photograph(page, report_url, "import-empty")
    page.goto(report_url + "?lang=zh")
    assert page.locator("#import-platform").input_value() == "douyin"  # the session's platform, by name
    assert page.locator("#import-platform option:checked").inner_text() == "抖音"
    page.set_input_files("#import-file", str(export))
    page.click("#import-form button[type=submit]")

    check = page.locator("#import-check")
    check.wait_for()
    assert page.locator('#import-report [data-figure="added"] [data-fen]').get_attribute("data-fen") == str(
        sum(x.amount_fen for x in in_file))
    assert f"{len(in_file)} 条" in page.locator('#import-report [data-figure="added"]').inner_text()
    skipped = page.locator('#import-report [data-reason="not_paid"]').inner_text()
    assert all(str(row) in skipped for row in never) and "未付款" in skipped
    assert page.locator(".unmatched-item").count() == 1
    assert "野生菌" in page.locator(".unmatched-item").inner_text()
    photograph(page, page.url.split("#")[0], "import-check")

    # The unknown product is the tea, from now on: the check runs again with it.
    page.goto(page.url)
    page.select_option(".mapping-form select[name=sku]", "TEA-2")
    page.click(".mapping-form button[type=submit]")
    page.locator("#import-check").wait_for()
    page.wait_for_function("document.querySelectorAll('.unmatched-item').length === 0")
    want = in_file + odd
    assert page.locator('#import-report [data-figure="added"] [data-fen]').get_attribute("data-fen") == str(
        sum(x.amount_fen for x in want))

    page.click("#import-confirm button[type=submit]")
    page.locator("#imports-list tbody tr[data-import]").wait_for()
    row = page.locator("#imports-list tbody tr[data-import]").inner_text()
    assert "抖店订单导出.csv" in row and "host" in row and str(len(want)) in row
    assert page.locator("#import-check").count() == 0
    assert page.locator(".flash.ok").inner_text().startswith("已导入")
    with backend.store_of(app).db.connect() as conn:
        stored = conn.execute(sa.select(sa.func.count(), sa.func.sum(t.platform_lines.c.amount_fen))
                              .where(t.platform_lines.c.session_id == session_id)).one()
    assert tuple(stored) == (len(want), sum(x.amount_fen for x in want))
    photograph(page, report_url, "import-listed")
    assert not problems, problems

    # An official reads the list; there is no form to import or map.
    official = context.browser.new_context(locale="zh-CN")
    try:
        other = official.new_page()
        problems = watch(other)
        log_in(other, server.url, "official")
        other.goto(report_url)
        other.locator("#imports-list tbody tr[data-import]").wait_for()
        assert other.locator("#import-form").count() == 0 and other.locator(".mapping-form").count() == 0
        assert not problems, problems
    finally:
        official.close()
