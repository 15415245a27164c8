"""Group-chat robots through the app (test client, real database and Redis): the notifications API by role,
masked answers that never carry a key or a secret, refusals that name their field and store nothing, soft
deletion, the delivery log; and the report page's section — its add form (CSRF, refusals in the page's
language, the typed address never written back), delete buttons, and the log in the session's time zone."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import sqlalchemy as sa

from livesale.core import robots as robot_service
from livesale.core import tables as t
from livesale.core.db import write_transaction
from tests.conftest import APRICOT_SESSION, Api, Users, free_port
from tests.web.test_outsider_fuzz import fingerprint
from tests.web.test_pages import login, page_csrf

PORT = free_port()
DING_TOKEN = "d1n9d1n9d1n9d1n9aaaabbbbccccdddd0000111122223333444455556666f9f9"
WECOM_KEY = "0b0b0b0b-1c1c-4d4d-8e8e-9f9f9f9f9f9f"
SECRET = "SECfeedfacefeedfacefeedfacefeedfacefeedfacefeedfacefeedfacefeedface"
#: The tests' receiver: a local address, taken because the test settings allow http and private hosts.
DING_URL = f"http://127.0.0.1:{PORT}/robot/send?access_token={DING_TOKEN}"
WECOM_URL = f"http://127.0.0.1:{PORT}/cgi-bin/webhook/send?key={WECOM_KEY}"
RAW = (DING_TOKEN, WECOM_KEY, SECRET)


@pytest.fixture
def app(app: Any) -> Any:
    """The app with the tests' settings for robot addresses (read per request)."""
    app.config.update(WEBHOOK_ALLOW_HTTP=True, WEBHOOK_ALLOW_PRIVATE=True)
    return app


def path(session_id: int, tail: str = "") -> str:
    return f"/api/v1/sessions/{session_id}/notifications{tail}"


def delete(api: Api, url: str) -> Any:
    return api.client.delete(url, headers={"Authorization": f"Bearer {api.token}"})


def assert_no_secret(text: str) -> None:
    for raw in RAW:
        assert raw not in text


@pytest.fixture
def sessions(host_api: Api, users: Users) -> dict[str, int]:
    def create(api: Api, **extra: Any) -> int:
        r = api.post("/api/v1/sessions", json={**APRICOT_SESSION, **extra})
        assert r.status_code == 201, r.json
        return int(r.json["id"])

    return {"own": create(host_api), "theirs": create(users.api("host", "host-2"), title="别人的"),
            "no_village": create(host_api, village="")}


def test_a_host_adds_lists_and_deletes_a_robot(host_api: Api, sessions: dict[str, int]) -> None:
    sid = sessions["own"]
    r = host_api.post(path(sid), json={"kind": "dingtalk", "url": DING_URL, "secret": SECRET, "lang": "ug"})
    assert r.status_code == 201, r.json
    ding = r.json
    assert ding == {"id": ding["id"], "kind": "dingtalk", "url": f"http://127.0.0.1:{PORT}/robot/send?access_token=d1…f9",
                    "has_secret": True, "scope": "session", "village": None, "lang": "ug", "created_by": "host",
                    "created_at": ding["created_at"]}
    r = host_api.post(path(sid), json={"kind": "wecom", "url": WECOM_URL})
    assert r.status_code == 201 and r.json["has_secret"] is False and r.json["lang"] == "zh"
    listed = host_api.get(path(sid))
    assert listed.status_code == 200
    assert [x["id"] for x in listed.json["robots"]] == [ding["id"], r.json["id"]]
    assert listed.json["robots"][0] == ding
    assert_no_secret(listed.text + r.text)
    gone = delete(host_api, path(sid, f"/{ding['id']}"))
    assert gone.status_code == 204 and gone.data == b""
    assert [x["kind"] for x in host_api.get(path(sid)).json["robots"]] == ["wecom"]
    again = delete(host_api, path(sid, f"/{ding['id']}"))
    assert again.status_code == 404 and again.json["error"]["field"] == "robot_id"
    assert delete(host_api, path(sid, "/424242")).status_code == 404
    assert delete(host_api, path(sid, f"/{2**40}")).status_code == 404  # not an overflow


