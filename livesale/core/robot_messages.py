"""The messages group-chat robots post: text in the robot's language, body and signature in its format.

No Flask here (the sender runs outside requests): the words come from
livesale's own catalogues (``livesale/translations``, the ones Flask-Babel
uses) through ``babel.support.Translations``; the strings below are marked
with ``_`` so that ``pybabel extract`` finds them. Money and percentages are
written by ``core.formats``, the pages' rule.

Every message ends with the line ``#<event id>``: a robot may receive an event
twice (the sender is at least once), and the id tells the repeat.

The formats (``/work/shared/platform-exports.md``, and each platform's
documentation):

- WeCom (企业微信) group robot: ``{"msgtype": "markdown", "markdown": {"content": …}}``;
  no signing (the URL's ``key`` is the credential).
- DingTalk custom robot: ``{"msgtype": "markdown", "markdown": {"title", "text"}}``; with a
  secret (加签), ``timestamp`` (ms) and ``sign`` = Base64(HMAC-SHA256(key=secret,
  msg="<timestamp>\\n<secret>")) URL-encoded, appended to the URL's query.
- Feishu custom bot: ``{"msg_type": "post", "content": {"post": {"zh_cn": {"title", "content"}}}}``;
  with a secret (签名校验), ``"timestamp"`` (s, a string) and ``"sign"`` =
  Base64(HMAC-SHA256(key="<timestamp>\\n<secret>", msg=b"")) in the body.

Text typed by people (the title, village, hosts) is put in markdown with the
characters that would make markup (links, emphasis, headings, WeCom's
``<font>``) replaced by their fullwidth forms, and on one line, so a title
cannot add a link or a line to the message.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import hmac
import json
import re
import urllib.parse
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from babel.support import NullTranslations, Translations

from .formats import money_big, money_exact, percent
from .outbox import ENDED, GOAL, MILESTONE_PREFIX, STARTED

KINDS = ("wecom", "dingtalk", "feishu")
LANGUAGES = ("zh", "ug", "en")
_TRANSLATIONS = Path(__file__).resolve().parent.parent / "translations"


def _(message: str) -> str:
    """Marks ``message`` for ``pybabel extract``; it is translated when a message is built."""
    return message


# The words of each message (English msgids, like the rest of the app's catalogue).
_TITLES = {
    STARTED: _("Live now: %(title)s"),
    GOAL: _("Goal reached: %(title)s"),
    "milestone": _("%(title)s passed %(milestone)s"),
    ENDED: _("Session ended: %(title)s"),
}
_WHO = _("%(village)s · host %(hosts)s")
_GOAL = _("Goal: %(goal)s")
_SALES = _("Sales: %(amount)s")
_SALES_OF_GOAL = _("Sales: %(amount)s of %(goal)s (%(percent)s)")
_ORDERS = _("Orders: %(orders)s")
_ITEMS = _("Items: %(items)s")
_ATTAINMENT = _("Goal attainment: %(percent)s")
_DURATION = _("Duration: %(duration)s")
_HOURS_MINUTES = _("%(hours)s h %(minutes)s min")
_MINUTES = _("%(n)s min")
_LIVE_FIGURES = _("Live figures")
_REPORT = _("Report")
_POSTER = _("Poster")


@functools.cache
def translations(lang: str) -> NullTranslations:
    """The catalogue of ``lang`` (English: the msgids themselves)."""
    if lang not in LANGUAGES or lang == "en":
        return NullTranslations()
    return Translations.load(str(_TRANSLATIONS), [lang], domain="messages")


@dataclass(frozen=True)
class Event:
    """An outbox event as the message needs it."""

    id: int
    key: str
    payload: dict[str, Any]


@dataclass(frozen=True)
class Message:
    """What a message says, before any robot's format: a title, lines, links (label, absolute URL)."""

    title: str
    lines: list[str]
    links: list[tuple[str, str]]
    event_id: int

    @property
    def tag(self) -> str:
        return f"#{self.event_id}"


