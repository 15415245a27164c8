"""Signed-push hooks (core.hooks): who may make, list, rotate and delete them, and how a push is checked,
on the real database of the run. The HMAC is recomputed here independently of the code under test."""

from __future__ import annotations

import hashlib
import hmac
import time
from typing import Any

import pytest
import sqlalchemy as sa

from livesale.core import hooks, validation
from livesale.core import sessions as session_service
from livesale.core import tables as t
from livesale.core.auth import set_active
from livesale.core.db import write_transaction
from livesale.core.errors import Forbidden, InvalidInput, NotFound, Unauthorized
from tests.conftest import APRICOT_SESSION, Users
from tests.ledger import order_input

NOW = 1_780_000_000
BODY = b'{"sku":"APRICOT-5KG","quantity":2,"external_id":"dy-1"}'


def _hmac(secret: str, t_: int, body: bytes) -> str:
    """What the README tells a sender to compute."""
    return hmac.new(secret.encode(), f"{t_}.".encode() + body, hashlib.sha256).hexdigest()


@pytest.fixture
def world(store: Any, users: Users) -> dict[str, Any]:
    host = users.actor("host")
    info = session_service.create_session(store, actor=host, data=validation.parse_session(APRICOT_SESSION))
    return {"host": host, "session": info.id, "store": store, "users": users}


def test_secret_is_long_random_and_shown_only_at_creation(world: dict[str, Any]) -> None:
    store, host, sid = world["store"], world["host"], world["session"]
    a = hooks.create_hook(store, actor=host, session_id=sid)
    b = hooks.create_hook(store, actor=host, session_id=sid)
    assert len(a.secret) == 43 and a.secret != b.secret and a.hook_id != b.hook_id  # token_urlsafe(32)
    assert hooks.HOOK_ID_RE.fullmatch(a.hook_id)
    listed = hooks.list_hooks(store, actor=host, session_id=sid)
    assert [h.hook_id for h in listed] == [a.hook_id, b.hook_id]
    views = [hooks.hook_view(h) for h in listed]
    assert all(set(v) == {"hook_id", "created_by", "created_at"} for v in views)
    assert a.secret not in repr(listed) + repr(views)
    assert views[0]["created_by"] == "host" and views[0]["created_at"].endswith("Z")


@pytest.mark.parametrize("role", ["official", "other host"])
def test_only_the_sessions_host_and_admins_manage_hooks(world: dict[str, Any], role: str) -> None:
    store, sid = world["store"], world["session"]
    made = hooks.create_hook(store, actor=world["host"], session_id=sid)
    outsider = world["users"].actor("official" if role == "official" else "host",
                                       "official" if role == "official" else "host-2")
    for call in (
        lambda: hooks.create_hook(store, actor=outsider, session_id=sid),
        lambda: hooks.list_hooks(store, actor=outsider, session_id=sid),
        lambda: hooks.rotate_hook(store, actor=outsider, session_id=sid, hook_id=made.hook_id),
        lambda: hooks.delete_hook(store, actor=outsider, session_id=sid, hook_id=made.hook_id),
    ):
        with pytest.raises(Forbidden):
            call()
    assert [h.hook_id for h in hooks.list_hooks(store, actor=world["host"], session_id=sid)] == [made.hook_id]
    admin = world["users"].actor("admin")
    rotated = hooks.rotate_hook(store, actor=admin, session_id=sid, hook_id=made.hook_id)
    assert rotated.hook_id == made.hook_id and rotated.secret != made.secret
    hooks.delete_hook(store, actor=admin, session_id=sid, hook_id=made.hook_id)
    assert hooks.list_hooks(store, actor=admin, session_id=sid) == []


def test_a_hook_of_another_session_is_not_found(world: dict[str, Any]) -> None:
    store, host = world["store"], world["host"]
    other = session_service.create_session(store, actor=host, data=validation.parse_session(APRICOT_SESSION)).id
    made = hooks.create_hook(store, actor=host, session_id=world["session"])
    with pytest.raises(NotFound):
        hooks.rotate_hook(store, actor=host, session_id=other, hook_id=made.hook_id)
    with pytest.raises(NotFound):
        hooks.delete_hook(store, actor=host, session_id=other, hook_id="no-such-hook-at-all")
    with pytest.raises(NotFound):
        hooks.create_hook(store, actor=host, session_id=424242)


def test_signing_is_hmac_sha256_of_t_dot_body() -> None:
    assert hooks.signature("s3cret", BODY, NOW) == _hmac("s3cret", NOW, BODY)
    assert hooks.sign("s3cret", BODY, NOW) == f"t={NOW},v1={_hmac('s3cret', NOW, BODY)}"
    # A known value (computed once with `printf '%s.%s' 1780000000 "$body" | openssl dgst -sha256 -hmac s3cret`).
    assert hooks.signature("s3cret", b"{}", NOW) == hmac.new(b"s3cret", b"1780000000.{}", hashlib.sha256).hexdigest()


@pytest.mark.parametrize(
    "header",
    [None, "", "garbage", f"t={NOW}", "v1=" + "a" * 64, f"t=x,v1={'a' * 64}", f"t={NOW},v1={'a' * 63}",
     f"t={NOW},v1={'g' * 64}", f"t=-{NOW},v1={'a' * 64}", f"t={NOW}.5,v1={'a' * 64}", f"t={NOW},v0={'a' * 64}"],
)
def test_a_header_that_is_not_t_and_v1_is_refused(header: str | None) -> None:
    with pytest.raises(Unauthorized):
        hooks.parse_header(header)