def test_roles(store: Any, host_api: Api, users: Users, sessions: dict[str, int]) -> None:
    sid = sessions["own"]
    body = {"kind": "dingtalk", "url": DING_URL}
    anonymous = Api(host_api.client, None)
    other, official, admin = users.api("host", "host-2"), users.api("official"), users.api("admin")
    before = fingerprint(store)
    assert anonymous.post(path(sid), json=body).status_code == 401
    assert other.post(path(sid), json=body).status_code == 403
    assert official.post(path(sid), json=body).status_code == 403
    assert fingerprint(store) == before
    made = admin.post(path(sid), json=body)
    assert made.status_code == 201 and made.json["created_by"] == "admin"
    # Whoever reads the session reads its robots (masked) and the log: officials too; another host not.
    for api, status in ((host_api, 200), (official, 200), (admin, 200), (other, 403), (anonymous, 401)):
        assert api.get(path(sid)).status_code == status
        assert api.get(path(sid, "/deliveries")).status_code == status
    before = fingerprint(store)
    for api, status in ((other, 403), (official, 403), (anonymous, 401)):
        assert delete(api, path(sid, f"/{made.json['id']}")).status_code == status
    assert fingerprint(store) == before
    assert delete(host_api, path(sid, f"/{made.json['id']}")).status_code == 204


def test_a_village_default_is_for_admins(store: Any, host_api: Api, users: Users, sessions: dict[str, int]) -> None:
    body = {"kind": "wecom", "url": WECOM_URL, "scope": "village"}
    before = fingerprint(store)
    refused = host_api.post(path(sessions["own"]), json=body)
    assert refused.status_code == 403 and refused.json["error"]["field"] == "scope"
    assert fingerprint(store) == before
    admin = users.api("admin")
    made = admin.post(path(sessions["own"]), json=body)
    assert made.status_code == 201 and (made.json["scope"], made.json["village"]) == ("village", "疏附县")
    # Told about the other host's session of the village too, which lists it (masked).
    theirs = users.api("host", "host-2").get(path(sessions["theirs"]))
    assert [x["id"] for x in theirs.json["robots"]] == [made.json["id"]]
    # Its host may not remove it; an admin may.
    assert delete(host_api, path(sessions["own"], f"/{made.json['id']}")).status_code == 403
    assert delete(admin, path(sessions["theirs"], f"/{made.json['id']}")).status_code == 204
    no_village = admin.post(path(sessions["no_village"]), json=body)
    assert no_village.status_code == 422 and no_village.json["error"]["code"] == "no_village"


@pytest.mark.parametrize(("body", "status", "field", "code"), [
    ({"kind": "slack", "url": DING_URL}, 422, "kind", "kind_unknown"),
    ({"url": DING_URL}, 422, "kind", "kind_missing"),
    ({"kind": "dingtalk"}, 422, "url", "url_missing"),
    ({"kind": "dingtalk", "url": "javascript:alert(1)"}, 422, "url", "url_not_https"),
    ({"kind": "wecom", "url": WECOM_URL, "secret": SECRET}, 422, "secret", "secret_not_for_wecom"),
    ({"kind": "dingtalk", "url": DING_URL, "secret": "has space"}, 422, "secret", "secret_invalid"),
    ({"kind": "dingtalk", "url": DING_URL, "lang": "de"}, 422, "lang", "lang_unknown"),
    ({"kind": "dingtalk", "url": DING_URL, "token": "x"}, 422, "token", "invalid"),
    ({"kind": "wecom", "url": f"https://oapi.dingtalk.com/robot/send?access_token={DING_TOKEN}"}, 422, "url",
     "url_other_kind"),
    ({"kind": "dingtalk", "url": "https://ding.example.cn/robot/send?access_token=" + DING_TOKEN}, 422, "url",
     "url_shape"),
])
def test_refusals_name_their_field_and_store_nothing(store: Any, host_api: Api, sessions: dict[str, int], body: Any,
                                                     status: int, field: str, code: str) -> None:
    before = fingerprint(store)
    r = host_api.post(path(sessions["own"]), json=body)
    assert (r.status_code, r.json["error"]["field"], r.json["error"]["code"]) == (status, field, code), r.json
    assert fingerprint(store) == before
    assert_no_secret(r.text)