@dataclass(frozen=True)
class Request:
    """One robot request: where to POST and the JSON body's bytes."""

    url: str
    body: bytes


def _duration(seconds: int, gettext: Any) -> str:
    minutes_total = max(0, seconds) // 60
    hours, minutes = divmod(minutes_total, 60)
    if hours:
        return gettext(_HOURS_MINUTES) % {"hours": hours, "minutes": minutes}
    return gettext(_MINUTES) % {"n": minutes}


def compose(event: Event, *, lang: str, public_url: str = "") -> Message:
    """The message of ``event`` in ``lang``; links only when ``public_url`` (the site's address) is set."""
    tr = translations(lang)
    gettext = tr.gettext
    p = event.payload
    kind = "milestone" if event.key.startswith(MILESTONE_PREFIX) else event.key
    values: dict[str, Any] = {"title": p.get("title", "")}
    if kind == "milestone":
        values["milestone"] = money_big(int(event.key.removeprefix(MILESTONE_PREFIX)), lang)
    title = gettext(_TITLES[kind]) % values
    lines = []
    hosts = "、".join(p.get("hosts") or [])
    lines.append(gettext(_WHO) % {"village": p.get("village", ""), "hosts": hosts} if hosts
                 else p.get("village", ""))
    goal = int(p.get("goal_fen") or 0)
    amount = int(p.get("amount_fen") or 0)
    orders, items = int(p.get("orders") or 0), int(p.get("items") or 0)
    links: list[tuple[str, str]] = []
    base = public_url.rstrip("/")
    if kind == STARTED:
        if goal:
            lines.append(gettext(_GOAL) % {"goal": money_big(goal, lang)})
        if base:
            links.append((gettext(_LIVE_FIGURES), base + p["report_path"]))
    elif kind in (GOAL, "milestone"):
        if goal:
            lines.append(gettext(_SALES_OF_GOAL) % {"amount": money_big(amount, lang), "goal": money_big(goal, lang),
                                                    "percent": percent(amount, goal, lang)})
        else:
            lines.append(gettext(_SALES) % {"amount": money_big(amount, lang)})
        lines.append(gettext(_ORDERS) % {"orders": f"{orders:,}"})
        if base:
            links.append((gettext(_LIVE_FIGURES), base + p["report_path"]))
    else:  # ended
        lines.append(gettext(_SALES) % {"amount": money_exact(amount, lang)})
        lines.append(gettext(_ORDERS) % {"orders": f"{orders:,}"})
        lines.append(gettext(_ITEMS) % {"items": f"{items:,}"})
        if goal:
            lines.append(gettext(_ATTAINMENT) % {"percent": percent(amount, goal, lang)})
        lines.append(gettext(_DURATION) % {"duration": _duration(int(p.get("duration_s") or 0), gettext)})
        if base:
            links.append((gettext(_REPORT), base + p["report_path"]))
            links.append((gettext(_POSTER), base + p["poster_path"]))
    return Message(title=_one_line(title), lines=[_one_line(line) for line in lines if line], links=links,
                   event_id=event.id)


# --- each robot's format ---------------------------------------------------------------

_MARKUP = str.maketrans({
    "[": "［", "]": "］", "(": "（", ")": "）", "<": "＜", ">": "＞", "*": "＊", "_": "＿", "`": "｀",
    "#": "＃", "~": "～", "|": "｜", "\\": "＼",
})
_SPACES = re.compile(r"\s+")


def _one_line(text: str) -> str:
    return _SPACES.sub(" ", text).strip()


def _md(text: str) -> str:
    return text.translate(_MARKUP)


def wecom_body(message: Message) -> dict[str, Any]:
    lines = [f"**{_md(message.title)}**", *(_md(line) for line in message.lines)]
    if message.links:
        lines.append("  ".join(f"[{_md(label)}]({url})" for label, url in message.links))
    lines.append(message.tag)
    return {"msgtype": "markdown", "markdown": {"content": "\n".join(lines)}}


