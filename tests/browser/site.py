"""A realistic site for the layout and accessibility tests: every page, with the data people really have.

Six ended sessions with 60-character titles and hundreds of orders each (one of them with more than a
page of orders, for "orders 1–100 of N"), a live one and a scheduled one, all recorded through the core
API in batches; then the list of pages a host, an official, an admin and a partner open.
"""

from __future__ import annotations

import dataclasses
import random
from collections.abc import Callable
from typing import Any

from tests.conftest import Users

PASSWORD = "correct horse battery"
SIZES = [(390, 844), (1366, 768), (1920, 1080)]
LANGS = {"zh": "zh-CN", "ug": "ug", "en": "en-US"}  # the browser's language; ug is right to left

PRODUCTS = [
    {"sku": "APRICOT-5KG", "name": "疏附县小白杏 鲜果 2.5公斤装（当天现摘现发）", "unit": "2.5 kg box",
     "unit_price_fen": 6980, "stock": 800},
    {"sku": "DRIED-1KG", "name": "杏干 1公斤", "unit": "1 kg bag", "unit_price_fen": 5900},
    {"sku": "KERNEL-500G", "name": "甜杏仁 500克", "unit": "500 g jar", "unit_price_fen": 4580},
    {"sku": "JUJUBE-2KG", "name": "若羌灰枣 特级 2公斤", "unit": "2 kg box", "unit_price_fen": 8800},
    {"sku": "GIFT-BOX", "name": "新疆干果礼盒（杏干 核桃 葡萄干 巴旦木）", "unit": "gift box",
     "unit_price_fen": 16800, "stock": 60},
]
REGIONS = ["浙江省 杭州市", "广东省 深圳市", "北京市", "上海市", "江苏省 南京市", "四川省 成都市", "湖北省 武汉市",
           "新疆维吾尔自治区 乌鲁木齐市", "山东省 青岛市", "福建省 厦门市", "河南省 郑州市", "陕西省 西安市",
           "湖南省 长沙市", "天津市", "重庆市", "辽宁省 大连市", "内蒙古自治区 呼和浩特市", ""]


def long_title(n: int) -> str:
    """A 60-character session title, as hosts write them."""
    base = f"喀什地区疏附县托克扎克镇第{n}场小白杏鲜杏杏干甜杏仁若羌灰枣新疆干果礼盒助农直播带货专场（村集体合作社×县融媒体中心联合）"
    return (base * 2)[:60]


@dataclasses.dataclass
class Site:
    ended: list[int]
    big: int  # an ended session with more than 100 orders
    big_orders: int
    live: int
    scheduled: int
    widget_key: str
    robots: int = 0  # an ended session with two group-chat robots and deliveries of each status

    def pages(self) -> list[tuple[str, str]]:
        """(name, path) of every page an admin opens."""
        ids = ",".join(map(str, self.ended))
        return [
            ("home", "/"),
            ("sessions", "/sessions"),
            ("report-ended", f"/sessions/{self.big}"),
            ("report-live", f"/sessions/{self.live}"),
            ("report-scheduled", f"/sessions/{self.scheduled}"),
            ("compare", f"/compare?ids={ids}"),
            ("admin", "/admin/users"),
            ("console", f"/console/{self.live}"),
            ("live", f"/live/{self.live}"),
            ("kiosk", f"/live/{self.live}?kiosk=1"),
            ("widget", f"/widget/{self.widget_key}"),
            ("new-session", "/sessions/new"),
            ("duplicate", f"/sessions/new?from={self.big}"),
            ("edit-scheduled", f"/sessions/{self.scheduled}/edit"),
            ("edit-live", f"/sessions/{self.live}/edit"),
            ("delete", f"/sessions/{self.scheduled}/delete"),
            ("error-404", "/sessions/999999"),
            ("error-400", "/compare.csv?ids=1"),
            ("compare-wrong-ids", "/compare?ids=1"),
            ("reconcile", f"/sessions/{self.big}/reconciliation"),
            ("report-robots", f"/sessions/{self.robots}#robots"),
            ("poster", f"/sessions/{self.big}/poster"),
            ("poster-live", f"/sessions/{self.live}/poster"),
        ]


def _session(api: Any, *, title: str, orders: int, seed: int, end: bool, start: bool = True,
             goal_fen: int = 30_000_000) -> int:
    created = api.post("/api/v1/sessions", json={
        "title": title, "village": "疏附县托克扎克镇", "hosts": ["阿依古丽", "买买提"], "platform": "douyin",
        "goal_fen": goal_fen, "products": PRODUCTS, "scheduled_start": "2031-06-18T12:00:00Z",
    })
    assert created.status_code == 201, created.json
    sid = created.json["id"]
    if not start:
        return sid
    assert api.post(f"/api/v1/sessions/{sid}/start").status_code == 200
    rng = random.Random(seed)
    batch = [{"sku": rng.choices([p["sku"] for p in PRODUCTS], weights=[6, 3, 2, 2, 1])[0],
              "quantity": rng.choice([1, 1, 1, 2, 2, 3, 5]), "buyer_region": rng.choice(REGIONS),
              "external_id": f"{seed}-{i}"} for i in range(orders)]
    recorded = api.post(f"/api/v1/sessions/{sid}/orders", json={"orders": batch})
    assert recorded.status_code == 201, recorded.json
    for victim in recorded.json["orders"][:3]:
        assert api.post(f"/api/v1/sessions/{sid}/orders/{victim['id']}/refund").status_code == 200
    if end:
        assert api.post(f"/api/v1/sessions/{sid}/end").status_code == 200
    return sid


