"""Every page in Uyghur (``ug``) on a phone (390×844), in real Chromium, with the realistic site of site.py.

Each page must say ``<html lang="ug" dir="rtl">``, fit the screen (no sideways scrolling), isolate its key
figures from the words around them, and show none of the UI's Chinese or English words: the list is built
from the zh catalogue (its English msgids, words of 3+ letters, and its Chinese msgstrs, runs of 2+ Han
characters), leaving out the test data's own names (product names and units, regions, titles, user names),
brand and format words (OBS, CSV, API, SKU…) and the Chinese names the msgids themselves keep (订单导出).
Visible text, the words in attributes people hear or hover (title, aria-label, placeholder…), the charts'
SVG text and the words the pages hand to their scripts (the ``i18n`` of their JSON blocks) are read.

Then the figures that scripts redraw: a pushed total in ``¥…مىڭ`` still isolated, the goal bar and the
products' bars growing from the right. ``LIVESALE_SHOTS=<dir>`` saves a screenshot of each page.
"""

from __future__ import annotations

import os
import re
from functools import cache
from pathlib import Path
from typing import Any

import pytest
from babel.messages.pofile import read_po

from livesale.web import formats
from tests.browser.site import PRODUCTS, REGIONS, Site, build_site, log_in, long_title, open_page
from tests.browser.test_layout import OVERFLOW
from tests.conftest import Users

ROOT = Path(__file__).resolve().parents[2]
PHONE = {"width": 390, "height": 844}
PLACEHOLDER = re.compile(r"%\([a-z_]+\)s|%%|\{[a-z_]+\}")
HAN_RUN = re.compile(r"[\u3400-\u9fff]{2,}")
#: Latin words a Uyghur page may show: brands, formats and codes people type or see in other apps.
LATIN_KEPT = {"api", "csv", "obs", "sku", "skus", "png", "svg", "json", "url", "http", "https", "utc", "utf",
              "xlsx", "post", "readme", "gpm", "wecom", "wechat", "dingtalk", "feishu", "lark", "ctrl", "livesale",
              "webhook"}  # the robots' apps name their address so (企业微信: "Webhook地址")
#: The test data's own words (site.py): what hosts typed is shown as typed.
DATA = [*(p[k] for p in PRODUCTS for k in ("name", "unit", "sku")), *REGIONS,
        *(long_title(n) for n in range(1, 9)), "疏附县托克扎克镇", "阿依古丽", "买买提", "次日抖店导出已核对",
        "admin", "official", "host", "Asia/Shanghai",
        # A robot delivery's technical detail, kept as the sender recorded it (web/robots.error_in_words).
        "no complete answer within 10 s"]


@cache
def kept_chinese() -> tuple[str, ...]:
    """Chinese names the msgids keep in every language (the platforms' 订单导出…), longest first."""
    return tuple(sorted({run for source in _catalog_ids() for run in HAN_RUN.findall(source)}, key=len, reverse=True))


@cache
def _catalog_ids() -> tuple[str, ...]:
    with (ROOT / "livesale" / "translations" / "zh" / "LC_MESSAGES" / "messages.po").open("rb") as f:
        catalog = read_po(f, locale="zh")
    return tuple(i for m in catalog if m.id for i in (m.id if isinstance(m.id, tuple) else (m.id,)))


@cache
def ui_words() -> tuple[frozenset[str], frozenset[str]]:
    """(English words, Chinese runs) of the UI, from the zh catalogue, less the data's and the brands'."""
    with (ROOT / "livesale" / "translations" / "zh" / "LC_MESSAGES" / "messages.po").open("rb") as f:
        catalog = read_po(f, locale="zh")
    english: set[str] = set()
    chinese: set[str] = set()
    for m in catalog:
        if not m.id:
            continue
        ids = m.id if isinstance(m.id, tuple) else (m.id,)
        texts = m.string if isinstance(m.string, tuple) else (m.string,)
        for source in ids:
            english.update(w.lower() for w in re.findall(r"[A-Za-z]{3,}", PLACEHOLDER.sub(" ", source)))
        for text in texts:
            chinese.update(HAN_RUN.findall(PLACEHOLDER.sub(" ", text or "")))
    data = " ".join(DATA)
    data_words = {w.lower() for w in re.findall(r"[A-Za-z]{3,}", data)}
    english -= LATIN_KEPT | data_words
    chinese = {run for run in chinese if run not in data and run not in kept_chinese()}
    return frozenset(english), frozenset(chinese)