def dingtalk_body(message: Message) -> dict[str, Any]:
    # DingTalk's markdown needs a blank line between paragraphs; ``title`` is what the notification shows.
    lines = [f"#### {_md(message.title)}", *(_md(line) for line in message.lines)]
    if message.links:
        lines.append("  ".join(f"[{_md(label)}]({url})" for label, url in message.links))
    lines.append(message.tag)
    return {"msgtype": "markdown", "markdown": {"title": message.title, "text": "\n\n".join(lines)}}


def feishu_body(message: Message) -> dict[str, Any]:
    # A ``post`` (rich text): elements are plain text and links, so nothing needs escaping. Feishu
    # wants a locale key; the content is in the robot's language whichever key carries it.
    content: list[list[dict[str, str]]] = [[{"tag": "text", "text": line}] for line in message.lines]
    if message.links:
        row: list[dict[str, str]] = []
        for label, url in message.links:
            if row:
                row.append({"tag": "text", "text": "  "})
            row.append({"tag": "a", "text": label, "href": url})
        content.append(row)
    content.append([{"tag": "text", "text": message.tag}])
    return {"msg_type": "post", "content": {"post": {"zh_cn": {"title": message.title, "content": content}}}}


def dingtalk_sign(secret: str, timestamp_ms: int) -> str:
    """DingTalk's ``sign`` before URL-encoding: Base64(HMAC-SHA256(key=secret, "<timestamp>\\n<secret>"))."""
    digest = hmac.new(secret.encode(), f"{timestamp_ms}\n{secret}".encode(), hashlib.sha256).digest()
    return base64.b64encode(digest).decode()


def feishu_sign(secret: str, timestamp_s: int) -> str:
    """Feishu's ``sign``: Base64(HMAC-SHA256(key="<timestamp>\\n<secret>", empty message))."""
    digest = hmac.new(f"{timestamp_s}\n{secret}".encode(), b"", hashlib.sha256).digest()
    return base64.b64encode(digest).decode()


def build_request(*, kind: str, url: str, secret: str | None, message: Message, now: datetime) -> Request:
    """The request for a robot of ``kind``, signed as of ``now`` (each attempt signs afresh:
    DingTalk and Feishu refuse a timestamp more than an hour old)."""
    if kind == "wecom":
        body = wecom_body(message)
    elif kind == "dingtalk":
        body = dingtalk_body(message)
        if secret:
            timestamp = int(now.timestamp() * 1000)
            query = urllib.parse.urlencode({"timestamp": timestamp, "sign": dingtalk_sign(secret, timestamp)})
            url += ("&" if urllib.parse.urlsplit(url).query else "?") + query
    elif kind == "feishu":
        body = feishu_body(message)
        if secret:
            timestamp = int(now.timestamp())
            body = {"timestamp": str(timestamp), "sign": feishu_sign(secret, timestamp), **body}
    else:
        raise ValueError(f"unknown robot kind {kind!r}")
    return Request(url=url, body=json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode())


def accepted(kind: str, status: int, body: bytes) -> bool:
    """Whether the receiver took the message: HTTP 2xx *and* its own code says so
    (all three answer HTTP 200 with an error code for a bad signature, keyword or key).

    WeCom and DingTalk: ``{"errcode": 0, "errmsg": "ok"}``. Feishu: ``{"code": 0, "msg": "success"}``
    (older bots: ``{"StatusCode": 0, …}``).
    """
    if not 200 <= status < 300:
        return False
    try:
        answer = json.loads(body)
    except ValueError:
        return False
    if not isinstance(answer, dict):
        return False
    if kind in ("wecom", "dingtalk"):
        return answer.get("errcode") == 0
    if "code" in answer:
        return answer.get("code") == 0
    return answer.get("StatusCode") == 0