def _platform_lines(app: Any, sid: int, *, lines: int, seed: int) -> None:
    """The platform's record of a session, as an import stores it: a few lines more than the live count,
    some refunded, some paid before the start (H12: the reconciliation page and the report's final figures)."""
    from datetime import timedelta

    import sqlalchemy as sa

    from livesale.core import tables as t
    from livesale.core.db import write_transaction
    from livesale.extensions import backend

    rng = random.Random(seed)
    with write_transaction(backend.store_of(app).db) as conn:
        start = conn.execute(sa.select(t.live_sessions.c.started_at).where(t.live_sessions.c.id == sid)).scalar_one()
        rows = []
        for i in range(lines):
            product = rng.choices(PRODUCTS, weights=[6, 3, 2, 2, 1])[0]
            quantity = rng.choice([1, 1, 2, 3])
            province, _, city = rng.choice(REGIONS).partition(" ")
            platform = rng.choice(["douyin", "douyin", "kuaishou", "channels"])
            rows.append({"session_id": sid, "line_id": f"{platform}:69{seed:02d}{i:06d}", "platform": platform,
                         "order_ref": f"69{seed:02d}{i:06d}", "sku": product["sku"], "quantity": quantity,
                         "amount_fen": quantity * product["unit_price_fen"] - rng.choice([0, 0, 100, 500]),
                         "paid_at": start + timedelta(minutes=rng.uniform(-8, 95)), "province": province,
                         "city": city, "status": "refunded" if i % 37 == 0 else "paid"})
        conn.execute(sa.insert(t.platform_lines), rows)


#: Two group-chat robots as their apps show their addresses (never called: sending is the sender's, and
#: their deliveries below wait until tomorrow or are done).
ROBOTS = [("dingtalk", "https://oapi.dingtalk.com/robot/send?access_token=" + "5f3c9a1e7b2d4c6f" * 4,
           "SEC" + "8b1f2e7d3c4a5b6e" * 4, "zh"),
          ("wecom", "https://qyapi.weixin.qq.com/cgi-bin/webhook/send?key=4a7e1c2b-9d3f-4e6a-8b5c-0f1e2d3c4b5a",
           None, "ug")]


def add_robots(app: Any, sid: int) -> list[int]:
    """The session's robots and what they were told, as the sender records it: sent, retrying, failed
    (timed out; refused by the robot's app), pending. Waiting ones are due tomorrow, so a running
    sender leaves them as they are."""
    from datetime import UTC, datetime, timedelta

    import sqlalchemy as sa

    from livesale.core import robots as robot_service
    from livesale.core import tables as t
    from livesale.core.db import write_transaction
    from livesale.extensions import backend
    from tests.ledger import host_actor

    store = backend.store_of(app)
    ids = [robot_service.add_robot(store, actor=host_actor(store.db), session_id=sid, allow_http=False,
                                   allow_private=True, data=robot_service.parse_robot(
                                       {"kind": kind, "url": url, "secret": secret, "lang": lang}
                                       if secret else {"kind": kind, "url": url, "lang": lang})).id
           for kind, url, secret, lang in ROBOTS]
    ding, wecom = ids
    ok = '{"errcode":0,"errmsg":"ok"}'
    tomorrow = datetime.now(UTC) + timedelta(days=1)
    e, d = t.outbox_events, t.robot_deliveries
    with write_transaction(store.db) as conn:
        start = conn.execute(sa.select(t.live_sessions.c.started_at).where(t.live_sessions.c.id == sid)).scalar_one()

        def event(key: str, minutes: int) -> int:
            found = conn.execute(sa.select(e.c.id).where(e.c.session_id == sid, e.c.key == key)).scalar()
            if found is not None:
                return int(found)
            return int(conn.execute(sa.insert(e).values(session_id=sid, key=key, payload={},
                                                        created_at=start + timedelta(minutes=minutes))
                                    .returning(e.c.id)).scalar_one())

        def at(minutes: float) -> datetime:
            return start + timedelta(minutes=minutes)

        started, milestone, goal, ended = (event("started", 0), event("milestone:1000000", 21),
                                           event("milestone:2000000", 58), event("ended", 95))
        rows = [
            (started, ding, "sent", 1, at(0.1), None, 200, ok, ""),
            (started, wecom, "sent", 1, at(0.1), None, 200, ok, ""),
            (milestone, ding, "sent", 2, at(21.5), None, 200, ok, ""),
            (milestone, wecom, "retrying", 3, at(24), tomorrow, 502,
             "<html><head><title>502 Bad Gateway</title></head><body><center><h1>502 Bad Gateway</h1></center>"
             "<hr><center>nginx</center></body></html>", ""),
            (goal, ding, "failed", 12, at(70), None, None, "", "timed out: no complete answer within 10 s"),
            (goal, wecom, "sent", 1, at(58.1), None, 200, ok, ""),
            (ended, ding, "pending", 0, None, tomorrow, None, "", ""),
            (ended, wecom, "failed", 9, at(110), None, 200,
             '{"errcode":93000,"errmsg":"invalid webhook url, hint: [1781234567_12_3f2a], from ip: 203.0.113.7"}', ""),
        ]
        conn.execute(sa.insert(d), [
            {"event_id": ev, "robot_id": robot, "session_id": sid, "status": status, "attempts": attempts,
             "last_attempt_at": last, "next_attempt_at": next_at or (last or start), "response_status": code,
             "response_body": body, "error": error, "sent_at": last if status == "sent" else None}
            for ev, robot, status, attempts, last, next_at, code, body, error in rows])
    return ids


