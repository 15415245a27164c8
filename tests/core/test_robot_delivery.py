"""Group-chat robots, the delivery side (core.outbox, core.robot_messages, core.robot_sender), against a real
HTTP receiver on 127.0.0.1, the real database and Redis of the run.

Each kind's body is compared with the exact JSON written out here, and each signature is recomputed here
from the secret (DingTalk: HMAC-SHA256 keyed with the secret over "<ms>\\n<secret>", Base64, in the query;
Feishu: HMAC-SHA256 keyed with "<s>\\n<secret>" over nothing, Base64, in the body)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
import sqlalchemy as sa

from livesale.core import orders as order_service
from livesale.core import outbox, robot_messages, validation
from livesale.core import sessions as session_service
from livesale.core import tables as t
from livesale.core.auth import Actor
from livesale.core.db import write_transaction
from livesale.core.robot_sender import RobotSender, backoff_delay
from livesale.core.validation import OrderInput
from livesale.models import utcnow
from tests.conftest import APRICOT_SESSION, Users
from tests.ledger import host_actor
from tests.robot_receiver import Receiver

PUBLIC = "https://sales.example.cn"
DING_SECRET = "SEC0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcd"
FEISHU_SECRET = "fsK2xq9ZpL0vW7mN3bR5"


def add_robot(store: Any, *, kind: str, url: str, session_id: int | None = None, village: str | None = None,
              secret: str | None = None, lang: str = "zh") -> int:
    with write_transaction(store.db) as conn:
        robot_id = conn.execute(
            sa.insert(t.robots).values(session_id=session_id, village=village, kind=kind, url=url, secret=secret,
                                       lang=lang, created_at=utcnow()).returning(t.robots.c.id)
        ).scalar_one()
    outbox.forget_robots_cache()
    return robot_id


def deliveries(store: Any, session_id: int) -> list[Any]:
    d, e = t.robot_deliveries, t.outbox_events
    with store.db.connect() as conn:
        return conn.execute(
            sa.select(d, e.c.key).join(e, e.c.id == d.c.event_id).where(d.c.session_id == session_id)
            .order_by(d.c.id)
        ).all()


def events(store: Any, session_id: int) -> list[str]:
    e = t.outbox_events
    with store.db.connect() as conn:
        return list(conn.execute(sa.select(e.c.key).where(e.c.session_id == session_id).order_by(e.c.id)).scalars())


def priced(fen: int, quantity: int = 1) -> OrderInput:
    return OrderInput(sku="APRICOT-5KG", quantity=quantity, unit_price_fen=fen, buyer_region="", channel="",
                      external_id=None, field="")


@pytest.fixture
def host(store: Any, users: Users) -> Actor:
    users.token("host")
    return host_actor(store.db)


def new_session(store: Any, host: Actor, *, milestone_fen: int = 2_000_000, **changes: Any) -> int:
    info = session_service.create_session(store, actor=host,
                                          data=validation.parse_session({**APRICOT_SESSION, **changes}))
    with write_transaction(store.db) as conn:
        conn.execute(sa.update(t.live_sessions).where(t.live_sessions.c.id == info.id)
                     .values(widget_milestone_fen=milestone_fen))
    return info.id


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver().start()
    yield r
    r.stop()


@pytest.fixture
def make_sender(store: Any) -> Iterator[Any]:
    made: list[RobotSender] = []

    def make(**kw: Any) -> RobotSender:
        options = {"public_url": PUBLIC, "allow_http": True, "allow_private": True, "poll_s": 0.05,
                   "backoff_s": 0.05, **kw}
        made.append(RobotSender(store.db, **options))
        return made[-1]

    yield make
    for sender in made:
        sender.stop(5)


def wait_until(condition: Any, timeout_s: float = 30.0, what: str = "") -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, what or "condition not met"
        time.sleep(0.02)


def all_sent(store: Any, session_id: int) -> bool:
    rows = deliveries(store, session_id)
    return bool(rows) and all(r.status == "sent" for r in rows)


# --- the messages, exactly ------------------------------------------------------------------


def test_each_kind_gets_its_exact_body_and_signature(store: Any, host: Actor, receiver: Receiver,
                                                     make_sender: Any) -> None:
    sid = new_session(store, host)
    add_robot(store, kind="wecom", url=receiver.url("wecom", "?key=wk-1"), session_id=sid)
    add_robot(store, kind="dingtalk", url=receiver.url("dingtalk", "?access_token=dt-1"), session_id=sid,
              secret=DING_SECRET)
    add_robot(store, kind="feishu", url=receiver.url("feishu", "/0b1e"), village="疏附县", secret=FEISHU_SECRET,
              lang="en")
    session_service.start_session(store, actor=host, session_id=sid)
    order_service.record_orders(store, actor=host, session_id=sid, orders=[priced(2_500_000)])  # passes ¥2万
    # ¥4万 and the goal (¥6万, a milestone too: told as the goal) in one batch: one milestone message, the highest.
    order_service.record_orders(store, actor=host, session_id=sid, orders=[priced(2_000_000), priced(2_000_000)],
                                is_batch=True)
    session_service.end_session(store, actor=host, session_id=sid)
    assert events(store, sid) == ["started", "milestone:2000000", "milestone:4000000", "goal", "ended"]
    e = t.outbox_events
    with store.db.connect() as conn:
        ids = dict(conn.execute(sa.select(e.c.key, e.c.id).where(e.c.session_id == sid).order_by(e.c.id)).all())

    started = time.time()
    make_sender().start()
    wait_until(lambda: all_sent(store, sid), what="every delivery sent")
    assert receiver.wait_for(lambda: len(receiver.requests) == 15)

    # WeCom: markdown, no signing; in the robot's language (zh), messages in the order of their events.
    wecom = receiver.of("wecom")
    assert [r.query for r in wecom] == [{"key": ["wk-1"]}] * 5
    assert [r.headers["Content-Type"] for r in wecom] == ["application/json; charset=utf-8"] * 5
    assert [r.json for r in wecom] == [
        {"msgtype": "markdown", "markdown": {"content": content}} for content in (
            f"**开播了：喀什杏子直播**\n疏附县 · 主播 阿依古丽\n目标：¥6.00万\n"
            f"[实时数据]({PUBLIC}/sessions/{sid})\n#{ids['started']}",
            f"**喀什杏子直播 销售额突破 ¥2.00万**\n疏附县 · 主播 阿依古丽\n销售额：¥2.50万，目标 ¥6.00万（41.7%）\n"
            f"订单：1 单\n[实时数据]({PUBLIC}/sessions/{sid})\n#{ids['milestone:2000000']}",
            f"**喀什杏子直播 销售额突破 ¥4.00万**\n疏附县 · 主播 阿依古丽\n销售额：¥6.50万，目标 ¥6.00万（108.3%）\n"
            f"订单：3 单\n[实时数据]({PUBLIC}/sessions/{sid})\n#{ids['milestone:4000000']}",
            f"**目标达成：喀什杏子直播**\n疏附县 · 主播 阿依古丽\n销售额：¥6.50万，目标 ¥6.00万（108.3%）\n"
            f"订单：3 单\n[实时数据]({PUBLIC}/sessions/{sid})\n#{ids['goal']}",
            f"**直播结束：喀什杏子直播**\n疏附县 · 主播 阿依古丽\n销售额：¥65,000.00\n订单：3 单\n件数：3 件\n"
            f"目标完成率：108.3%\n时长：0 分钟\n"
            f"[报告]({PUBLIC}/sessions/{sid})  [战报]({PUBLIC}/sessions/{sid}/poster)\n#{ids['ended']}",
        )
    ]

    # DingTalk: markdown with a title, signed in the query with the secret.
    ding = receiver.of("dingtalk")
    ended = ding[-1]
    assert ended.json == {"msgtype": "markdown", "markdown": {
        "title": "直播结束：喀什杏子直播",
        "text": f"#### 直播结束：喀什杏子直播\n\n疏附县 · 主播 阿依古丽\n\n销售额：¥65,000.00\n\n订单：3 单\n\n件数：3 件\n\n"
                f"目标完成率：108.3%\n\n时长：0 分钟\n\n"
                f"[报告]({PUBLIC}/sessions/{sid})  [战报]({PUBLIC}/sessions/{sid}/poster)\n\n#{ids['ended']}",
    }}
    for r in ding:
        assert set(r.query) == {"access_token", "timestamp", "sign"} and r.query["access_token"] == ["dt-1"]
        timestamp = r.query["timestamp"][0]
        assert abs(int(timestamp) / 1000 - started) < 120
        expected = base64.b64encode(hmac.new(DING_SECRET.encode(), f"{timestamp}\n{DING_SECRET}".encode(),
                                             hashlib.sha256).digest()).decode()
        assert r.query["sign"] == [expected]  # parse_qs decoded the URL-encoding
    assert [r.event_tag for r in ding] == [f"#{ids[k]}" for k in ids]

    # Feishu: a village default (English), a post signed in the body.
    feishu = receiver.of("feishu")
    body = feishu[-1].json
    timestamp = body["timestamp"]
    assert isinstance(timestamp, str) and abs(int(timestamp) - started) < 120
    expected = base64.b64encode(hmac.new(f"{timestamp}\n{FEISHU_SECRET}".encode(), b"",
                                         hashlib.sha256).digest()).decode()
    assert body == {
        "timestamp": timestamp, "sign": expected, "msg_type": "post",
        "content": {"post": {"zh_cn": {"title": "Session ended: 喀什杏子直播", "content": [
            [{"tag": "text", "text": "疏附县 · host 阿依古丽"}],
            [{"tag": "text", "text": "Sales: ¥65,000.00"}],
            [{"tag": "text", "text": "Orders: 3"}],
            [{"tag": "text", "text": "Items: 3"}],
            [{"tag": "text", "text": "Goal attainment: 108.3%"}],
            [{"tag": "text", "text": "Duration: 0 min"}],
            [{"tag": "a", "text": "Report", "href": f"{PUBLIC}/sessions/{sid}"}, {"tag": "text", "text": "  "},
             {"tag": "a", "text": "Poster", "href": f"{PUBLIC}/sessions/{sid}/poster"}],
            [{"tag": "text", "text": f"#{ids['ended']}"}],
        ]}}},
    }
    for r in feishu[:-1]:
        b = r.json
        assert b["sign"] == base64.b64encode(hmac.new(f"{b['timestamp']}\n{FEISHU_SECRET}".encode(), b"",
                                                      hashlib.sha256).digest()).decode()
    # The delivery log keeps each receiver's answer.
    rows = deliveries(store, sid)
    assert {(r.response_status, r.attempts, r.error) for r in rows} == {(200, 1, "")}
    assert {r.response_body for r in rows} >= {'{"errcode": 0, "errmsg": "ok"}',
                                                '{"code": 0, "msg": "success", "data": {}}'}


def test_messages_in_uyghur_and_without_a_public_url(store: Any, host: Actor) -> None:
    payload = {"title": "杏子", "village": "疏附县", "hosts": ["阿依古丽"], "goal_fen": 100_000, "amount_fen": 150_000,
               "orders": 12, "items": 30, "duration_s": 2 * 3600 + 5 * 60, "report_path": "/sessions/7",
               "poster_path": "/sessions/7/poster"}
    message = robot_messages.compose(robot_messages.Event(41, "ended", payload), lang="ug")
    text = "\n".join([message.title, *message.lines])
    assert re.search(r"[\u0600-\u06ff]", text)
    english = [w for w in ("Session", "Sales", "Orders", "Items", "Goal", "Duration", "host", " h ", "min")
               if w in text]
    assert not english, english
    assert "2 سائەت 5 مىنۇت" in text and "¥1,500.00" in text and "150.0%" in text
    assert message.links == [] and message.tag == "#41"  # no PUBLIC_URL: no links, never a relative one
    body = robot_messages.wecom_body(message)["markdown"]["content"]
    assert "](" not in body and body.endswith("\n#41")


def test_text_typed_by_people_cannot_add_markup(store: Any) -> None:
    payload = {"title": "[点我](https://evil.example)\n# <font color=\"warning\">假</font> **粗**", "village": "村",
               "hosts": [], "goal_fen": 0, "report_path": "/sessions/1", "poster_path": "/sessions/1/poster"}
    message = robot_messages.compose(robot_messages.Event(3, "started", payload), lang="zh", public_url=PUBLIC)
    for body in (robot_messages.wecom_body(message)["markdown"]["content"],
                 robot_messages.dingtalk_body(message)["markdown"]["text"]):
        assert "[点我](" not in body and "<font" not in body and "**粗**" not in body
        assert body.count("](") == 1  # the one link is ours
        assert "\n# " not in body and "\n#### " not in body[1:]


# --- failures, retries and no loss -------------------------------------------------------------


def test_a_receiver_answering_500_then_down_then_up_gets_every_message(
        store: Any, host: Actor, receiver: Receiver, make_sender: Any) -> None:
    sid = new_session(store, host, milestone_fen=0)
    add_robot(store, kind="dingtalk", url=receiver.url("dingtalk", "?access_token=x"), session_id=sid,
              secret=DING_SECRET)
    add_robot(store, kind="feishu", url=receiver.url("feishu", "/x"), session_id=sid)
    receiver.mode = "500"
    session_service.start_session(store, actor=host, session_id=sid)
    make_sender().start()
    assert receiver.wait_for(lambda: len(receiver.requests) >= 4), "the 500s were retried"
    receiver.stop()  # down: connections refused
    order_service.record_orders(store, actor=host, session_id=sid, orders=[priced(6_000_000)])  # the goal
    session_service.end_session(store, actor=host, session_id=sid)
    wait_until(lambda: any("refused" in r.error for r in deliveries(store, sid)), what="a refused attempt")
    assert all(r.status in ("pending", "retrying") for r in deliveries(store, sid))
    receiver.mode = "ok"
    receiver.start()  # up again, on the same port
    wait_until(lambda: all_sent(store, sid), what="every delivery sent once the receiver is back")

    e = t.outbox_events
    with store.db.connect() as conn:
        tags = [f"#{i}" for i in conn.execute(sa.select(e.c.id).where(e.c.session_id == sid).order_by(e.c.id)).scalars()]
    assert len(tags) == 3  # started, goal, ended
    for kind in ("dingtalk", "feishu"):
        got = receiver.of(kind)
        taken = [r.event_tag for r in got if r.answered == "ok"]
        assert taken == tags  # every message, in order, each once it was taken
        # Repeats are the same message: one text per event id.
        by_tag: dict[str, set[str]] = {}
        for r in got:
            by_tag.setdefault(r.event_tag, set()).add(r.text)
        assert all(len(texts) == 1 for texts in by_tag.values())
    rows = deliveries(store, sid)
    started = next(r for r in rows if r.key == "started")
    assert started.attempts >= 3 and started.response_status == 200
    assert all(r.error == "" and r.sent_at is not None for r in rows)


def test_an_http_200_with_an_error_code_is_a_failure(store: Any, host: Actor, receiver: Receiver,
                                                     make_sender: Any) -> None:
    answers = iter([b'{"errcode":310000,"errmsg":"sign not match"}', b'{"errcode":0,"errmsg":"ok"}'])
    receiver.mode = lambda got: (200, next(answers))
    sid = new_session(store, host)
    add_robot(store, kind="dingtalk", url=receiver.url("dingtalk", "?access_token=x"), session_id=sid)
    session_service.start_session(store, actor=host, session_id=sid)
    sender = make_sender()
    wait_until(lambda: (sender.run_once() or True) and deliveries(store, sid)[0].status == "retrying")
    first = deliveries(store, sid)[0]
    assert (first.attempts, first.response_status) == (1, 200) and "310000" in first.response_body
    wait_until(lambda: (sender.run_once() or True) and all_sent(store, sid))
    assert [robot_messages.accepted(k, 200, b) for k, b in [
        ("wecom", b'{"errcode":93000,"errmsg":"invalid webhook url"}'), ("feishu", b'{"code":19021,"msg":"sign"}'),
        ("feishu", b'{"StatusCode":0,"StatusMessage":"success"}'), ("wecom", b"not json"),
    ]] == [False, False, True, False]
    assert not robot_messages.accepted("wecom", 500, b'{"errcode":0}')


def test_backoff_grows_by_three_with_jitter_and_is_capped() -> None:
    import random

    rand = random.Random(7)
    for attempts, base in [(1, 5), (2, 15), (3, 45), (4, 135), (5, 405), (6, 600), (40, 600)]:
        delays = [backoff_delay(attempts, rand=rand) for _ in range(200)]
        assert base * 0.8 <= min(delays) and max(delays) <= base * 1.2
        assert max(delays) - min(delays) > base * 0.2  # jittered, not one value


def test_two_senders_never_send_one_delivery_at_the_same_time(store: Any, host: Actor, receiver: Receiver,
                                                               make_sender: Any) -> None:
    sid = new_session(store, host, milestone_fen=100_000)
    for i in range(6):
        add_robot(store, kind="wecom", url=receiver.url("wecom", f"?key=k{i}"), session_id=sid)
    session_service.start_session(store, actor=host, session_id=sid)
    for _ in range(3):  # three milestones, one at a time
        order_service.record_orders(store, actor=host, session_id=sid, orders=[priced(100_000)])
    barrier = threading.Barrier(2)
    senders = [make_sender(), make_sender()]
    done = [0, 0]

    def run(index: int) -> None:
        barrier.wait()
        while not all_sent(store, sid):
            done[index] += senders[index].run_once()

    threads = [threading.Thread(target=run, args=(i,)) for i in range(2)]
    for th in threads:
        th.start()
    for th in threads:
        th.join(60)
    assert all_sent(store, sid)
    # Every receiver "ok"s at once: each delivery was sent exactly once, however the two shared them.
    assert sum(done) == len(receiver.requests) == 6 * 4
    keys = [(r.query["key"][0], r.event_tag) for r in receiver.requests]
    assert len(set(keys)) == len(keys)


def test_a_deleted_robot_is_not_sent_its_waiting_messages(store: Any, host: Actor, receiver: Receiver,
                                                          make_sender: Any) -> None:
    sid = new_session(store, host)
    robot = add_robot(store, kind="wecom", url=receiver.url("wecom"), session_id=sid)
    session_service.start_session(store, actor=host, session_id=sid)
    with write_transaction(store.db) as conn:
        conn.execute(sa.update(t.robots).where(t.robots.c.id == robot).values(deleted_at=utcnow()))
    make_sender().run_once()
    [row] = deliveries(store, sid)
    assert row.status == "failed" and row.attempts == 0 and "deleted" in row.error
    assert receiver.requests == []


# --- goal and milestones: once, the highest, and the sweep ---------------------------------------


def test_crossings_are_computed_in_memory() -> None:
    c = outbox.crossed
    assert c(0, 99, goal_fen=100, milestone_fen=50) == ["milestone:50"]
    assert c(0, 350, goal_fen=1000, milestone_fen=100) == ["milestone:300"]  # several at once: the highest
    assert c(90, 120, goal_fen=100, milestone_fen=100) == ["goal"]  # the goal's own milestone is the goal
    assert c(90, 220, goal_fen=100, milestone_fen=100) == ["milestone:200", "goal"]
    assert c(150, 160, goal_fen=100, milestone_fen=100) == []
    assert c(160, 150, goal_fen=100, milestone_fen=100) == []  # a refund
    assert c(0, 10**9, goal_fen=0, milestone_fen=0) == []


def test_a_crossing_is_recorded_once_and_a_lower_milestone_never_after_a_higher(
        store: Any, host: Actor, receiver: Receiver) -> None:
    sid = new_session(store, host, milestone_fen=1_000_000)
    add_robot(store, kind="wecom", url=receiver.url("wecom"), session_id=sid)
    session_service.start_session(store, actor=host, session_id=sid)
    first = order_service.record_orders(store, actor=host, session_id=sid, orders=[priced(3_500_000)])
    assert events(store, sid) == ["started", "milestone:3000000"]
    # A refund dips under every milestone; passing ¥1万 (never told: ¥3万 was passed at once) and then
    # ¥3万 again tells nothing new.
    order_service.refund_order(store, actor=host, session_id=sid, order_id=first.orders[0]["id"])
    order_service.record_orders(store, actor=host, session_id=sid, orders=[priced(1_500_000)])
    order_service.record_orders(store, actor=host, session_id=sid, orders=[priced(1_700_000)])
    assert events(store, sid) == ["started", "milestone:3000000"]
    # Written twice (another process, the sweep): nothing added.
    info = session_service.get_session(store, actor=host, session_id=sid)
    with write_transaction(store.db) as conn:
        assert outbox.record_crossings(conn, info, amount_fen=3_200_000, orders=2, items=2,
                                       keys=["milestone:3000000"]) == []
    assert outbox.sweep_crossings(store.db) == 0
    assert len(deliveries(store, sid)) == 2


def test_the_sweep_records_a_crossing_whose_writer_died(store: Any, host: Actor, receiver: Receiver,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    sid = new_session(store, host, milestone_fen=1_000_000)
    add_robot(store, kind="wecom", url=receiver.url("wecom"), session_id=sid)
    session_service.start_session(store, actor=host, session_id=sid)
    # The process dies between the order's commit and the event's write: that write never happens.
    with monkeypatch.context() as m:
        m.setattr(outbox, "note_amount", lambda *a, **k: None)
        order_service.record_orders(store, actor=host, session_id=sid, orders=[priced(6_200_000)])
    assert events(store, sid) == ["started"]
    assert outbox.sweep_crossings(store.db) == 2
    assert events(store, sid) == ["started", "milestone:5000000", "goal"]  # the highest milestone, the goal
    assert outbox.sweep_crossings(store.db) == 0
    # And the end records what is still missing before "ended" (here: nothing more).
    with monkeypatch.context() as m:
        m.setattr(outbox, "note_amount", lambda *a, **k: None)
        order_service.record_orders(store, actor=host, session_id=sid, orders=[priced(1_000_000)])
    session_service.end_session(store, actor=host, session_id=sid)
    assert events(store, sid) == ["started", "milestone:5000000", "goal", "milestone:7000000", "ended"]


def test_orders_on_a_session_without_robots_touch_no_robot_table(store: Any, host: Actor) -> None:
    sid = new_session(store, host, milestone_fen=100_000)
    session_service.start_session(store, actor=host, session_id=sid)
    statements: list[str] = []

    def seen(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        statements.append(statement)

    def robot_sql() -> list[str]:
        return [s for s in statements if "robots" in s or "outbox_events" in s or "robot_deliveries" in s]

    sa.event.listen(store.db, "before_cursor_execute", seen)
    try:
        for _ in range(5):  # each crosses a milestone: one look for robots, then the cache answers
            order_service.record_orders(store, actor=host, session_id=sid, orders=[priced(100_000)])
        assert len(robot_sql()) == 1 and "FROM robots" in robot_sql()[0]
        outbox.forget_robots_cache()  # as when the cache's few seconds have passed
        for _ in range(5):  # no crossing: no look at all
            order_service.record_orders(store, actor=host, session_id=sid, orders=[priced(10)])
        assert len(robot_sql()) == 1
    finally:
        sa.event.remove(store.db, "before_cursor_execute", seen)
    assert events(store, sid) == ["started"]


def test_village_defaults_hear_every_session_of_their_village_only(store: Any, host: Actor) -> None:
    mine = new_session(store, host)
    other = new_session(store, host, village="伽师县")
    add_robot(store, kind="wecom", url="http://127.0.0.1:9/a", village="疏附县")
    deleted = add_robot(store, kind="wecom", url="http://127.0.0.1:9/b", village="疏附县")
    with write_transaction(store.db) as conn:
        conn.execute(sa.update(t.robots).where(t.robots.c.id == deleted).values(deleted_at=utcnow()))
    for sid in (mine, other):
        session_service.start_session(store, actor=host, session_id=sid)
        session_service.start_session(store, actor=host, session_id=sid)  # starting twice tells once
    assert [r.key for r in deliveries(store, mine)] == ["started"]
    assert deliveries(store, other) == [] and events(store, other) == ["started"]