def test_not_json_is_400_and_a_repeat_is_409(host_api: Api, sessions: dict[str, int]) -> None:
    sid = sessions["own"]
    r = host_api.client.post(path(sid), data="kind=wecom", headers={"Authorization": f"Bearer {host_api.token}",
                                                                    "Content-Type": "text/plain"})
    assert r.status_code == 400 and r.json["error"]["field"] == "body"
    assert host_api.post(path(sid), json={"kind": "dingtalk", "url": DING_URL}).status_code == 201
    r = host_api.post(path(sid), json={"kind": "dingtalk", "url": DING_URL})
    assert (r.status_code, r.json["error"]["code"], r.json["error"]["field"]) == (409, "robot_exists", "url")


def test_production_settings_refuse_the_local_receiver(app: Any, host_api: Api, sessions: dict[str, int]) -> None:
    app.config.update(WEBHOOK_ALLOW_HTTP=False, WEBHOOK_ALLOW_PRIVATE=False)
    r = host_api.post(path(sessions["own"]), json={"kind": "dingtalk", "url": DING_URL})
    assert (r.status_code, r.json["error"]["code"]) == (422, "url_not_https")
    r = host_api.post(path(sessions["own"]), json={"kind": "dingtalk", "url": DING_URL.replace("http:", "https:")})
    assert (r.status_code, r.json["error"]["code"]) == (422, "url_private")
    assert host_api.get(path(sessions["own"])).json["robots"] == []


# --- the delivery log ------------------------------------------------------------------------------

T0 = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)  # 20:00 in Kashgar's Beijing time


def record_deliveries(store: Any, session_id: int, robot_id: int) -> dict[str, int]:
    """Deliveries of each status, as the sender records them (written here directly)."""
    with write_transaction(store.db) as conn:
        def event(key: str, minutes: int) -> int:
            return conn.execute(sa.insert(t.outbox_events).values(
                session_id=session_id, key=key, payload={}, created_at=T0 + timedelta(minutes=minutes),
            ).returning(t.outbox_events.c.id)).scalar_one()

        def delivery(event_id: int, status: str, **values: Any) -> int:
            return conn.execute(sa.insert(t.robot_deliveries).values(
                event_id=event_id, robot_id=robot_id, session_id=session_id, status=status, **values,
            ).returning(t.robot_deliveries.c.id)).scalar_one()

        return {
            "sent": delivery(event("started", 0), "sent", attempts=1, last_attempt_at=T0, sent_at=T0,
                             response_status=200, response_body='{"errcode":0,"errmsg":"ok"}'),
            "retrying": delivery(event("goal", 40), "retrying", attempts=3, last_attempt_at=T0 + timedelta(minutes=41),
                                 next_attempt_at=T0 + timedelta(minutes=43), response_status=502,
                                 response_body="<html>" + "bad gateway " * 40 + "</html>"),
            "failed": delivery(event("milestone:5000000", 60), "failed", attempts=8,
                               last_attempt_at=T0 + timedelta(minutes=80), error="connection refused"),
            "pending": delivery(event("ended", 120), "pending"),
        }


def test_the_delivery_log(store: Any, host_api: Api, users: Users, sessions: dict[str, int]) -> None:
    sid = sessions["own"]
    robot = host_api.post(path(sid), json={"kind": "dingtalk", "url": DING_URL, "secret": SECRET}).json
    rows = record_deliveries(store, sid, robot["id"])
    r = users.api("official").get(path(sid, "/deliveries"))
    assert r.status_code == 200
    log = r.json["deliveries"]
    assert [d["id"] for d in log] == [rows["pending"], rows["failed"], rows["retrying"], rows["sent"]]
    assert log[2]["event"] == {"key": "goal", "created_at": "2026-06-01T12:40:00Z"}
    assert log[2]["robot"] == {"id": robot["id"], "kind": "dingtalk", "url": robot["url"], "scope": "session",
                               "deleted": False}
    assert (log[2]["status"], log[2]["attempts"], log[2]["response_status"], log[2]["next_attempt_at"]) == (
        "retrying", 3, 502, "2026-06-01T12:43:00Z")
    assert log[1]["error"] == "connection refused" and log[3]["sent_at"] == "2026-06-01T12:00:00Z"
    assert_no_secret(r.text)
    assert [d["id"] for d in host_api.get(path(sid, "/deliveries?limit=1")).json["deliveries"]] == [rows["pending"]]
    for bad in ("0", "501", "x", "-1"):
        refused = host_api.get(path(sid, f"/deliveries?limit={bad}"))
        assert (refused.status_code, refused.json["error"]["field"]) == (422, "limit")
    # Deleting the robot: what was not yet sent is failed, and the log still names the robot.
    assert delete(host_api, path(sid, f"/{robot['id']}")).status_code == 204
    after = {d["id"]: d for d in host_api.get(path(sid, "/deliveries")).json["deliveries"]}
    assert after[rows["pending"]]["status"] == "failed" and after[rows["pending"]]["robot"]["deleted"] is True
    assert after[rows["retrying"]]["status"] == "failed" and after[rows["sent"]]["status"] == "sent"


