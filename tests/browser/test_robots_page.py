"""Group-chat robots on the session page, in a real browser against a real server (gunicorn, with its
background sender) and a real local robot receiver:

* a host on a phone adds a DingTalk robot (the page's form, its CSRF token), sees it listed masked — the
  key and the secret are nowhere in the page — is told in Chinese why a WeCom robot with a secret is
  refused, starts the session, and reads in the delivery log that the receiver took the message; then
  deletes the robot through the site's confirm dialog;
* the section of a session with two robots and deliveries of every status (tests/browser/site.py) fits a
  phone, a laptop and a big screen in zh, ug and en: no sideways scrolling, the log in its scrolling box,
  status words in the page's language; an official reads it without the forms.

With ``LIVESALE_SHOTS=<folder>`` the section is photographed at 390, 1366 and 1920 px in zh, ug and en.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from livesale.core import tables as t
from livesale.extensions import backend
from tests.browser.site import ROBOTS, SIZES, add_robots, log_in, watch
from tests.conftest import APRICOT_SESSION, Users
from tests.robot_receiver import Receiver

TOKEN = "a1b2c3d4e5f60718293a4b5c6d7e8f90a1b2c3d4e5f60718293a4b5c6d7e8f9e"
SECRET = "SEC" + "4c0ffee5" * 8
PHONE = {"viewport": {"width": 390, "height": 844}, "is_mobile": True, "has_touch": True,
         "device_scale_factor": 2}
WORDS = {  # the delivery log's status words, in each language
    "zh": ("已送达", "将重试", "失败", "等待发送"),
    "en": ("Delivered", "Will retry", "Failed", "Waiting to be sent"),
    "ug": ("يەتكۈزۈلدى", "قايتا سىنىلىدۇ", "مەغلۇپ بولدى", "يوللىنىشنى كۈتۈۋاتىدۇ"),
}


@pytest.fixture
def server(server_factory: Any, monkeypatch: pytest.MonkeyPatch) -> Any:
    # The receiver is on 127.0.0.1, over http: allowed only by the tests' settings.
    monkeypatch.setenv("LIVESALE_WEBHOOK_ALLOW_HTTP", "1")
    monkeypatch.setenv("LIVESALE_WEBHOOK_ALLOW_PRIVATE", "1")
    return server_factory()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver().start()
    yield r
    r.stop()


def no_sideways_scroll(page: Any) -> bool:
    return bool(page.evaluate("document.documentElement.scrollWidth <= window.innerWidth"))


def wait_until(condition: Any, what: str, timeout_s: float = 30.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, f"waited {timeout_s} s for {what}"
        time.sleep(0.05)


def delivery_status(app: Any, robot_id: int) -> list[str]:
    d = t.robot_deliveries
    with backend.store_of(app).db.connect() as conn:
        return list(conn.execute(sa.select(d.c.status).where(d.c.robot_id == robot_id)).scalars())


def test_a_host_adds_a_robot_on_a_phone_and_reads_its_delivery(browser: Any, server: Any, app: Any, users: Users,
                                                               receiver: Receiver) -> None:
    created = users.api("host").post("/api/v1/sessions", json={**APRICOT_SESSION, "title": "喀什杏子直播"})
    assert created.status_code == 201, created.json
    sid = created.json["id"]
    context = browser.new_context(locale="zh-CN", **PHONE)
    context.set_default_timeout(20_000)
    try:
        page = context.new_page()
        problems = watch(page)
        log_in(page, server.url, "host")
        page.goto(f"{server.url}/sessions/{sid}#robots")
        assert page.locator("#no-robots").is_visible()
        url = receiver.url("dingtalk", f"?access_token={TOKEN}")
        page.select_option("#robot-kind", "dingtalk")
        page.fill("#robot-url", url)
        page.fill("#robot-secret", SECRET)
        page.locator("#robot-form button[type=submit]").click()
        page.wait_for_url(f"**/sessions/{sid}#robots")
        robot = page.locator("#robot-list .robot")
        assert robot.count() == 1
        text = robot.inner_text()
        assert "钉钉" in text and "已加签" in text and "中文" in text and "本场" in text
        assert f"access_token={TOKEN[:2]}…{TOKEN[-2:]}" in text
        html = page.content()
        assert TOKEN not in html and SECRET not in html
        assert no_sideways_scroll(page)

        # A WeCom robot has no secret: refused beside the field, in Chinese; nothing added, nothing echoed.
        page.select_option("#robot-kind", "wecom")
        page.fill("#robot-url", receiver.url("wecom", "?key=0b0b0b0b-1c1c-4d4d-8e8e-9f9f9f9f9f9f"))
        page.fill("#robot-secret", "SECnot-for-wecom")
        page.locator("#robot-form button[type=submit]").click()
        error = page.locator("#robot-secret-error")
        error.wait_for()
        assert "企业微信机器人没有密钥" in error.inner_text()
        assert page.get_attribute("#robot-secret", "aria-invalid") == "true"
        assert page.input_value("#robot-kind") == "wecom" and page.input_value("#robot-secret") == ""
        assert page.locator("#robot-list .robot").count() == 1
        assert "SECnot-for-wecom" not in page.content()
        assert no_sideways_scroll(page)

        # The host starts the session: the sender tells the robot, the log says the receiver took it.
        page.goto(f"{server.url}/sessions/{sid}")
        page.locator("#lifecycle button[type=submit]").click()
        page.wait_for_url(f"**/sessions/{sid}")
        assert receiver.wait_for(lambda: len(receiver.of("dingtalk")) >= 1, timeout=30)
        got = receiver.of("dingtalk")[0]
        # The address as typed (its key), signed with the secret given on the page (core.robot_messages).
        assert got.query["access_token"] == [TOKEN] and "sign" in got.query and "timestamp" in got.query
        robot_id = int(page.locator("#robot-list .robot").get_attribute("data-robot") or 0)
        wait_until(lambda: delivery_status(app, robot_id) == ["sent"], "the delivery to be recorded as sent")
        page.reload()
        row = page.locator("#delivery-log tr[data-status=sent]")
        assert row.count() == 1
        cells = row.inner_text()
        assert "开播" in cells and "已送达" in cells and "HTTP 200" in cells and "errcode" in cells
        assert TOKEN not in page.content()
        # The log is in its scrolling box: the page itself never scrolls sideways.
        assert no_sideways_scroll(page)

        # Deleted through the site's confirm dialog; its delivery stays in the log, marked deleted.
        page.locator(".robot-delete button[type=submit]").click()
        dialog = page.locator("#confirm-dialog")
        dialog.wait_for()
        assert "删除这个机器人？" in dialog.inner_text()
        page.locator("#confirm-dialog .confirm-ok").click()
        page.wait_for_url(f"**/sessions/{sid}#robots")
        page.locator("#no-robots").wait_for()
        assert "已删除" in page.locator("#delivery-log").inner_text()
        # The refused form's page is a 422 (Chromium says so in the console); nothing else went wrong.
        assert [p for p in problems if "status of 422" not in p] == [], problems
    finally:
        context.close()


def photograph(page: Any, name: str) -> None:
    folder = os.environ.get("LIVESALE_SHOTS")
    if not folder:
        return
    Path(folder).mkdir(parents=True, exist_ok=True)
    page.locator("#robots").screenshot(path=f"{folder}/{name}.png")


def test_the_robots_section_fits_every_screen_in_every_language(browser: Any, server: Any, app: Any,
                                                                users: Users) -> None:
    host = users.api("host")
    users.token("official")
    created = host.post("/api/v1/sessions", json={**APRICOT_SESSION, "title": "疏附县小白杏助农直播专场"})
    sid = created.json["id"]
    for step in ("start", "end"):
        assert host.post(f"/api/v1/sessions/{sid}/{step}").status_code == 200
    add_robots(app, sid)
    raw = [part for _kind, url, secret, _lang in ROBOTS for part in (url.rsplit("=", 1)[-1], secret) if part]
    for who in ("host", "official"):
        for lang in ("zh", "ug", "en"):
            for width, height in SIZES:
                context = browser.new_context(locale={"zh": "zh-CN", "ug": "ug", "en": "en-US"}[lang],
                                              viewport={"width": width, "height": height})
                context.set_default_timeout(20_000)
                try:
                    page = context.new_page()
                    problems = watch(page)
                    log_in(page, server.url, who)
                    page.goto(f"{server.url}/sessions/{sid}?lang={lang}#robots")
                    section = page.locator("#robots")
                    assert page.locator("html").get_attribute("dir") == ("rtl" if lang == "ug" else "ltr")
                    assert page.locator("#robot-list .robot").count() == 2
                    log = page.locator("#delivery-log").inner_text()
                    for word in WORDS[lang]:
                        assert word in log, (lang, word)
                    assert page.locator("#robot-form").count() == (1 if who == "host" else 0)
                    assert page.locator(".robot-delete").count() == (2 if who == "host" else 0)
                    html = page.content()
                    for secret in raw:
                        assert secret not in html
                    assert no_sideways_scroll(page), (who, lang, width)
                    # The log scrolls inside its box on a phone, not the page.
                    box = page.locator("#robots .table-scroll")
                    assert box.evaluate("el => getComputedStyle(el).overflowX") == "auto"
                    assert not problems, problems
                    assert section.is_visible()
                    if who == "host":
                        photograph(page, f"robots-{lang}-{width}")
                finally:
                    context.close()
