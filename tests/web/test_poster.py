"""The 战报 poster's pages (issue 15 item 2): who may see it (as the report), what it is (an SVG that stays
well-formed XML whatever the session's texts hold), the figures the report shows, and its three languages."""

from __future__ import annotations

import html
import re
import xml.etree.ElementTree as ET
from typing import Any

import pytest

from livesale.core.formats import money_big
from tests.conftest import APRICOT_SESSION, Api, Users
from tests.core.test_poster import sell_over_minutes, set_audience
from tests.web.test_pages import login
from tests.web.test_security_headers import csp_directives

SVG = "{http://www.w3.org/2000/svg}"
ISOLATES = str.maketrans("", "", "\u2066\u2067\u2068\u2069")


def client_of(app: Any, users: Users, name: str, role: str) -> Any:
    users.token(role, name)
    client = app.test_client()
    login(client, name)
    return client


@pytest.fixture
def official(app: Any, users: Users) -> Any:
    return client_of(app, users, "official", "official")


@pytest.fixture
def ended(app: Any, host_api: Api) -> dict[str, Any]:
    return sell_over_minutes(app, host_api, seed=31, orders=40, end=True)


def svg_of(response: Any) -> ET.Element:
    assert response.status_code == 200, response.text[:500]
    return ET.fromstring(response.data)  # well-formed XML, or this raises


def text_of(element: ET.Element) -> str:
    return "".join(element.itertext()).translate(ISOLATES)


def figure_texts(root: ET.Element) -> dict[str, str]:
    return {el.get("data-figure"): text_of(el) for el in root.iter() if el.get("data-figure")}


def figure_values(root: ET.Element) -> dict[str, str]:
    return {el.get("data-figure"): el.get("data-value") for el in root.iter() if el.get("data-figure")}


def report_figures(page: str) -> tuple[dict[str, str], dict[str, str]]:
    """The report page's key figures: (data-value by figure, the text it shows by figure)."""
    values = dict(re.findall(r'data-figure="(\w+)" data-value="([^"]*)"', page))
    texts = {key: html.unescape(text).strip()
             for key, text in re.findall(r'data-key-figure="(\w+)">([^<]*)<', page)}
    return values, texts


def report_rows(page: str, table: str) -> list[tuple[str, int]]:
    body = page.split(f'id="{table}"', 1)[1].split("</table>", 1)[0]
    return [(html.unescape(label), int(fen)) for label, fen in
            re.findall(r"<tr[^>]*><td>([^<]*)</td><td class=\"num\">[^<]*</td><td class=\"num\" data-fen=\"(\d+)\"", body)]


def poster_rows(root: ET.Element, group: str) -> list[tuple[str, int]]:
    found = next(el for el in root.iter(f"{SVG}g") if el.get("id") == group)
    rows = []
    for row in found.findall(f"{SVG}g"):
        label = text_of(row.findall(f"{SVG}text")[1])
        rows.append((label, int(row.get("data-fen"))))
    return rows


# --- who may see it ---------------------------------------------------------------------------------


@pytest.mark.parametrize("tail", ["/poster", "/poster.svg"])
def test_the_poster_is_for_whoever_may_read_the_report(app: Any, users: Users, host_api: Api,
                                                        ended: dict[str, Any], tail: str) -> None:
    path = f"/sessions/{ended['id']}{tail}"
    anonymous = app.test_client().get(path)
    assert anonymous.status_code == 302 and "/login" in anonymous.headers["Location"]
    other = client_of(app, users, "host-2", "host")
    assert other.get(path).status_code == 403 == other.get(f"/sessions/{ended['id']}").status_code
    for name, role in (("host", "host"), ("official", "official"), ("admin", "admin")):
        assert client_of(app, users, name, role).get(path).status_code == 200, name
    assert client_of(app, users, "official", "official").get(f"/sessions/424242{tail}").status_code == 404


def test_the_svg_is_an_svg_that_loads_and_runs_nothing(official: Any, ended: dict[str, Any]) -> None:
    r = official.get(f"/sessions/{ended['id']}/poster.svg")
    assert r.headers["Content-Type"] == "image/svg+xml; charset=utf-8"
    assert csp_directives(r.headers["Content-Security-Policy"]) == {"default-src": ["'none'"],
                                                                   "frame-ancestors": ["'none'"]}
    assert r.headers["Cache-Control"] == "no-store" and r.headers["X-Content-Type-Options"] == "nosniff"
    root = svg_of(r)
    assert root.tag == f"{SVG}svg" and root.get("width") == "1080" and int(root.get("height")) >= 1920
    assert root.get("viewBox") == f"0 0 1080 {root.get('height')}"
    # Presentation attributes only: nothing a policy could block, nothing that fetches.
    assert not [el.tag for el in root.iter() if el.tag in (f"{SVG}style", f"{SVG}script", f"{SVG}image",
                                                              f"{SVG}foreignObject")]
    assert not [el.tag for el in root.iter() if el.get("style") is not None or el.get("href") is not None]
    fonts = root.get("font-family")
    for family in ("PingFang SC", "Microsoft YaHei", "Noto Sans CJK SC", "UKIJ Tuz", "Noto Naskh Arabic", "sans-serif"):
        assert family in fonts