# --- the report page's section ---------------------------------------------------------------------


def logged_in(app: Any, name: str) -> Any:
    client = app.test_client()
    login(client, name)
    return client


def report(client: Any, sid: int, lang: str = "zh") -> Any:
    return client.get(f"/sessions/{sid}?lang={lang}")


def post_form(client: Any, sid: int, data: dict[str, str], lang: str = "zh") -> Any:
    token = page_csrf(report(client, sid, lang).text)
    return client.post(f"/sessions/{sid}/notifications", data={**data, "csrf_token": token})


def section(html: str) -> str:
    found = re.search(r'<section id="robots".*?</section>', html, re.S)
    assert found, "no robots section"
    return found.group(0)


def test_the_page_adds_a_robot_in_the_pages_language(app: Any, store: Any, users: Users, sessions: dict[str, int]) -> None:
    users.token("host")
    client = logged_in(app, "host")
    sid = sessions["own"]
    page = section(report(client, sid).text)
    assert 'id="robot-form"' in page and 'id="no-robots"' in page
    assert 'name="scope"' not in page  # a host does not choose the village
    r = post_form(client, sid, {"kind": "dingtalk", "url": f" {DING_URL} ", "secret": SECRET, "lang": ""}, "en")
    assert r.status_code == 302 and r.headers["Location"].endswith(f"/sessions/{sid}#robots")
    robot = robot_service.list_robots(store, actor=users.actor("host"), session_id=sid)[0]
    assert (robot.kind, robot.lang, robot.has_secret) == ("dingtalk", "en", True)  # the page's language
    html = report(client, sid, "zh").text
    assert_no_secret(html)
    page = section(html)
    assert "钉钉" in page and robot.url in page and "English" in page and "本场" in page
    html = report(client, sid, "en").text
    assert_no_secret(html)
    assert "DingTalk" in section(html) and "Signed" in section(html)


@pytest.mark.parametrize(("lang", "data", "words"), [
    ("zh", {"kind": "wecom", "url": "ftp://example.com/x"}, "地址必须以 https:// 开头"),
    ("en", {"kind": "wecom", "url": "ftp://example.com/x"}, "The address must start with https://"),
    ("zh", {"kind": "wecom", "url": WECOM_URL, "secret": SECRET}, "企业微信机器人没有密钥"),
    ("zh", {"kind": "", "url": WECOM_URL}, "请选择机器人所在的应用"),
    ("zh", {"kind": "wecom", "url": f"https://oapi.dingtalk.com/robot/send?access_token={DING_TOKEN}"},
     "这是钉钉机器人的地址"),
    ("en", {"kind": "wecom", "url": "https://example.com/hook?key=" + WECOM_KEY},
     "A WeCom robot&#39;s address looks like https://qyapi.weixin.qq.com/cgi-bin/webhook/send?key=…"),
    ("zh", {"kind": "wecom", "url": WECOM_URL, "scope": "village"}, "只有管理员"),
])
def test_a_refused_form_says_why_in_the_pages_language(app: Any, store: Any, users: Users, sessions: dict[str, int], lang: str,
                                                        data: dict[str, str], words: str) -> None:
    users.token("host")
    client = logged_in(app, "host")
    sid = sessions["own"]
    before = fingerprint(store)
    r = post_form(client, sid, data, lang)
    assert r.status_code == 422
    page = section(r.text)
    assert words in page, page
    assert 'role="alert"' in page
    if data.get("scope") != "village":  # a host's form has no scope to mark: the problem is said above the fields
        assert 'aria-invalid="true"' in page
    assert fingerprint(store) == before
    # What was typed as the address or secret is not written back into the page.
    for typed in (data.get("url", ""), data.get("secret", "")):
        if typed:
            assert f'value="{typed}"' not in r.text
    assert_no_secret(r.text.replace(f"https://oapi.dingtalk.com/robot/send?access_token={DING_TOKEN}", ""))


