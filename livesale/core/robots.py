"""Group-chat robots of a sale session, as people manage them: add, list (masked), delete, and the delivery log.

A robot is a WeCom (企业微信), DingTalk or Feishu/Lark group's webhook. It belongs to one session,
or is a default of a village (``session_id`` NULL), told about every session of that village. Sending
is ``core.outbox``'s (the delivery side); this module only writes ``robots`` and reads
``robot_deliveries``.

The URL carries the robot's key and the signing secret signs its messages: both are kept as given
(sending needs them) and never leave this module unmasked. Lists and the delivery log show
``mask_url(…)`` (``https://oapi.dingtalk.com/robot/send?access_token=ab…f9``) and ``has_secret``.

Who may:

* add or delete a session's robot — its host, or an admin (as every change to a session);
* add or delete a village's default — an admin only. A default is told about *every* session of the
  village, other hosts' included, and hosts may not read each other's sessions: a host choosing
  the group would send another host's figures to a chat of their choosing;
* list the robots and read the delivery log — whoever may read the session (officials too): they see
  masked addresses and outcomes, never a key or a secret.

Each refusal is a ``DomainError`` naming its field with a ``code`` of its own, so that a page can say it
in its language (``web.robots``); ``core.webhook_urls.check_robot_url``'s codes (``url_*``) come through
as they are.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import re
from datetime import UTC, datetime
from typing import Any
from urllib.parse import SplitResult, urlsplit

import sqlalchemy as sa

from livesale.models import utcnow

from . import outbox
from . import tables as t
from .auth import Actor
from .db import write_transaction
from .errors import Conflict, Forbidden, InvalidInput, NotFound
from .robot_sender import ROBOT_DELETED
from .sessions import SessionInfo, Store, load_session, manageable
from .validation import reject_unknown, require_object
from .webhook_urls import MAX_URL_LENGTH, check_robot_url

KINDS = ("wecom", "dingtalk", "feishu")
SCOPES = ("session", "village")
LANGS = ("zh", "ug", "en")
DELIVERY_STATUSES = ("pending", "retrying", "sent", "failed")
FIELDS = frozenset({"kind", "url", "secret", "scope", "lang"})
#: The most robots one session, or one village's defaults, may have (each is told every message).
MAX_ROBOTS = 10
#: The most deliveries one call of ``delivery_log`` answers.
MAX_LOG = 500
SECRET_MAX = 200
#: DingTalk's signing secrets are ``SEC`` + 64 hex digits, Feishu's about 20 letters and digits:
#: printable ASCII without spaces covers both and refuses a pasted sentence or a line break.
_SECRET_RE = re.compile(rf"[\x21-\x7e]{{1,{SECRET_MAX}}}")
#: A robot's key in its URL: letters, digits, '-' and '_' (UUIDs, hex tokens).
_TOKEN_RE = re.compile(r"[A-Za-z0-9_-]{8,200}")
#: Query parameters the sender adds for DingTalk's signing: a URL that already carries them was
#: copied from a signed request, and would be sent with two of each.
_SIGNED_PARAMS = ("timestamp", "sign")
#: Where each kind's webhooks live (the addresses the robots' settings show), and what names the robot.
_SHAPES = {
    "wecom": (("qyapi.weixin.qq.com",), "/cgi-bin/webhook/send", "key"),
    "dingtalk": (("oapi.dingtalk.com",), "/robot/send", "access_token"),
    "feishu": (("open.feishu.cn", "open.larksuite.com"), "/open-apis/bot/v2/hook/", None),
}
EXAMPLES = {
    "wecom": "https://qyapi.weixin.qq.com/cgi-bin/webhook/send?key=…",
    "dingtalk": "https://oapi.dingtalk.com/robot/send?access_token=…",
    "feishu": "https://open.feishu.cn/open-apis/bot/v2/hook/…",
}
#: What a delivery not yet sent says once its robot is deleted (the sender's words for it, too).
DELETED_ERROR = ROBOT_DELETED


# --- input ----------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True, slots=True)
class RobotInput:
    kind: str
    url: str
    secret: str | None
    scope: str
    lang: str


def _choice(data: Any, field: str, choices: tuple[str, ...], default: str | None = None) -> str:
    """One of ``choices``; ``default`` when the field is left out (null is not leaving it out)."""
    if field not in data and default is not None:
        return default
    value = data.get(field)
    if value is None:
        raise InvalidInput(f"is required: one of {', '.join(choices)}", field=field, code=f"{field}_missing")
    if not isinstance(value, str) or value not in choices:
        raise InvalidInput(f"must be one of {', '.join(choices)}", field=field, code=f"{field}_unknown")
    return value


def parse_robot(body: Any, *, default_lang: str = "zh") -> RobotInput:
    """``{"kind", "url", "secret"?, "scope"?, "lang"?}`` checked field by field (the URL's reachability
    and shape are ``check_url``'s). ``default_lang``: the page's language when added from a page."""
    data = require_object(body, "body")
    reject_unknown(data, FIELDS)
    kind = _choice(data, "kind", KINDS)
    url = data.get("url")
    if url is None or (isinstance(url, str) and not url.strip()):
        raise InvalidInput("give the robot's webhook URL", field="url", code="url_missing")
    if not isinstance(url, str):
        raise InvalidInput("must be a string", field="url", code="url_invalid")
    url = url.strip()  # copied from a chat app's settings, often with a space or line break around it
    secret = data.get("secret")
    if secret is not None:
        if not isinstance(secret, str):
            raise InvalidInput("must be a string", field="secret", code="secret_invalid")
        if kind == "wecom":
            raise InvalidInput("WeCom robots have no signing secret: leave it out", field="secret",
                               code="secret_not_for_wecom")
        if not _SECRET_RE.fullmatch(secret):
            raise InvalidInput(f"must be the robot's signing secret: 1 to {SECRET_MAX} letters, digits or "
                               "symbols, without spaces (leave it out for a robot without signing)",
                               field="secret", code="secret_invalid")
    scope = _choice(data, "scope", SCOPES, "session")
    lang = _choice(data, "lang", LANGS, default_lang if default_lang in LANGS else "zh")
    return RobotInput(kind=kind, url=url, secret=secret, scope=scope, lang=lang)


def _is_test_url(parts: SplitResult, *, allow_http: bool, allow_private: bool) -> bool:
    """A URL only the test settings let through: ``http://`` (ALLOW_HTTP) or a literal private host
    (ALLOW_PRIVATE): a local receiver or a relay inside the network, whose shape is its own."""
    if parts.scheme.lower() == "http":
        return allow_http
    host = (parts.hostname or "").lower()
    if not allow_private:
        return False
    return host == "localhost" or host.endswith(".localhost") or _is_ip(host)


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


def _kind_of(parts: SplitResult) -> str | None:
    host = (parts.hostname or "").lower()
    return next((kind for kind, (hosts, _p, _q) in _SHAPES.items() if host in hosts), None)


def kind_of_url(url: str) -> str | None:
    """Which kind's webhook host ``url`` is on, if any (to say "this is a DingTalk robot's address")."""
    try:
        return _kind_of(urlsplit(url))
    except ValueError:
        return None


def _check_shape(kind: str, parts: SplitResult) -> None:
    """The kind's own webhook address, as its robot settings show it; else a refusal saying what to paste."""
    hosts, path, key = _SHAPES[kind]
    host = (parts.hostname or "").lower()
    if host not in hosts:
        other = _kind_of(parts)
        if other is not None:
            raise InvalidInput(f"this is a {other} robot's address: choose {other} as the kind", field="url",
                               code="url_other_kind")
        raise InvalidInput(f"a {kind} robot's address looks like {EXAMPLES[kind]}", field="url", code="url_shape")
    query = [pair.partition("=") for pair in parts.query.split("&") if pair]
    if key is None:  # Feishu/Lark: the robot's token is the path's last part
        token = parts.path[len(path):] if parts.path.startswith(path) else ""
        if not _TOKEN_RE.fullmatch(token):
            raise InvalidInput(f"a {kind} robot's address looks like {EXAMPLES[kind]}", field="url",
                               code="url_shape")
        return
    values = [value for name, _eq, value in query if name == key]
    if parts.path != path or len(values) != 1 or not _TOKEN_RE.fullmatch(values[0]):
        raise InvalidInput(f"a {kind} robot's address looks like {EXAMPLES[kind]}", field="url", code="url_shape")
    if kind == "dingtalk" and any(name in _SIGNED_PARAMS for name, _eq, _value in query):
        raise InvalidInput("paste the robot's address without timestamp and sign (they are added to each "
                           "message); give its secret instead", field="url", code="url_signed")


def check_url(kind: str, url: str, *, allow_http: bool, allow_private: bool) -> None:
    """Whether livesale may send a ``kind`` robot's messages to ``url``.

    The shape (host, path and key of the kind's webhooks) is checked for every ``https`` URL: a typo or
    another app's address is refused when it is added, not found in the delivery log later. A URL the
    test settings alone let through (``http://``, a literal private address) is taken as it is: a local
    receiver in the tests, or a relay inside the network, has a shape of its own.
    Then ``check_robot_url`` refuses what livesale must never call (plain http, private addresses
    after resolving the name, credentials) unless the settings allow it.
    """
    parts = _split(url)
    if parts is None or not _shape_applies(url, parts, allow_http=allow_http, allow_private=allow_private):
        check_robot_url(url, allow_http=allow_http, allow_private=allow_private)
    elif _is_ip(parts.hostname or ""):
        # A private address is refused as such; a public one is no kind's robot.
        check_robot_url(url, allow_http=allow_http, allow_private=allow_private)
        _check_shape(kind, parts)
    else:
        _check_shape(kind, parts)  # before the name is looked up: a typo is a typo, not "cannot be found"
        check_robot_url(url, allow_http=allow_http, allow_private=allow_private)


def _split(url: str) -> SplitResult | None:
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - a bad port is check_robot_url's to name
    except ValueError:
        return None
    return parts


def _shape_applies(url: str, parts: SplitResult, *, allow_http: bool, allow_private: bool) -> bool:
    """An https URL with a host (what check_robot_url would refuse otherwise is its to name), not a test URL."""
    return (len(url) <= MAX_URL_LENGTH and parts.scheme.lower() == "https" and bool(parts.hostname)
            and "@" not in parts.netloc and not parts.fragment
            and not _is_test_url(parts, allow_http=allow_http, allow_private=allow_private))


# --- masking --------------------------------------------------------------------------------------


def mask_value(value: str) -> str:
    """``ab…f9`` for a key long enough that four of its characters give nothing away, else ``…``."""
    return f"{value[:2]}…{value[-2:]}" if len(value) >= 16 else "…"


def mask_url(url: str, kind: str | None = None) -> str:
    """The URL without its secrets: every query value masked, and the last part of the path when
    it is the key (Feishu/Lark's, or any URL without a query). Scheme, host, port and path stay:
    enough to tell two robots apart and see where they go."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return "…"
    netloc = parts.netloc.rpartition("@")[2]
    query = "&".join(
        f"{name}={mask_value(value)}" if eq else name
        for name, eq, value in (pair.partition("=") for pair in parts.query.split("&") if pair)
    )
    path = parts.path
    if kind == "feishu" or not query:
        head, slash, last = path.rpartition("/")
        if last:
            path = f"{head}{slash}{mask_value(last)}"
    return f"{parts.scheme}://{netloc}{path}" + (f"?{query}" if query else "")


# --- robots as listed -----------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True, slots=True)
class RobotInfo:
    """A robot as anyone may see it: masked, without its secret."""

    id: int
    kind: str
    url: str  # masked
    has_secret: bool
    scope: str
    village: str | None
    lang: str
    created_by: str | None
    created_at: datetime


def _iso(value: datetime | None) -> str | None:
    return None if value is None else value.astimezone(UTC).isoformat().replace("+00:00", "Z")


def robot_view(robot: RobotInfo) -> dict[str, Any]:
    """The JSON shape of a robot (the API contract)."""
    return {
        "id": robot.id, "kind": robot.kind, "url": robot.url, "has_secret": robot.has_secret,
        "scope": robot.scope, "village": robot.village, "lang": robot.lang, "created_by": robot.created_by,
        "created_at": _iso(robot.created_at),
    }


_r, _u = t.robots, t.users
_ROBOT_COLUMNS = (_r.c.id, _r.c.kind, _r.c.url, _r.c.secret, _r.c.session_id, _r.c.village, _r.c.lang, _u.c.name,
                  _r.c.created_at)


def _info(row: sa.Row[Any]) -> RobotInfo:
    return RobotInfo(
        id=row.id, kind=row.kind, url=mask_url(row.url, row.kind), has_secret=bool(row.secret),
        scope="session" if row.session_id is not None else "village",
        village=row.village if row.session_id is None else None, lang=row.lang, created_by=row.name,
        created_at=row.created_at,
    )


def _of_session(info: SessionInfo) -> sa.ColumnElement[bool]:
    """The session's own robots and its village's defaults (a session without a village has none)."""
    defaults = sa.and_(_r.c.session_id.is_(None), _r.c.village == info.village) if info.village else sa.false()
    return sa.and_(_r.c.deleted_at.is_(None), sa.or_(_r.c.session_id == info.id, defaults))


def _robots_of(conn: sa.Connection, info: SessionInfo) -> list[sa.Row[Any]]:
    return list(conn.execute(
        sa.select(*_ROBOT_COLUMNS).select_from(_r.outerjoin(_u, _u.c.id == _r.c.created_by))
        .where(_of_session(info))
        # The session's own first, then the village's defaults; oldest first in each.
        .order_by(_r.c.session_id.is_(None), _r.c.id)
    ).all())


def _readable(conn: sa.Connection, actor: Actor, session_id: int) -> SessionInfo:
    info = load_session(conn, session_id=session_id)
    if not actor.can_read(info.owner_id):
        raise Forbidden("this session belongs to another host")
    return info


def list_robots(store: Store, *, actor: Actor, session_id: int) -> list[RobotInfo]:
    """The robots told about the session: its own, then its village's defaults (masked)."""
    with store.db.connect() as conn:
        info = _readable(conn, actor, session_id)
        return [_info(row) for row in _robots_of(conn, info)]


# --- changes --------------------------------------------------------------------------------------


def _may_set_village_default(actor: Actor) -> None:
    if actor.role != "admin":
        raise Forbidden("only an admin sets or removes a village's default robots: they are told about every "
                        "host's sessions in the village", field="scope", code="village_admin_only")


def add_robot(store: Store, *, actor: Actor, session_id: int, data: RobotInput, allow_http: bool,
              allow_private: bool) -> RobotInfo:
    """Add a robot to the session (``scope`` "session") or to its village's defaults ("village").

    Refusals, in this order, store nothing: who (403) and which session (404), the scope, the URL
    (``check_url``; looked up in DNS unless private addresses are allowed), then a robot already told
    about this session at the same address, or too many (409).
    """
    with store.db.connect() as conn:
        info = manageable(conn, actor, session_id)
    if data.scope == "village":
        _may_set_village_default(actor)
        if not info.village:
            raise InvalidInput("this session has no village: add the robot to the session itself", field="scope",
                               code="no_village")
    # Outside any transaction: a DNS lookup may take seconds.
    check_url(data.kind, data.url, allow_http=allow_http, allow_private=allow_private)
    with write_transaction(store.db) as conn:
        info = manageable(conn, actor, session_id)
        listed = _robots_of(conn, info)
        if any(row.url == data.url for row in listed):
            raise Conflict("a robot with this address is already told about this session", field="url",
                           code="robot_exists")
        if data.scope == "village":
            same_scope = conn.execute(sa.select(sa.func.count()).select_from(_r).where(
                _r.c.session_id.is_(None), _r.c.village == info.village, _r.c.deleted_at.is_(None))).scalar_one()
        else:
            same_scope = sum(1 for row in listed if row.session_id is not None)
        if same_scope >= MAX_ROBOTS:
            raise Conflict(f"at most {MAX_ROBOTS} robots per {data.scope}: delete one first", field="scope",
                           code="too_many_robots")
        robot_id = conn.execute(sa.insert(_r).values(
            session_id=info.id if data.scope == "session" else None,
            village=info.village if data.scope == "village" else None,
            kind=data.kind, url=data.url, secret=data.secret or None, lang=data.lang,
            created_by=actor.user_id, created_at=utcnow(),
        ).returning(_r.c.id)).scalar_one()
        row = conn.execute(sa.select(*_ROBOT_COLUMNS).select_from(_r.outerjoin(_u, _u.c.id == _r.c.created_by))
                           .where(_r.c.id == robot_id)).one()
    robot = _info(row)
    _robots_changed(info.id, robot)
    return robot


def _robots_changed(session_id: int, robot: RobotInfo) -> None:
    """Orders in this process notice the change at once (others within ``outbox.ROBOTS_CACHE_S``)."""
    outbox.forget_robots_cache(session_id if robot.scope == "session" else None)


def delete_robot(store: Store, *, actor: Actor, session_id: int, robot_id: int) -> RobotInfo:
    """Stop telling a robot (one listed for the session; a village default: admins only).

    The row stays, marked deleted (the delivery log still names it). Its deliveries not yet sent are
    marked failed now, in the same transaction, so the log says why; the sender also skips robots
    marked deleted, for a delivery it had already claimed.
    """
    with write_transaction(store.db) as conn:
        info = manageable(conn, actor, session_id)
        row = next((r for r in _robots_of(conn, info) if r.id == robot_id), None)
        if row is None:
            raise NotFound(f"no robot {robot_id} on session {session_id}", field="robot_id")
        if row.session_id is None:
            _may_set_village_default(actor)
        now = utcnow()
        conn.execute(sa.update(_r).where(_r.c.id == robot_id, _r.c.deleted_at.is_(None)).values(deleted_at=now))
        d = t.robot_deliveries
        conn.execute(
            sa.update(d).where(d.c.robot_id == robot_id, d.c.status.in_(("pending", "retrying")))
            .values(status="failed", error=DELETED_ERROR, claimed_until=None)
        )
    robot = _info(row)
    _robots_changed(session_id, robot)
    return robot


# --- the delivery log -----------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True, slots=True)
class Delivery:
    """One event told (or being told) to one robot."""

    id: int
    event_key: str
    event_at: datetime
    robot_id: int
    robot_kind: str
    robot_url: str  # masked
    robot_scope: str
    robot_deleted: bool
    status: str
    attempts: int
    last_attempt_at: datetime | None
    next_attempt_at: datetime | None  # only while it will be tried again
    sent_at: datetime | None
    response_status: int | None
    response_body: str
    error: str


def delivery_view(d: Delivery) -> dict[str, Any]:
    """The JSON shape of a delivery (the API contract)."""
    return {
        "id": d.id,
        "event": {"key": d.event_key, "created_at": _iso(d.event_at)},
        "robot": {"id": d.robot_id, "kind": d.robot_kind, "url": d.robot_url, "scope": d.robot_scope,
                  "deleted": d.robot_deleted},
        "status": d.status, "attempts": d.attempts, "last_attempt_at": _iso(d.last_attempt_at),
        "next_attempt_at": _iso(d.next_attempt_at), "sent_at": _iso(d.sent_at),
        "response_status": d.response_status, "response_body": d.response_body, "error": d.error,
    }


def delivery_log(store: Store, *, actor: Actor, session_id: int, limit: int = 100) -> list[Delivery]:
    """The session's deliveries, newest event first (then by robot): for whoever may read the session."""
    limit = max(1, min(limit, MAX_LOG))
    d, e = t.robot_deliveries, t.outbox_events
    with store.db.connect() as conn:
        _readable(conn, actor, session_id)
        rows = conn.execute(
            sa.select(d.c.id, e.c.key, e.c.created_at, _r.c.id.label("robot_id"), _r.c.kind, _r.c.url,
                      _r.c.session_id.label("robot_session"), _r.c.deleted_at, d.c.status, d.c.attempts,
                      d.c.last_attempt_at, d.c.next_attempt_at, d.c.sent_at, d.c.response_status,
                      d.c.response_body, d.c.error)
            .select_from(d.join(e, e.c.id == d.c.event_id).join(_r, _r.c.id == d.c.robot_id))
            .where(d.c.session_id == session_id)
            .order_by(e.c.created_at.desc(), e.c.id.desc(), d.c.robot_id)
            .limit(limit)
        ).all()
    return [
        Delivery(
            id=row.id, event_key=row.key, event_at=row.created_at, robot_id=row.robot_id, robot_kind=row.kind,
            robot_url=mask_url(row.url, row.kind), robot_scope="session" if row.robot_session is not None else "village",
            robot_deleted=row.deleted_at is not None, status=row.status, attempts=row.attempts,
            last_attempt_at=row.last_attempt_at,
            next_attempt_at=row.next_attempt_at if row.status in ("pending", "retrying") else None,
            sent_at=row.sent_at, response_status=row.response_status, response_body=row.response_body or "",
            error=row.error or "",
        )
        for row in rows
    ]