def build_site(users: Users) -> Site:
    host = users.api("host")
    users.token("admin")
    users.token("official")
    counts = [412, 263, 187, 151, 338, 226]
    ended = [_session(host, title=long_title(i + 1), orders=n, seed=i, end=True) for i, n in enumerate(counts)]
    live = _session(host, title=long_title(7), orders=240, seed=7, end=False)
    scheduled = _session(host, title=long_title(8), orders=0, seed=8, end=False, start=False)
    key = host.get(f"/api/v1/sessions/{live}").json["widget_key"]
    _platform_lines(users.app, ended[0], lines=counts[0] + 17, seed=1)
    _platform_lines(users.app, ended[1], lines=counts[1] - 5, seed=2)
    confirmed = users.api("official").post(f"/api/v1/sessions/{ended[1]}/final",
                                           json={"source": "platform", "reason": "次日抖店导出已核对"})
    assert confirmed.status_code == 200, confirmed.json
    # Audience figures as hosts type them from the platform's data screen (issue 15): most sessions have
    # them, one has viewers only, the last ones none (the report and the comparison show "—" there).
    for sid, audience in [
        (ended[0], {"viewers": 56_789, "peak_viewers": 3_120, "new_followers": 845, "likes": 1_203_456,
                    "comments": 4_321}),
        (ended[1], {"viewers": 38_450, "peak_viewers": 2_210, "new_followers": 512, "likes": 486_000,
                    "comments": 2_980}),
        (ended[2], {"viewers": 12_007}),
        (live, {"viewers": 23_456, "peak_viewers": 1_870, "likes": 96_500}),
    ]:
        given = host.patch(f"/api/v1/sessions/{sid}/audience", json=audience)
        assert given.status_code == 200, given.json
    add_robots(users.app, ended[2])
    return Site(ended=ended, big=ended[0], big_orders=counts[0], live=live, scheduled=scheduled, widget_key=key,
                robots=ended[2])


def log_in(page: Any, base: str, name: str) -> None:
    page.goto(f"{base}/login")
    page.fill('input[name="name"]', name)
    page.fill('input[name="password"]', PASSWORD)
    page.click('form button[type="submit"]')
    page.wait_for_url(lambda url: "/login" not in url)


def watch(page: Any) -> list[str]:
    """The page's script errors and console errors from now on (a list that fills as they happen)."""
    problems: list[str] = []
    page.on("pageerror", lambda e: problems.append(f"page error: {e}"))
    page.on("console", lambda m: problems.append(f"console: {m.text}") if m.type == "error" else None)
    return problems


# Pages are measured once they are drawn: fonts loaded, every chart an SVG.
READY = """() => document.fonts.status === 'loaded' &&
  Array.from(document.querySelectorAll('[data-chart]')).every(el => el.querySelector('svg'))"""


def open_page(page: Any, url: str) -> int:
    response = page.goto(url, wait_until="load")
    page.wait_for_function(READY, timeout=20_000)
    return response.status if response is not None else 0


def every_page(browser: Any, base: str, site: Site, *, sizes: list[tuple[int, int]],
               visit: Callable[[Any, str, str, tuple[int, int]], None]) -> None:
    """Calls ``visit(page, name, lang, size)`` on every page, one browser context per size and language:
    the login page anonymously, every page as the admin, the 403 page as an official."""
    for size in sizes:
        for lang, locale in LANGS.items():
            context = browser.new_context(locale=locale, viewport={"width": size[0], "height": size[1]})
            context.set_default_timeout(20_000)
            try:
                page = context.new_page()
                open_page(page, f"{base}/login")
                visit(page, "login", lang, size)
                log_in(page, base, "admin")
                for name, path in site.pages():
                    # The widget takes its language from its address (partners' pages), not the browser's.
                    url = base + path + (("&" if "?" in path else "?") + f"lang={lang}" if name == "widget" else "")
                    open_page(page, url)
                    visit(page, name, lang, size)
                context.clear_cookies()
                log_in(page, base, "official")
                assert open_page(page, f"{base}/admin/users") == 403
                visit(page, "error-403", lang, size)
            finally:
                context.close()