def test_the_page_forms_need_their_csrf_token_and_role(app: Any, store: Any, users: Users, sessions: dict[str, int]) -> None:
    for name, role in (("host", "host"), ("official", "official"), ("host-2", "host")):
        users.token(role, name)
    sid = sessions["own"]
    host = logged_in(app, "host")
    before = fingerprint(store)
    assert host.post(f"/sessions/{sid}/notifications", data={"kind": "wecom", "url": WECOM_URL}).status_code == 400
    assert fingerprint(store) == before
    for name in ("official", "host-2"):
        client = logged_in(app, name)
        token = page_csrf(client.get("/").text)
        r = client.post(f"/sessions/{sid}/notifications", data={"kind": "wecom", "url": WECOM_URL, "csrf_token": token})
        assert r.status_code == 403
    assert fingerprint(store) == before
    # The official reads the section (list and log) without the forms.
    made = Api(app.test_client(), users.token("host")).post(path(sid), json={"kind": "wecom", "url": WECOM_URL})
    official_page = section(report(logged_in(app, "official"), sid).text)
    assert made.json["url"] in official_page and "robot-form" not in official_page and "robot-delete" not in official_page
    # Delete through the page: CSRF and role, then gone.
    delete_path = f"/sessions/{sid}/notifications/{made.json['id']}/delete"
    assert host.post(delete_path, data={}).status_code == 400
    token = page_csrf(report(host, sid).text)
    assert 'data-confirm="' in section(report(host, sid).text)
    r = host.post(delete_path, data={"csrf_token": token})
    assert r.status_code == 302 and r.headers["Location"].endswith("#robots")
    assert host.post(delete_path, data={"csrf_token": token}).status_code == 404
    assert 'id="no-robots"' in section(report(host, sid).text)


def test_an_admin_chooses_the_village_on_the_page(app: Any, users: Users, sessions: dict[str, int]) -> None:
    users.token("admin")
    client = logged_in(app, "admin")
    sid = sessions["own"]
    assert 'name="scope"' in section(report(client, sid).text)
    r = post_form(client, sid, {"kind": "wecom", "url": WECOM_URL, "scope": "village", "lang": "ug"})
    assert r.status_code == 302
    page = section(report(client, sessions["theirs"]).text)
    assert "村默认：疏附县" in page and "ئۇيغۇرچە" in page
    assert 'name="scope"' not in section(report(client, sessions["no_village"]).text)


def test_the_delivery_log_on_the_page(app: Any, store: Any, host_api: Api, users: Users, sessions: dict[str, int]) -> None:
    users.token("official")
    sid = sessions["own"]
    robot = host_api.post(path(sid), json={"kind": "dingtalk", "url": DING_URL, "secret": SECRET}).json
    record_deliveries(store, sid, robot["id"])
    for lang, words in (("zh", ("已送达", "将重试", "失败", "等待发送", "开播", "目标达成", "突破 ¥50,000.00", "结束",
                                "对方拒绝了连接")),
                        ("en", ("Delivered", "Will retry", "Failed", "Waiting to be sent", "Session started",
                                "Goal reached", "Passed ¥50,000.00", "Session ended",
                                "The receiver refused the connection."))):
        html = report(logged_in(app, "official"), sid, lang).text
        assert_no_secret(html)
        log = re.search(r'<table class="review-table delivery-log".*?</table>', html, re.S)
        assert log, section(html)
        text = log.group(0)
        for word in words:
            assert word in re.sub(r"<[^>]+>", "", text), (lang, word)
        assert '<bdi dir="ltr">¥50,000.00</bdi>' in text  # the amount isolated (Uyghur pages: dir="rtl")
        # Times in the session's zone (Asia/Shanghai): 12:00 UTC is 20:00.
        assert "2026-06-01 20:00" in text and "2026-06-01 21:20" in text and "2026-06-01 20:43" in text
        assert "HTTP 502" in text and "bad gateway bad gateway" in text
        assert "bad gateway " * 20 not in text.split("title=")[0]  # shortened (the whole answer in the title)