def test_header_parts_in_any_order_with_spaces_and_several_signatures() -> None:
    sig = "AB" * 32
    assert hooks.parse_header(f" v1={sig} , t={NOW},v1={'c' * 64}") == (NOW, [sig.lower(), "c" * 64])


def _verify(store: Any, hook_id: str, header: str | None, body: bytes = BODY, now: float = NOW) -> Any:
    return hooks.verify_push(store, hook_id=hook_id, header=header, body=body, now=now)


def test_a_good_push_acts_as_the_sessions_host(world: dict[str, Any], users: Users) -> None:
    store, sid = world["store"], world["session"]
    admin = users.actor("admin")
    made = hooks.create_hook(store, actor=admin, session_id=sid)  # made by an admin, still acts as the host
    push = _verify(store, made.hook_id, f"t={NOW},v1={_hmac(made.secret, NOW, BODY)}")
    assert push.session_id == sid and push.actor == world["host"]
    # Another (wrong) signature next to the right one: still accepted (a sender mid-rotation may send two).
    push = _verify(store, made.hook_id, f"t={NOW},v1={'0' * 64},v1={_hmac(made.secret, NOW, BODY)}")
    assert push.session_id == sid


def test_refusals_never_echo_the_secret_or_a_signature(world: dict[str, Any]) -> None:
    store, sid = world["store"], world["session"]
    made = hooks.create_hook(store, actor=world["host"], session_id=sid)
    good = _hmac(made.secret, NOW, BODY)
    cases = {
        "wrong secret": (made.hook_id, f"t={NOW},v1={_hmac('not-the-secret', NOW, BODY)}", BODY, NOW),
        "body changed": (made.hook_id, f"t={NOW},v1={good}", BODY.replace(b"2", b"3"), NOW),
        "signed for another t": (made.hook_id, f"t={NOW + 1},v1={good}", BODY, NOW),
        "301 s old": (made.hook_id, f"t={NOW},v1={good}", BODY, NOW + 301),
        "301 s ahead": (made.hook_id, f"t={NOW},v1={good}", BODY, NOW - 301),
        "missing": (made.hook_id, None, BODY, NOW),
        "unknown hook": ("x" * 22, f"t={NOW},v1={good}", BODY, NOW),
        "not a hook id": ("../../etc", f"t={NOW},v1={good}", BODY, NOW),
    }
    for name, (hook_id, header, body, now) in cases.items():
        with pytest.raises(Unauthorized) as refused:
            _verify(store, hook_id, header, body, now)
        said = refused.value.message
        assert made.secret not in said and good not in said, name
    # The window is 5 minutes both ways, inclusive.
    for now in (NOW - 300, NOW + 300):
        assert _verify(store, made.hook_id, f"t={NOW},v1={good}", now=now).session_id == sid


def test_rotation_and_deletion_take_effect_at_once(world: dict[str, Any]) -> None:
    store, host, sid = world["store"], world["host"], world["session"]
    made = hooks.create_hook(store, actor=host, session_id=sid)
    rotated = hooks.rotate_hook(store, actor=host, session_id=sid, hook_id=made.hook_id)
    with pytest.raises(Unauthorized):
        _verify(store, made.hook_id, f"t={NOW},v1={_hmac(made.secret, NOW, BODY)}")
    assert _verify(store, made.hook_id, f"t={NOW},v1={_hmac(rotated.secret, NOW, BODY)}").session_id == sid
    hooks.delete_hook(store, actor=host, session_id=sid, hook_id=made.hook_id)
    with pytest.raises(Unauthorized, match="no such hook"):
        _verify(store, made.hook_id, f"t={NOW},v1={_hmac(rotated.secret, NOW, BODY)}")
    with store.db.connect() as conn:  # the row stays, marked
        row = conn.execute(sa.select(t.order_hooks).where(t.order_hooks.c.hook_id == made.hook_id)).one()
    assert row.revoked_at is not None
    with pytest.raises(NotFound):
        hooks.rotate_hook(store, actor=host, session_id=sid, hook_id=made.hook_id)


def test_a_deactivated_host_s_hooks_take_no_orders(world: dict[str, Any], users: Users) -> None:
    store, sid = world["store"], world["session"]
    made = hooks.create_hook(store, actor=world["host"], session_id=sid)
    admin = users.actor("admin")
    with write_transaction(store.db) as conn:
        set_active(conn, actor=admin, user_name="host", active=False)
    with pytest.raises(Forbidden):
        _verify(store, made.hook_id, f"t={NOW},v1={_hmac(made.secret, NOW, BODY)}")


def test_the_window_is_against_the_real_clock_by_default(world: dict[str, Any]) -> None:
    store, sid = world["store"], world["session"]
    made = hooks.create_hook(store, actor=world["host"], session_id=sid)
    now = int(time.time())
    assert hooks.verify_push(store, hook_id=made.hook_id, header=hooks.sign(made.secret, BODY, now),
                             body=BODY).session_id == sid
    with pytest.raises(Unauthorized, match="more than 300 s"):
        hooks.verify_push(store, hook_id=made.hook_id, header=hooks.sign(made.secret, BODY, now - 3600), body=BODY)


def test_pushed_orders_must_carry_an_external_id() -> None:
    hooks.require_external_ids([order_input({"sku": "A", "quantity": 1}, external_id="x")])
    with pytest.raises(InvalidInput) as single:
        hooks.require_external_ids([order_input({"sku": "A", "quantity": 1})])
    assert single.value.field == "external_id"
    with pytest.raises(InvalidInput) as batch:
        hooks.require_external_ids([order_input({"sku": "A", "quantity": 1}, external_id="x", field="orders[0]"),
                                    order_input({"sku": "A", "quantity": 1}, field="orders[1]")])
    assert batch.value.field == "orders[1].external_id"
