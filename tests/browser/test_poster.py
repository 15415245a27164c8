"""An official saves a session's 战报 poster as a PNG in a real Chromium: from the report's link, on a phone,
in Chinese and in Uyghur. The PNG is the file Chromium downloads, decoded and looked at: 1080 px wide, as tall as
the SVG, and a picture (thousands of colours, most pixels not the background), not a blank canvas."""

from __future__ import annotations

import base64
import struct
import zlib
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from tests.browser.site import log_in
from tests.conftest import Users
from tests.core.test_poster import move_start, sell_over_minutes, set_audience

TITLE = "疏附县托克扎克镇小白杏助农直播专场（县融媒体中心联合）"

# Chromium decodes the downloaded PNG itself; counted here: colours, and pixels unlike the top-left corner.
LOOK = """async (src) => {
  const image = new Image();
  image.src = src;
  await image.decode();
  const canvas = document.createElement('canvas');
  canvas.width = image.naturalWidth; canvas.height = image.naturalHeight;
  const ctx = canvas.getContext('2d');
  ctx.drawImage(image, 0, 0);
  const data = ctx.getImageData(0, 0, canvas.width, canvas.height).data;
  const colours = new Set();
  let unlike = 0, gold = 0, light = 0;
  const [r0, g0, b0] = [data[0], data[1], data[2]];
  for (let i = 0; i < data.length; i += 4) {
    const r = data[i], g = data[i + 1], b = data[i + 2];
    colours.add((r << 16) | (g << 8) | b);
    if (Math.abs(r - r0) + Math.abs(g - g0) + Math.abs(b - b0) > 24) unlike += 1;
    if (r > 230 && g > 170 && b < 150) gold += 1;
    if (r > 235 && g > 220 && b > 200) light += 1;
  }
  return {width: canvas.width, height: canvas.height, colours: colours.size, pixels: data.length / 4,
          unlike: unlike, gold: gold, light: light, alpha: data[3]};
}"""


def png_size(data: bytes) -> tuple[int, int]:
    """Width and height from the PNG's header; every IDAT chunk must inflate (a whole, valid file)."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = struct.unpack(">II", data[16:24])
    pos, idat = 8, b""
    while pos < len(data):
        length, kind = struct.unpack(">I4s", data[pos:pos + 8])
        if kind == b"IDAT":
            idat += data[pos + 8:pos + 8 + length]
        pos += 12 + length
    raw = zlib.decompress(idat)
    assert len(raw) >= height * (1 + width * 3)  # a filter byte and at least RGB per pixel, every row
    return width, height


@pytest.fixture
def server(server_factory: Any) -> Any:
    return server_factory()


@pytest.fixture
def made(app: Any, users: Users) -> dict[str, int]:
    host = users.api("host")
    users.token("official")
    before = sell_over_minutes(app, host, seed=41, orders=60, end=True, title="上一场 小白杏")
    move_start(app, before["id"], timedelta(days=7))
    now = sell_over_minutes(app, host, seed=42, orders=120, end=True, title=TITLE, goal_fen=400_000)
    set_audience(app, now["id"], viewers=23_456, peak_viewers=1_870, new_followers=312)
    live = sell_over_minutes(app, host, seed=43, orders=30, end=False, title="今天的杏子")
    return {"ended": now["id"], "live": live["id"]}


@pytest.fixture
def phone(browser: Any, server: Any) -> Iterator[Any]:
    context = browser.new_context(locale="zh-CN", viewport={"width": 390, "height": 844}, accept_downloads=True,
                                  device_scale_factor=2)
    context.set_default_timeout(20_000)
    yield context
    context.close()


def save_poster(page: Any, tmp_path: Path, name: str) -> tuple[Any, bytes]:
    page.wait_for_function("() => document.getElementById('poster-image').naturalWidth === 1080")
    with page.expect_download() as info:
        page.click("#poster-save")
    download = info.value
    path = tmp_path / name
    download.save_as(path)
    # The picture on the page is now the PNG (WeChat's browser: a long press saves it).
    page.wait_for_function("() => document.getElementById('poster-image').src.startsWith('blob:')")
    return download, path.read_bytes()


def look_at(browser: Any, png: bytes) -> dict[str, Any]:
    page = browser.new_page()
    try:
        return page.evaluate(LOOK, "data:image/png;base64," + base64.b64encode(png).decode())
    finally:
        page.close()


def test_an_official_saves_the_poster_as_a_png(browser: Any, phone: Any, server: Any, made: dict[str, int],
                                               tmp_path: Path) -> None:
    page = phone.new_page()
    problems: list[str] = []
    page.on("pageerror", lambda e: problems.append(str(e)))
    page.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
    log_in(page, server.url, "official")
    page.goto(f"{server.url}/sessions/{made['ended']}")
    page.click("#poster-link")
    page.wait_for_url(f"{server.url}/sessions/{made['ended']}/poster")

    download, png = save_poster(page, tmp_path, "zh.png")
    assert download.suggested_filename == f"{TITLE}-战报.png"
    svg_height = int(page.evaluate("() => document.getElementById('poster-image').naturalHeight") or 0)
    width, height = png_size(png)
    # The SVG's own size, read again from the server (the page now shows the PNG).
    svg = page.request.get(f"{server.url}/sessions/{made['ended']}/poster.svg?lang=zh").text()
    assert f'width="1080" height="{height}"' in svg
    assert (width, height) == (1080, svg_height) and height >= 1920

    seen = look_at(browser, png)
    assert (seen["width"], seen["height"]) == (1080, height) and seen["alpha"] == 255
    assert seen["colours"] > 2_000, seen  # gradients, text, the curve: a picture, not a flat canvas
    assert seen["unlike"] > seen["pixels"] * 0.15, seen  # cards and text cover much of the background
    assert seen["gold"] > 20_000 and seen["light"] > 5_000, seen  # the gold total and curve, the white text
    assert page.locator("#poster-status").inner_text().startswith("已保存")
    assert problems == []


def test_a_live_poster_in_uyghur(browser: Any, phone: Any, server: Any, made: dict[str, int], tmp_path: Path) -> None:
    page = phone.new_page()
    problems: list[str] = []
    page.on("pageerror", lambda e: problems.append(str(e)))
    page.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
    log_in(page, server.url, "official")
    page.goto(f"{server.url}/sessions/{made['live']}/poster?lang=ug")
    assert page.locator("#poster-so-far").count() == 1
    download, png = save_poster(page, tmp_path, "ug.png")
    assert download.suggested_filename.startswith("今天的杏子-") and download.suggested_filename.endswith(".png")
    width, height = png_size(png)
    assert width == 1080 and height >= 1920
    seen = look_at(browser, png)
    assert seen["colours"] > 2_000 and seen["unlike"] > seen["pixels"] * 0.15, seen
    assert problems == []