# Everything a page says: visible text, spoken/hovered attributes, chart text, the words handed to scripts.
# Code (request ids, embed code, addresses) is not words.
READ = """() => {
  const out = [];
  const hidden = Array.from(document.body.querySelectorAll('code, textarea, input.code, .langs'))
    .map(el => [el, el.style.display]);
  hidden.forEach(([el]) => { el.style.display = 'none'; });  // CSSOM: allowed by the pages' CSP
  out.push(['text', document.body.innerText]);
  hidden.forEach(([el, display]) => { el.style.display = display; });
  out.push(['title', document.title]);
  for (const el of document.querySelectorAll('[title], [aria-label], [placeholder], [alt], [aria-valuetext], [data-confirm], [data-confirm-title], [data-confirm-ok], [data-confirm-cancel], [data-copied], [data-copy-failed]')) {
    if (el.closest('.langs, code')) continue;  // a receiver's raw answer (code) is not our words
    for (const a of ['title', 'aria-label', 'placeholder', 'alt', 'aria-valuetext', 'data-confirm', 'data-confirm-title',
                     'data-confirm-ok', 'data-confirm-cancel', 'data-copied', 'data-copy-failed']) {
      if (el.hasAttribute(a)) out.push([a, el.getAttribute(a)]);
    }
  }
  for (const b of document.querySelectorAll('input[type=submit], input[type=button]')) out.push(['button', b.value]);
  for (const t of document.querySelectorAll('svg text, svg tspan')) out.push(['chart', t.textContent]);
  for (const s of document.querySelectorAll('script[type="application/json"]')) {
    try {
      const data = JSON.parse(s.textContent);
      const words = s.id === 'ui-text' ? data : (data && data.i18n);
      const values = v => v && typeof v === 'object' ? Object.values(v).flatMap(values) : [String(v)];
      if (words) values(words).forEach(v => out.push(['script words #' + s.id, v]));
    } catch (e) { /* not ours */ }
  }
  return out;
}"""

# Figures read left to right inside Uyghur text: a sign before its digits, ¥ before its amount, a digit before
# its %, a date's year before its day. Measured where each character is drawn, on every visible line.
REORDERED = """() => {
  const bad = [];
  const rules = [[/[\u2212+\u00b1](?=[\u00a5\\d])/g, 1], [/\u00a5(?=\\d)/g, 1], [/\\d(?=%)/g, 1], [/\\d{4}-\\d\\d-\\d\\d/g, 9]];
  const box = (node, i) => { const r = document.createRange(); r.setStart(node, i); r.setEnd(node, i + 1);
                             return r.getBoundingClientRect(); };
  const walker = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT, {
    acceptNode: n => n.parentElement.closest('svg, script, style, code, textarea') ? NodeFilter.FILTER_REJECT
                                                                                    : NodeFilter.FILTER_ACCEPT });
  let node;
  while ((node = walker.nextNode()) && bad.length < 8) {
    for (const [re, to] of rules) {
      for (const m of node.data.matchAll(re)) {
        const a = box(node, m.index), b = box(node, m.index + to);
        if (!a.width || !b.width || Math.abs(a.top - b.top) > a.height / 2) continue;  // hidden, or wrapped
        if (a.left >= b.left) bad.push(JSON.stringify(node.data.trim().slice(0, 40)));
      }
    }
  }
  return bad;
}"""

