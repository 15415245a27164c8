"""Group-chat robots as people manage them (core.robots): the body's checks name their field, each kind's
address shape, masking that never shows a key or a secret, who may add, list and delete (a village's
defaults: admins), soft deletion that stops what was not yet sent, and the delivery log — on the real
database of the run. Deliveries are written here directly, as the sender records them."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import sqlalchemy as sa
from hypothesis import given, settings
from hypothesis import strategies as st

from livesale.core import robots, validation
from livesale.core import sessions as session_service
from livesale.core import tables as t
from livesale.core.auth import Actor
from livesale.core.db import write_transaction
from livesale.core.errors import Conflict, DomainError, Forbidden, InvalidInput, NotFound
from tests.conftest import APRICOT_SESSION, Users

DING_TOKEN = "c0ffee11c0ffee22c0ffee33c0ffee44c0ffee55c0ffee66c0ffee77c0ffee88"
DING_SECRET = "SEC0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcd"
WECOM_KEY = "693a91f6-7xxx-4bc4-97a0-0ec2sifa5aaa"
FEISHU_HOOK = "2f7b8b1c-3d4e-4f50-8a9b-0c1d2e3f4a5b"
DING_URL = f"https://oapi.dingtalk.com/robot/send?access_token={DING_TOKEN}"
WECOM_URL = f"https://qyapi.weixin.qq.com/cgi-bin/webhook/send?key={WECOM_KEY}"
FEISHU_URL = f"https://open.feishu.cn/open-apis/bot/v2/hook/{FEISHU_HOOK}"
LARK_URL = f"https://open.larksuite.com/open-apis/bot/v2/hook/{FEISHU_HOOK}"
#: Real robots' hosts are not looked up here (no DNS in tests): private addresses "allowed" skips the lookup,
#: and the shape is still checked (an https URL on a named host).
NO_LOOKUP = {"allow_http": False, "allow_private": True}
LOCAL = {"allow_http": True, "allow_private": True}


@pytest.fixture
def world(store: Any, users: Users) -> dict[str, Any]:
    host = users.actor("host")
    other = users.actor("host", "host-2")

    def session(owner: Actor, **extra: Any) -> int:
        data = validation.parse_session({**APRICOT_SESSION, **extra})
        return session_service.create_session(store, actor=owner, data=data).id

    return {
        "store": store, "host": host, "other": other, "admin": users.actor("admin"),
        "official": users.actor("official"),
        "session": session(host), "sibling": session(host, title="第二场"),  # same village, same host
        "neighbour": session(other, title="别人的场次"),  # same village, another host
        "elsewhere": session(host, village="伽师县"), "no_village": session(host, village=""),
    }


def add(w: dict[str, Any], body: dict[str, Any], *, who: str = "host", session: str = "session",
        policy: dict[str, bool] = NO_LOOKUP) -> robots.RobotInfo:
    return robots.add_robot(w["store"], actor=w[who], session_id=w[session], data=robots.parse_robot(body), **policy)


def robot_rows(store: Any) -> list[Any]:
    with store.db.connect() as conn:
        return conn.execute(sa.select(t.robots).order_by(t.robots.c.id)).all()


# --- the body --------------------------------------------------------------------------------------


@pytest.mark.parametrize(("body", "field", "code"), [
    ([], "body", "invalid"),
    ({"url": DING_URL}, "kind", "kind_missing"),
    ({"kind": "wechat", "url": DING_URL}, "kind", "kind_unknown"),
    ({"kind": 1, "url": DING_URL}, "kind", "kind_unknown"),
    ({"kind": "dingtalk"}, "url", "url_missing"),
    ({"kind": "dingtalk", "url": "   "}, "url", "url_missing"),
    ({"kind": "dingtalk", "url": ["x"]}, "url", "url_invalid"),
    ({"kind": "wecom", "url": WECOM_URL, "secret": "SECabc"}, "secret", "secret_not_for_wecom"),
    ({"kind": "dingtalk", "url": DING_URL, "secret": "two words"}, "secret", "secret_invalid"),
    ({"kind": "dingtalk", "url": DING_URL, "secret": ""}, "secret", "secret_invalid"),
    ({"kind": "dingtalk", "url": DING_URL, "secret": "x" * 201}, "secret", "secret_invalid"),
    ({"kind": "dingtalk", "url": DING_URL, "secret": 5}, "secret", "secret_invalid"),
    ({"kind": "dingtalk", "url": DING_URL, "secret": f" {DING_SECRET}"}, "secret", "secret_invalid"),
    ({"kind": "dingtalk", "url": DING_URL, "scope": None}, "scope", "scope_missing"),
    ({"kind": "dingtalk", "url": DING_URL, "scope": "county"}, "scope", "scope_unknown"),
    ({"kind": "dingtalk", "url": DING_URL, "lang": "fr"}, "lang", "lang_unknown"),
    ({"kind": "dingtalk", "url": DING_URL, "signing": "x"}, "signing", "invalid"),
])
def test_each_refusal_names_its_field(body: Any, field: str, code: str) -> None:
    with pytest.raises(InvalidInput) as refused:
        robots.parse_robot(body)
    assert (refused.value.field, refused.value.code) == (field, code)


def test_defaults_and_what_is_kept() -> None:
    parsed = robots.parse_robot({"kind": "feishu", "url": f"  {FEISHU_URL}\n"})
    assert parsed == robots.RobotInput(kind="feishu", url=FEISHU_URL, secret=None, scope="session", lang="zh")
    assert robots.parse_robot({"kind": "wecom", "url": WECOM_URL}, default_lang="ug").lang == "ug"
    assert robots.parse_robot({"kind": "wecom", "url": WECOM_URL, "lang": "en"}, default_lang="ug").lang == "en"
    assert robots.parse_robot({"kind": "dingtalk", "url": DING_URL, "secret": None}).secret is None


# --- the address -----------------------------------------------------------------------------------


@pytest.mark.parametrize(("kind", "url"), [("dingtalk", DING_URL), ("wecom", WECOM_URL), ("feishu", FEISHU_URL),
                                           ("feishu", LARK_URL)])
def test_each_kinds_own_address_is_taken(kind: str, url: str) -> None:
    robots.check_url(kind, url, **NO_LOOKUP)


@pytest.mark.parametrize(("kind", "url", "code"), [
    ("wecom", DING_URL, "url_other_kind"),
    ("dingtalk", FEISHU_URL, "url_other_kind"),
    ("feishu", WECOM_URL, "url_other_kind"),
    ("dingtalk", "https://example.com/robot/send?access_token=" + DING_TOKEN, "url_shape"),
    ("dingtalk", "https://oapi.dingtalk.com/robot/send", "url_shape"),
    ("dingtalk", "https://oapi.dingtalk.com/robot/sendx?access_token=" + DING_TOKEN, "url_shape"),
    ("dingtalk", DING_URL + "&access_token=" + DING_TOKEN, "url_shape"),
    ("dingtalk", DING_URL + "&timestamp=1780000000000&sign=abc%3D", "url_signed"),
    ("wecom", "https://qyapi.weixin.qq.com/cgi-bin/webhook/send?key=", "url_shape"),
    ("feishu", "https://open.feishu.cn/open-apis/bot/v2/hook/", "url_shape"),
    ("feishu", "https://open.feishu.cn/open-apis/bot/v2/hook/a/b/c/d/e", "url_shape"),
    # What check_robot_url refuses comes through with its own codes.
    ("dingtalk", DING_URL.replace("https:", "http:"), "url_not_https"),
    ("dingtalk", "ftp://oapi.dingtalk.com/robot/send", "url_not_https"),
    ("dingtalk", "https://user:pw@oapi.dingtalk.com/robot/send?access_token=" + DING_TOKEN, "url_credentials"),
    ("dingtalk", DING_URL + "#x", "url_invalid"),
    ("dingtalk", "not a url", "url_invalid"),
])
def test_an_address_not_of_its_kind_is_refused(kind: str, url: str, code: str) -> None:
    with pytest.raises(InvalidInput) as refused:
        robots.check_url(kind, url, **NO_LOOKUP)
    assert (refused.value.field, refused.value.code) == ("url", code)


def test_a_local_receiver_is_taken_only_when_the_settings_allow_it() -> None:
    """The tests' receiver (http://127.0.0.1:port/…) has no kind's shape: only the test settings let it in."""
    local = "http://127.0.0.1:8123/ding?access_token=" + DING_TOKEN
    robots.check_url("dingtalk", local, **LOCAL)
    robots.check_url("feishu", "https://127.0.0.1:8443/anything", allow_http=False, allow_private=True)
    with pytest.raises(InvalidInput) as refused:
        robots.check_url("dingtalk", local, allow_http=False, allow_private=True)
    assert refused.value.code == "url_not_https"
    with pytest.raises(InvalidInput) as refused:
        robots.check_url("dingtalk", local, allow_http=True, allow_private=False)
    assert refused.value.code == "url_private"
    with pytest.raises(InvalidInput) as refused:  # a named host is checked for its shape even in the tests
        robots.check_url("dingtalk", "https://relay.example.cn/x", **LOCAL)
    assert refused.value.code == "url_shape"


# --- masking ---------------------------------------------------------------------------------------


def test_masks_as_people_read_them() -> None:
    assert robots.mask_url(DING_URL, "dingtalk") == "https://oapi.dingtalk.com/robot/send?access_token=c0…88"
    assert robots.mask_url(WECOM_URL, "wecom") == "https://qyapi.weixin.qq.com/cgi-bin/webhook/send?key=69…aa"
    assert robots.mask_url(FEISHU_URL, "feishu") == "https://open.feishu.cn/open-apis/bot/v2/hook/2f…5b"
    assert robots.mask_url("http://127.0.0.1:81/hook/short", "wecom") == "http://127.0.0.1:81/hook/…"
    assert robots.mask_url("http://127.0.0.1:81/x?a=1&b&c=" + "k" * 20) == "http://127.0.0.1:81/x?a=…&b&c=kk…kk"


@settings(max_examples=200, deadline=None)
@given(token=st.text(st.sampled_from("abcdefABCDEF0123456789-_"), min_size=8, max_size=80),
       kind=st.sampled_from(robots.KINDS), in_path=st.booleans())
def test_a_masked_address_never_holds_the_key(token: str, kind: str, in_path: bool) -> None:
    url = f"https://h.example/p/{token}" if in_path else f"https://h.example/p?key={token}&n=1"
    masked = robots.mask_url(url, kind)
    assert token not in masked
    assert masked.startswith("https://h.example/")


# --- adding and listing ----------------------------------------------------------------------------


def test_added_robots_are_listed_masked_and_without_their_secret(world: dict[str, Any]) -> None:
    store = world["store"]
    ding = add(world, {"kind": "dingtalk", "url": DING_URL, "secret": DING_SECRET, "lang": "ug"})
    wecom = add(world, {"kind": "wecom", "url": WECOM_URL})
    listed = robots.list_robots(store, actor=world["host"], session_id=world["session"])
    assert [r.id for r in listed] == [ding.id, wecom.id]
    views = [robots.robot_view(r) for r in listed]
    assert views[0] == {
        "id": ding.id, "kind": "dingtalk", "url": "https://oapi.dingtalk.com/robot/send?access_token=c0…88",
        "has_secret": True, "scope": "session", "village": None, "lang": "ug", "created_by": "host",
        "created_at": views[0]["created_at"]}
    assert views[0]["created_at"].endswith("Z") and views[1]["has_secret"] is False
    shown = repr(listed) + repr(views) + repr(ding) + repr(wecom)
    for raw in (DING_TOKEN, DING_SECRET, WECOM_KEY):
        assert raw not in shown
    # Kept as given: sending needs them.
    rows = robot_rows(store)
    assert [(r.url, r.secret, r.session_id, r.village) for r in rows] == [
        (DING_URL, DING_SECRET, world["session"], None), (WECOM_URL, None, world["session"], None)]


def test_a_village_default_is_an_admins_and_is_told_about_every_session_of_the_village(
        world: dict[str, Any]) -> None:
    store = world["store"]
    with pytest.raises(Forbidden) as refused:
        add(world, {"kind": "feishu", "url": FEISHU_URL, "scope": "village"})
    assert (refused.value.field, refused.value.code) == ("scope", "village_admin_only")
    assert robot_rows(store) == []
    default = add(world, {"kind": "feishu", "url": FEISHU_URL, "scope": "village"}, who="admin")
    assert (default.scope, default.village) == ("village", "疏附县")
    own = add(world, {"kind": "wecom", "url": WECOM_URL}, session="sibling")

    def listed(session: str, who: str = "host") -> list[int]:
        return [r.id for r in robots.list_robots(store, actor=world[who], session_id=world[session])]

    assert listed("session") == [default.id]
    assert listed("sibling") == [own.id, default.id]  # the session's own first
    assert listed("neighbour", "other") == [default.id]  # another host's session in the village is told too
    assert listed("elsewhere") == [] and listed("no_village") == []
    with pytest.raises(InvalidInput) as refused:
        add(world, {"kind": "feishu", "url": LARK_URL, "scope": "village"}, who="admin", session="no_village")
    assert (refused.value.field, refused.value.code) == ("scope", "no_village")


@pytest.mark.parametrize(("who", "session", "error"), [
    ("other", "session", Forbidden), ("official", "session", Forbidden), ("host", "neighbour", Forbidden)])
def test_only_the_sessions_host_or_an_admin_adds(world: dict[str, Any], who: str, session: str,
                                                  error: type[DomainError]) -> None:
    with pytest.raises(error):
        add(world, {"kind": "dingtalk", "url": DING_URL}, who=who, session=session)
    assert robot_rows(world["store"]) == []
    assert add(world, {"kind": "dingtalk", "url": DING_URL}, who="admin", session=session).scope == "session"


def test_no_session_is_not_found(world: dict[str, Any]) -> None:
    with pytest.raises(NotFound):
        robots.add_robot(world["store"], actor=world["admin"], session_id=424242,
                         data=robots.parse_robot({"kind": "dingtalk", "url": DING_URL}), **NO_LOOKUP)
    with pytest.raises(NotFound):
        robots.list_robots(world["store"], actor=world["admin"], session_id=424242)


def test_the_same_group_twice_or_too_many_robots_are_refused(world: dict[str, Any]) -> None:
    store = world["store"]
    add(world, {"kind": "dingtalk", "url": DING_URL})
    with pytest.raises(Conflict) as refused:
        add(world, {"kind": "dingtalk", "url": DING_URL, "secret": DING_SECRET})
    assert (refused.value.field, refused.value.code) == ("url", "robot_exists")
    with pytest.raises(Conflict):  # a village default at an address the session already tells
        add(world, {"kind": "dingtalk", "url": DING_URL, "scope": "village"}, who="admin")
    for i in range(robots.MAX_ROBOTS - 1):
        add(world, {"kind": "wecom", "url": f"{WECOM_URL[:-3]}{i:03d}"})
    with pytest.raises(Conflict) as refused:
        add(world, {"kind": "wecom", "url": f"{WECOM_URL[:-3]}999"})
    assert (refused.value.field, refused.value.code) == ("scope", "too_many_robots")
    assert len(robot_rows(store)) == robots.MAX_ROBOTS
    # Another session has room of its own.
    add(world, {"kind": "wecom", "url": f"{WECOM_URL[:-3]}999"}, session="sibling")


def test_an_address_refused_stores_nothing(world: dict[str, Any]) -> None:
    for body, policy in (({"kind": "wecom", "url": DING_URL}, NO_LOOKUP),
                         ({"kind": "wecom", "url": "http://127.0.0.1:9/x"}, NO_LOOKUP),
                         ({"kind": "wecom", "url": "https://127.0.0.1:9/x"}, {"allow_http": True,
                                                                              "allow_private": False})):
        with pytest.raises(InvalidInput):
            add(world, body, policy=policy)
    assert robot_rows(world["store"]) == []


# --- deleting --------------------------------------------------------------------------------------


def _event(store: Any, session_id: int, key: str, at: datetime) -> int:
    with write_transaction(store.db) as conn:
        return conn.execute(sa.insert(t.outbox_events).values(
            session_id=session_id, key=key, payload={"amount_fen": 1}, created_at=at).returning(t.outbox_events.c.id)
        ).scalar_one()


def _delivery(store: Any, *, event: int, robot: int, session_id: int, status: str, **values: Any) -> int:
    with write_transaction(store.db) as conn:
        return conn.execute(sa.insert(t.robot_deliveries).values(
            event_id=event, robot_id=robot, session_id=session_id, status=status, **values,
        ).returning(t.robot_deliveries.c.id)).scalar_one()


def _statuses(store: Any) -> dict[int, tuple[str, str]]:
    d = t.robot_deliveries
    with store.db.connect() as conn:
        return {r.id: (r.status, r.error) for r in conn.execute(sa.select(d.c.id, d.c.status, d.c.error))}


def test_delete_keeps_the_row_and_stops_what_was_not_yet_sent(world: dict[str, Any]) -> None:
    store, sid = world["store"], world["session"]
    ding = add(world, {"kind": "dingtalk", "url": DING_URL})
    wecom = add(world, {"kind": "wecom", "url": WECOM_URL})
    now = datetime.now(UTC)
    started, goal = _event(store, sid, "started", now), _event(store, sid, "goal", now)
    sent = _delivery(store, event=started, robot=ding.id, session_id=sid, status="sent", attempts=1, sent_at=now)
    pending = _delivery(store, event=goal, robot=ding.id, session_id=sid, status="pending")
    retrying = _delivery(store, event=started, robot=wecom.id, session_id=sid, status="retrying", attempts=2)
    robots.delete_robot(store, actor=world["host"], session_id=sid, robot_id=ding.id)
    assert [r.id for r in robots.list_robots(store, actor=world["host"], session_id=sid)] == [wecom.id]
    assert [r.deleted_at is not None for r in robot_rows(store)] == [True, False]
    assert _statuses(store) == {sent: ("sent", ""), pending: ("failed", robots.DELETED_ERROR),
                                retrying: ("retrying", "")}
    with pytest.raises(NotFound):  # deleted already
        robots.delete_robot(store, actor=world["host"], session_id=sid, robot_id=ding.id)
    # The log still names it.
    log = robots.delivery_log(store, actor=world["host"], session_id=sid)
    assert {d.id: d.robot_deleted for d in log} == {sent: True, pending: True, retrying: False}


def test_who_may_delete(world: dict[str, Any]) -> None:
    store, sid = world["store"], world["session"]
    own = add(world, {"kind": "dingtalk", "url": DING_URL})
    default = add(world, {"kind": "feishu", "url": FEISHU_URL, "scope": "village"}, who="admin")
    theirs = add(world, {"kind": "wecom", "url": WECOM_URL}, who="other", session="neighbour")
    for who, robot, error in (("other", own, Forbidden), ("official", own, Forbidden),
                              ("host", default, Forbidden), ("host", theirs, NotFound)):
        with pytest.raises(error):
            robots.delete_robot(store, actor=world[who], session_id=sid, robot_id=robot.id)
    assert all(r.deleted_at is None for r in robot_rows(store))
    with pytest.raises(NotFound):  # a robot of another session, through this one
        robots.delete_robot(store, actor=world["admin"], session_id=sid, robot_id=theirs.id)
    robots.delete_robot(store, actor=world["admin"], session_id=world["neighbour"], robot_id=default.id)
    robots.delete_robot(store, actor=world["host"], session_id=sid, robot_id=own.id)
    assert robots.list_robots(store, actor=world["host"], session_id=sid) == []
    assert [r.id for r in robots.list_robots(store, actor=world["other"], session_id=world["neighbour"])] == [
        theirs.id]


# --- the delivery log ------------------------------------------------------------------------------


def test_the_delivery_log_tells_each_outcome_newest_first(world: dict[str, Any]) -> None:
    store, sid = world["store"], world["session"]
    ding = add(world, {"kind": "dingtalk", "url": DING_URL, "secret": DING_SECRET})
    default = add(world, {"kind": "feishu", "url": FEISHU_URL, "scope": "village"}, who="admin")
    t0 = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)
    started, milestone, ended = (_event(store, sid, key, t0 + timedelta(minutes=m))
                                 for key, m in (("started", 0), ("milestone:1000000", 30), ("ended", 90)))
    _event(store, world["sibling"], "started", t0)  # another session's: not in this log
    rows = {
        "sent": _delivery(store, event=started, robot=ding.id, session_id=sid, status="sent", attempts=1,
                          last_attempt_at=t0, sent_at=t0, response_status=200, response_body='{"errcode":0}'),
        "retrying": _delivery(store, event=milestone, robot=ding.id, session_id=sid, status="retrying", attempts=2,
                              last_attempt_at=t0, next_attempt_at=t0 + timedelta(minutes=31), response_status=500,
                              response_body="busy"),
        "failed": _delivery(store, event=milestone, robot=default.id, session_id=sid, status="failed", attempts=8,
                            last_attempt_at=t0, error="connection refused"),
        "pending": _delivery(store, event=ended, robot=ding.id, session_id=sid, status="pending",
                             next_attempt_at=t0 + timedelta(minutes=90)),
    }
    log = robots.delivery_log(store, actor=world["official"], session_id=sid)  # officials read outcomes
    assert [d.id for d in log] == [rows["pending"], rows["retrying"], rows["failed"], rows["sent"]]
    views = {d.status: robots.delivery_view(d) for d in log}
    assert views["retrying"] == {
        "id": rows["retrying"], "event": {"key": "milestone:1000000", "created_at": "2026-06-01T12:30:00Z"},
        "robot": {"id": ding.id, "kind": "dingtalk", "url": "https://oapi.dingtalk.com/robot/send?access_token=c0…88",
                  "scope": "session", "deleted": False},
        "status": "retrying", "attempts": 2, "last_attempt_at": "2026-06-01T12:00:00Z",
        "next_attempt_at": "2026-06-01T12:31:00Z", "sent_at": None, "response_status": 500,
        "response_body": "busy", "error": ""}
    assert views["sent"]["next_attempt_at"] is None and views["sent"]["sent_at"] == "2026-06-01T12:00:00Z"
    assert views["failed"]["robot"]["scope"] == "village" and views["failed"]["next_attempt_at"] is None
    assert views["pending"]["attempts"] == 0 and views["pending"]["last_attempt_at"] is None
    assert DING_TOKEN not in repr(views) and DING_SECRET not in repr(views) and FEISHU_HOOK not in repr(views)
    assert [d.id for d in robots.delivery_log(store, actor=world["host"], session_id=sid, limit=2)] == [
        rows["pending"], rows["retrying"]]
    with pytest.raises(Forbidden):
        robots.delivery_log(store, actor=world["other"], session_id=sid)
    with pytest.raises(Forbidden):
        robots.list_robots(store, actor=world["other"], session_id=sid)
    assert robots.delivery_log(store, actor=world["host"], session_id=world["sibling"]) == []