def test_a_scheduled_session_has_no_poster_yet(app: Any, host_api: Api, official: Any) -> None:
    sid = host_api.post("/api/v1/sessions", json=APRICOT_SESSION).json["id"]
    assert official.get(f"/sessions/{sid}/poster.svg").status_code == 409
    page = official.get(f"/sessions/{sid}/poster")
    assert page.status_code == 200 and 'id="poster-not-yet"' in page.text and "poster-save" not in page.text
    assert 'id="poster-link"' not in official.get(f"/sessions/{sid}").text


# --- what it says ----------------------------------------------------------------------------------


HOSTILE = [
    "<script>alert(1)</script>",
    "]]><script>alert(1)</script><![CDATA[",
    "杏 & 枣 &amp; &lt;b&gt; \"引号\" '单引号'",
    "</text></svg><svg onload=alert(1)>",
    "\uffff不是 XML 字符",
]


@pytest.mark.parametrize("title", HOSTILE)
def test_a_hostile_title_stays_text_in_well_formed_xml(app: Any, host_api: Api, official: Any, title: str) -> None:
    made = sell_over_minutes(app, host_api, seed=32, orders=6, end=False, title=title, village=f"村<{title}>",
                             hosts=[title], products=[
                                 {"sku": "APRICOT-5KG", "name": f"{title} 鲜杏", "unit_price_fen": 6980},
                                 {"sku": "DRIED-1KG", "name": "杏干", "unit_price_fen": 5900}])
    for lang in ("zh", "ug", "en"):
        root = svg_of(official.get(f"/sessions/{made['id']}/poster.svg?lang={lang}"))
        kept = title.replace("\uffff", "")  # not a character XML can hold at all: dropped, the rest stays
        assert text_of(root.find(f"{SVG}title")).startswith(kept + " · ")
        assert kept in text_of(root)
        assert not list(root.iter(f"{SVG}script")) and not [el for el in root.iter() if el.get("onload")]
    # The page around it escapes the title too.
    page = official.get(f"/sessions/{made['id']}/poster")
    assert "<script>alert" not in page.text and "<svg onload" not in page.text


@pytest.mark.parametrize("lang", ["zh", "en"])
def test_the_poster_says_what_the_report_says(app: Any, official: Any, ended: dict[str, Any], lang: str) -> None:
    set_audience(app, ended["id"], viewers=8_000, peak_viewers=321)
    report = official.get(f"/sessions/{ended['id']}?lang={lang}").text
    root = svg_of(official.get(f"/sessions/{ended['id']}/poster.svg?lang={lang}"))
    values, texts = report_figures(report)
    on_poster = figure_values(root)
    for key in ("amount_fen", "orders", "items", "avg_order_fen", "duration_s", "sales_per_hour_fen", "goal_pct"):
        assert on_poster[key] == values[key], key
    shown = figure_texts(root)
    for key in ("amount_fen", "orders", "items", "avg_order_fen", "duration_s", "sales_per_hour_fen", "peak_minute"):
        assert shown[key] == texts[key], key
    assert f"{texts['goal_pct']}" in shown["goal_pct"]
    # The top five products and regions: the report's first five rows, in its order.
    assert poster_rows(root, "products") == report_rows(report, "products")[:5]
    assert poster_rows(root, "regions") == report_rows(report, "regions")[:5]
    # The audience, as the report's audience section writes it.
    audience = {el.get("data-audience"): text_of(el) for el in root.iter() if el.get("data-audience")}
    assert audience["viewers"] == "8,000" and audience["peak_viewers"] == "321"
    assert audience["new_followers"] == "—"


def test_a_live_poster_says_so_far_and_the_report_links_to_it(app: Any, host_api: Api, official: Any) -> None:
    live = sell_over_minutes(app, host_api, seed=33, orders=12, end=False)
    root = svg_of(official.get(f"/sessions/{live['id']}/poster.svg?lang=zh"))
    assert root.get("data-so-far") == "true"
    words = text_of(root)
    assert "截至目前" in words and "直播进行中" in words
    report = official.get(f"/sessions/{live['id']}").text
    assert re.search(rf'href="/sessions/{live["id"]}/poster" id="poster-link">战报（截至目前）</a>', report)


def test_the_ended_poster_compares_with_the_previous_session(app: Any, host_api: Api, official: Any) -> None:
    first = sell_over_minutes(app, host_api, seed=34, orders=30, end=True, title="上一场")
    then = sell_over_minutes(app, host_api, seed=35, orders=20, end=True, title="这一场")
    root = svg_of(official.get(f"/sessions/{then['id']}/poster.svg?lang=zh"))
    diff = sum(o["amount_fen"] for o in then["paid"]) - sum(o["amount_fen"] for o in first["paid"])
    element = next(el for el in root.iter() if el.get("data-figure") == "amount_diff_fen")
    assert element.get("data-value") == str(diff) and element.get("data-previous") == str(first["id"])
    assert text_of(element).startswith("▲ +" if diff > 0 else "▼ −")
    assert "上一场：上一场" in text_of(root)
    report = official.get(f"/sessions/{then['id']}").text
    assert f'href="/sessions/{then["id"]}/poster" id="poster-link">战报</a>' in report