# Every key figure is isolated from the words around it (a <bdi>, or unicode-bidi: isolate from app.css).
NOT_ISOLATED = """() => Array.from(document.querySelectorAll('[data-key-figure]'))
  .filter(el => !['isolate', 'isolate-override', 'plaintext'].includes(getComputedStyle(el).unicodeBidi) && !el.closest('bdi'))
  .map(el => el.getAttribute('data-key-figure') + ': ' + el.textContent.trim().slice(0, 30))"""


def _strip_data(text: str) -> str:
    for value in [*sorted(DATA, key=len, reverse=True), *kept_chinese()]:
        if value:
            text = text.replace(value, " ")
    # Codes, amounts and ids (douyin:6901000017, APRICOT-5KG, 2.5): not words.
    return re.sub(r"\S*[\d:/@_=&?{}]\S*", " ", text)


def foreign_words(texts: list[list[str]]) -> list[str]:
    """The UI's Chinese and English words found in a page's texts, with where they were."""
    english, chinese = ui_words()
    found = []
    for where, raw in texts:
        text = _strip_data(raw or "")
        for word in re.findall(r"[A-Za-z]{3,}", text):
            if word.lower() in english:
                found.append(f"{where}: {word!r} in {raw.strip()[:80]!r}")
        for run in chinese:
            if run in text:
                found.append(f"{where}: {run!r} in {raw.strip()[:80]!r}")
    return found


def with_lang(path: str) -> str:
    return path + ("&" if "?" in path else "?") + "lang=ug"


@pytest.fixture
def site(users: Users) -> Site:
    return build_site(users)


def test_the_word_lists_catch_what_they_should() -> None:
    """The lists themselves: the UI's words are in, the test data's and the brands' are out."""
    english, chinese = ui_words()
    assert {"sessions", "compare", "orders", "goal"} <= english and not {"csv", "obs", "box", "admin"} & english
    assert {"总销售额", "订单"} <= chinese and "直播" not in chinese and "订单导出" not in chinese
    assert foreign_words([["text", "ئومۇمىي سېتىش سوممىسى ¥12.35مىڭ CSV · APRICOT-5KG 2.5 kg box 疏附县托克扎克镇"
                                   " (订单导出)"]]) == []
    assert sorted(f.split("'")[1] for f in foreign_words([["text", "Total sales 总销售额"]])) == sorted(
        ["Total", "sales", "总销售额", "销售额"])