def test_languages(app: Any, official: Any, ended: dict[str, Any]) -> None:
    amount = sum(o["amount_fen"] for o in ended["paid"])
    zh = svg_of(official.get(f"/sessions/{ended['id']}/poster.svg?lang=zh"))
    assert zh.get("direction") == "ltr" and zh.get("data-lang") == "zh" and "直播战报" in text_of(zh)
    en = svg_of(official.get(f"/sessions/{ended['id']}/poster.svg?lang=en"))
    assert en.get("direction") == "ltr" and "Sales report" in text_of(en) and "直播战报" not in text_of(en)
    total = next(el for el in en.iter() if el.get("id") == "total")
    assert "".join(total.itertext()) == money_big(amount, "en")

    ug = svg_of(official.get(f"/sessions/{ended['id']}/poster.svg?lang=ug"))
    assert ug.get("direction") == "rtl" and ug.get("data-lang") == "ug"
    words = text_of(ug)
    assert "سېتىش نەتىجىسى" in words and "直播战报" not in words and "Sales report" not in words
    # No English or Chinese of the poster's own left (the session's texts are what the host typed).
    own = words.replace(APRICOT_SESSION["title"], "").replace(APRICOT_SESSION["village"], "")
    for typed in [*APRICOT_SESSION["hosts"], *(p["name"] for p in APRICOT_SESSION["products"]), "浙江杭州", "上海",
                  "北京", "新疆喀什"]:
        own = own.replace(typed, "")
    assert set(re.findall(r"[A-Za-z]{3,}", own)) <= {"livesale", "GPM"}
    assert not re.findall(r"[\u4e00-\u9fff]", own)
    # Every figure is isolated: it never reorders inside the right-to-left text.
    total = next(el for el in ug.iter() if el.get("id") == "total")
    # Money right to left (its LRM keeps ¥ and digits together; a unit word follows as read).
    assert "".join(total.itertext()) == "\u2067" + money_big(amount, "ug") + "\u2069"
    orders = next(el for el in ug.iter() if el.get("data-figure") == "orders")
    assert "".join(orders.itertext()) == f"\u2066{len(ended['paid']):,}\u2069"
    # Mirrored: what starts at the left margin in Chinese starts at the right one in Uyghur.
    assert next(el for el in zh.iter() if el.get("id") == "people").get("x") == "64"
    assert next(el for el in ug.iter() if el.get("id") == "people").get("x") == "1016"


def test_the_page_shows_the_poster_and_its_save_button(official: Any, ended: dict[str, Any]) -> None:
    page = official.get(f"/sessions/{ended['id']}/poster?lang=zh")
    assert page.status_code == 200
    assert f'src="/sessions/{ended["id"]}/poster.svg?lang=zh"' in page.text
    button = re.search(r'<button[^>]*id="poster-save"[^>]*>', page.text, re.S).group(0)
    assert 'data-filename="' + html.escape(APRICOT_SESSION["title"]) + '-战报.png"' in button
    # The PNG is drawn in the page and shown from a blob: URL; the rest of the page's policy is as strict as ever.
    csp = csp_directives(page.headers["Content-Security-Policy"])
    assert csp["img-src"] == ["'self'", "data:", "blob:"]
    assert csp["script-src"] == ["'self'"] and csp["style-src"] == ["'self'"] and csp["default-src"] == ["'self'"]
    assert csp["connect-src"][0] == "'self'" and csp["object-src"] == ["'none'"]


def test_file_names_are_safe(app: Any) -> None:
    from livesale.web.poster import poster_filename

    with app.test_request_context("/?lang=zh"):
        assert poster_filename('喀什/杏子:直播*?"<>|') == "喀什_杏子_直播-战报.png"
        assert poster_filename("...") == "livesale-战报.png"
        assert len(poster_filename("杏" * 200)) == 60 + len("-战报.png")


def test_a_poster_with_nothing_sold_yet(app: Any, host_api: Api, official: Any) -> None:
    sid = host_api.post("/api/v1/sessions", json={**APRICOT_SESSION, "goal_fen": 0}).json["id"]
    assert host_api.post(f"/api/v1/sessions/{sid}/start").status_code == 200
    root = svg_of(official.get(f"/sessions/{sid}/poster.svg?lang=zh"))
    shown = figure_texts(root)
    assert shown["amount_fen"] == "¥0" and shown["orders"] == "0" and shown["peak_minute"] == "—"
    assert "goal_pct" not in shown  # no goal: no bar, no "0 %"
    assert text_of(root).count("暂无销售") == 3  # the curve, the products, the regions