def test_every_page_in_uyghur_is_right_to_left_fits_a_phone_and_is_all_uyghur(
    browser: Any, server_factory: Any, site: Site
) -> None:
    server = server_factory()
    shots = Path(os.environ["LIVESALE_SHOTS"]) if os.environ.get("LIVESALE_SHOTS") else None
    problems: list[str] = []
    seen: list[str] = []
    # Accept-Language: ug chooses Uyghur for the site; the widget takes its language from its address only.
    context = browser.new_context(locale="ug", viewport=PHONE)
    context.set_default_timeout(20_000)

    def check(page: Any, name: str) -> None:
        seen.append(name)
        if shots is not None:
            shots.mkdir(parents=True, exist_ok=True)
            height = page.evaluate("() => document.documentElement.scrollHeight")
            for i in range(min(3, -(-height // PHONE["height"]))):  # the first three screens, as people scroll
                page.evaluate(f"() => window.scrollTo(0, {i * PHONE['height']})")
                page.screenshot(path=str(shots / f"{name}-ug-390-{i}.png"))
            page.evaluate("() => window.scrollTo(0, 0)")
        html = page.evaluate("() => [document.documentElement.lang, document.documentElement.dir]")
        if html != ["ug", "rtl"]:
            problems.append(f"{name}: <html lang dir> is {html}")
        overflow = page.evaluate(OVERFLOW)
        if overflow:
            problems.append(f"{name}: {overflow['scrollWidth']} px wide in {overflow['width']} px: {overflow['elements']}")
        problems.extend(f"{name}: figure not isolated: {f}" for f in page.evaluate(NOT_ISOLATED))
        problems.extend(f"{name}: figure drawn out of order: {f}" for f in page.evaluate(REORDERED))
        problems.extend(f"{name}: {w}" for w in foreign_words(page.evaluate(READ)))

    try:
        page = context.new_page()
        open_page(page, f"{server.url}/login")
        check(page, "login")
        log_in(page, server.url, "admin")
        for name, path in site.pages():
            open_page(page, server.url + (with_lang(path) if name == "widget" else path))
            check(page, name)
        context.clear_cookies()
        log_in(page, server.url, "official")
        assert open_page(page, f"{server.url}/admin/users") == 403
        check(page, "error-403")
    finally:
        context.close()
    assert len(seen) == len(site.pages()) + 2
    assert not problems, "\n".join(problems)


def test_figures_redrawn_by_scripts_stay_uyghur_isolated_and_grow_from_the_right(
    browser: Any, server_factory: Any, site: Site, users: Users
) -> None:
    server = server_factory()
    host = users.api("host")
    context = browser.new_context(locale="ug", viewport={"width": 1366, "height": 768})
    context.set_default_timeout(20_000)
    try:
        page = context.new_page()
        log_in(page, server.url, "admin")
        # The live screen: a pushed total in ¥…مىڭ, isolated; the goal bar filling from the right.
        open_page(page, f"{server.url}/live/{site.live}")
        page.wait_for_function("() => document.querySelector('#conn').getAttribute('data-state') === 'ok'")
        before = int(page.get_attribute("#total", "data-fen"))
        r = host.post(f"/api/v1/sessions/{site.live}/orders", json={"sku": "GIFT-BOX", "quantity": 3})
        assert r.status_code == 201, r.json
        after = before + 3 * 16800
        page.wait_for_function(f"() => document.querySelector('#total').getAttribute('data-fen') === '{after}'")
        assert page.inner_text("#total") == formats.money_big(after, "ug") and "مىڭ" in page.inner_text("#total")
        assert page.evaluate("() => getComputedStyle(document.querySelector('#total')).unicodeBidi") == "isolate"
        bar, fill = (page.locator(s).bounding_box() for s in ("#goal-bar", "#goal-fill"))
        assert fill is not None and bar is not None and fill["width"] > 10
        assert abs((fill["x"] + fill["width"]) - (bar["x"] + bar["width"])) < 1.5  # starts at the right end
        # The minutes stay left to right: the current minute is the rightmost bar.
        assert page.evaluate("""() => { const bars = Array.from(document.querySelectorAll('#chart .bar'));
          const now = document.querySelector('#chart .bar.now');
          return now.getBoundingClientRect().left >= Math.max(...bars.map(b => b.getBoundingClientRect().left)); }""")
        # The widget (as partners embed it with lang=ug): the same figure, its bar from the right.
        open_page(page, f"{server.url}/widget/{site.widget_key}?lang=ug&show=total,goal,orders")
        assert page.inner_text("#w-total") == formats.money_big(after, "ug")
        wbar, wfill = (page.locator(s).bounding_box() for s in (".w-bar", "#w-fill"))
        assert wbar is not None and wfill is not None and wfill["width"] > 10
        assert abs((wfill["x"] + wfill["width"]) - (wbar["x"] + wbar["width"])) < 1.5
        # The report's bars of products grow from the right; its curves keep time left to right.
        open_page(page, f"{server.url}/sessions/{site.big}")
        options = page.evaluate("""() => Array.from(document.querySelectorAll('[data-chart]')).map(el => {
          const o = echarts.getInstanceByDom(el).getOption();
          return {kind: el.getAttribute('data-chart'), inverse: !!o.xAxis[0].inverse, y: o.yAxis[0].position};
        })""")
        kinds = {o["kind"]: o for o in options}
        assert kinds["bars"]["inverse"] and kinds["bars"]["y"] == "right"
        assert not kinds["cumulative"]["inverse"] and not kinds["per-minute"]["inverse"]
    finally:
        context.close()
