"""A client generated from ``/api/v1/openapi.json`` works as it is.

openapi-python-client, with its default configuration, reads the document
from a real server (``gunicorn``, as ``livesale serve`` runs it), must not
warn about anything, and the package it writes — imported from a temporary
folder, unedited — drives a sale session from creation to results: every
request it builds is accepted and every answer parses into its typed models.

The generator is needed, not optional: without it this module fails rather
than skips (it is in the ``test`` extra).
"""

from __future__ import annotations

import importlib
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any
from uuid import UUID

import openapi_python_client  # noqa: F401  (a missing generator is an error here, not a skip)
import pytest

from livesale.web.openapi import openapi_document
from tests.conftest import APRICOT_SESSION, Users

PACKAGE = "livesale_client"
BIN = Path(sys.executable).parent


def generate(url: str, into: Path) -> str:
    """Run the generator as a user would: its CLI, default configuration, no network but our server.

    Its post-generation hooks run ``ruff`` (installed beside it), so the
    virtualenv's bin folder goes first on PATH. Returns what it printed.
    """
    done = subprocess.run(
        [str(BIN / "openapi-python-client"), "generate", "--url", url, "--output-path", str(into / "client"),
         "--fail-on-warning"],
        cwd=into,
        env={"PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}", "HOME": str(into), "NO_COLOR": "1",
             "COLUMNS": "200", "LANG": "C.UTF-8"},
        capture_output=True,
        text=True,
        timeout=120,
    )
    output = done.stdout + done.stderr
    assert done.returncode == 0, output
    return output


@pytest.fixture
def generated(server_factory: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """``(server, import_module)``: a running server and the client generated from its document."""
    # Robots' addresses are checked without DNS (none in tests): private addresses allowed.
    monkeypatch.setenv("LIVESALE_WEBHOOK_ALLOW_PRIVATE", "1")
    server = server_factory()
    output = generate(f"{server.url}/api/v1/openapi.json", tmp_path)
    assert "Warning" not in output and "Traceback" not in output, output
    assert (tmp_path / "client" / PACKAGE / "py.typed").is_file(), output
    monkeypatch.syspath_prepend(str(tmp_path / "client"))
    assert PACKAGE not in sys.modules
    assert Path(importlib.import_module(PACKAGE).__file__).is_relative_to(tmp_path)

    def module(name: str) -> ModuleType:
        return importlib.import_module(f"{PACKAGE}.{name}")

    yield server, module
    for name in [m for m in sys.modules if m == PACKAGE or m.startswith(PACKAGE + ".")]:
        del sys.modules[name]


def test_generated_client_drives_a_session(generated: Any, users: Users) -> None:
    server, module = generated
    # One module per operation, grouped by the document's tags.
    operations = {
        "sessions": ["create_session", "start_session", "get_session", "list_sessions", "update_session",
                     "update_widget", "rotate_widget_key", "end_session", "delete_session", "update_audience"],
        "orders": ["record_orders", "list_orders", "refund_order"],
        "totals": ["get_totals", "get_results", "compare_sessions", "get_reconciliation", "set_final_figures",
                   "revert_final_figures"],
        "imports": ["import_export"],
        "hooks": ["create_hook", "list_hooks", "rotate_hook", "delete_hook", "push_orders"],
        "meta": ["health", "live", "openapi"],
        "notifications": ["add_robot", "list_robots", "delete_robot", "list_robot_deliveries"],
    }
    described = {
        (op["tags"][0], re.sub(r"(?<!^)(?=[A-Z])", "_", op["operationId"]).lower())
        for item in openapi_document()["paths"].values() for key, op in item.items() if key != "parameters"
    }
    assert described == {(tag, name) for tag, names in operations.items() for name in names}  # every operation, no other
    for tag, name in described:
        module(f"api.{tag}.{name}")
    sessions, orders_api, totals_api, _imports, hooks, meta, notifications = (
        module(f"api.{tag}") for tag in operations)
    m = module("models")
    types = module("types")

    client = module("client").AuthenticatedClient(
        base_url=server.url, token=users.token("host"), raise_on_unexpected_status=True, timeout=20.0
    )
    # The health checks need no token.
    with module("client").Client(base_url=server.url, raise_on_unexpected_status=True) as public:
        health = meta.health.sync(client=public)
        assert (health.db, health.redis) == (m.HealthDb.OK, m.HealthRedis.OK)
    with client:
        assert meta.live.sync(client=client).status == m.LiveResponse200Status.OK

        # Create: the time zone is any IANA name, checked by the server.
        products = [
            m.ProductInput(sku=p["sku"], name=p["name"], unit=p["unit"], unit_price_fen=p["unit_price_fen"],
                           stock=p.get("stock", types.UNSET))
            for p in APRICOT_SESSION["products"]
        ]
        body = m.SessionCreate(
            title=APRICOT_SESSION["title"], village=APRICOT_SESSION["village"], hosts=APRICOT_SESSION["hosts"],
            platform="douyin", goal_fen=APRICOT_SESSION["goal_fen"], products=products, timezone="Asia/Urumqi",
        )
        r = sessions.create_session.sync_detailed(client=client, body=body)
        assert r.status_code == 201, r.content
        session = r.parsed
        assert isinstance(session, m.Session)
        assert r.headers["Location"] == f"/api/v1/sessions/{session.id}"
        assert (session.timezone, session.status, session.title) == (
            "Asia/Urumqi", m.SessionStatus.SCHEDULED, APRICOT_SESSION["title"])
        assert [p.sku for p in session.products] == ["APRICOT-5KG", "DRIED-1KG"]
        assert session.started_at is None and session.scheduled_start is None
        sid = session.id

        # A time zone the server does not know: a 422 the client parses as an Error naming the field.
        r = sessions.create_session.sync_detailed(
            client=client, body=m.SessionCreate(title="x", products=products[:1], timezone="Asia/Atlantis"))
        assert r.status_code == 422 and isinstance(r.parsed, m.Error)
        assert (r.parsed.error.code, r.parsed.error.field) == ("invalid", "timezone")
        # Names whose enum identifiers used to collide are all plain strings now.
        for zone in ("GMT0", "GMT-0", "GMT+0", "Etc/GMT+8"):
            r = sessions.create_session.sync_detailed(
                client=client, body=m.SessionCreate(title=zone, products=products[:1], timezone=zone))
            assert r.status_code == 201 and r.parsed.timezone == zone, r.content
            assert sessions.delete_session.sync_detailed(r.parsed.id, client=client).status_code == 204

        # Edit before the start (PATCH), read it back.
        edited = sessions.update_session.sync(sid, client=client, body=m.SessionUpdate(goal_fen=8_000_000))
        assert edited.goal_fen == 8_000_000
        assert sessions.get_session.sync(sid, client=client).goal_fen == 8_000_000
        listed = sessions.list_sessions.sync(client=client, status=m.SessionStatus.SCHEDULED, limit=10)
        assert [s.id for s in listed.sessions] == [sid] and listed.total == 1

        # Start.
        started = sessions.start_session.sync(sid, client=client)
        assert started.status == m.SessionStatus.LIVE and started.started_at is not None

        # One order, with an Idempotency-Key.
        first = m.OrderInput(sku="APRICOT-5KG", quantity=2, buyer_region="浙江杭州", channel="douyin")
        r = orders_api.record_orders.sync_detailed(sid, client=client, body=first, idempotency_key="h9-order-1")
        assert r.status_code == 201, r.content
        assert isinstance(r.parsed, m.OrderRecorded)
        order = r.parsed.order
        assert isinstance(order.id, UUID)
        assert (order.amount_fen, order.status, r.parsed.totals.amount_fen) == (13960, m.OrderStatus.PAID, 13960)

        # The same request again (a retry after a lost answer): 200, the same order, counted once.
        r = orders_api.record_orders.sync_detailed(sid, client=client, body=first, idempotency_key="h9-order-1")
        assert r.status_code == 200, r.content
        assert r.parsed.order.id == order.id and r.parsed.totals.orders == 1
        # The same key with another payload: a 409 parsed as an Error.
        r = orders_api.record_orders.sync_detailed(
            sid, client=client, body=m.OrderInput(sku="APRICOT-5KG", quantity=3), idempotency_key="h9-order-1")
        assert r.status_code == 409 and r.parsed.error.code == "idempotency_conflict"

        # A batch (the body's other shape), with a price of its own.
        batch = m.OrderBatch(orders=[m.OrderInput(sku="DRIED-1KG", quantity=3, unit_price_fen=5500),
                                     m.OrderInput(sku="APRICOT-5KG", quantity=1)])
        r = orders_api.record_orders.sync_detailed(sid, client=client, body=batch, idempotency_key="h9-batch")
        assert r.status_code == 201, r.content
        assert isinstance(r.parsed, m.OrdersRecorded)
        assert [o.amount_fen for o in r.parsed.orders] == [16500, 6980]
        refund_me = r.parsed.orders[1].id
        all_ids = {order.id, *(o.id for o in r.parsed.orders)}

        # Refund.
        refunded = orders_api.refund_order.sync(sid, refund_me, client=client)
        assert refunded.order.status == m.OrderStatus.REFUNDED and refunded.order.refunded_at is not None

        # Totals: paid orders only.
        totals = totals_api.get_totals.sync(sid, client=client)
        assert (totals.amount_fen, totals.orders, totals.status) == (13960 + 16500, 2, m.SessionStatus.LIVE)
        by_product = totals.by_product.additional_properties
        assert {sku: (p.quantity, p.amount_fen) for sku, p in by_product.items()} == {
            "APRICOT-5KG": (2, 13960), "DRIED-1KG": (3, 16500)}
        page = orders_api.list_orders.sync(sid, client=client, limit=2)
        assert page.orders[0].id == order.id and page.next_ == page.orders[1].id
        rest = orders_api.list_orders.sync(sid, client=client, after=page.next_)
        assert {o.id for o in page.orders + rest.orders} == all_ids and rest.next_ is None

        # The widget's settings and key.
        widget = sessions.update_widget.sync(
            sid, client=client, body=m.UpdateWidgetBody(enabled=True, origins=["https://live.example.cn"]))
        assert widget.widget_origins == ["https://live.example.cn"]
        assert sessions.rotate_widget_key.sync(sid, client=client).widget_key != widget.widget_key

        # Audience figures (issue 15): given, one cleared with null; the session and its results carry them.
        # 30,460 fen in 2 orders before 1,000 viewers: GPM 30,460; 30.46 → 30 fen a viewer; 0.002 orders a viewer.
        given = sessions.update_audience.sync(sid, client=client,
                                              body=m.AudienceUpdate(viewers=1_000, likes=500, comments=None))
        assert (given.audience.viewers, given.audience.likes, given.audience.comments) == (1_000, 500, None)
        assert sessions.update_audience.sync(sid, client=client, body=m.AudienceUpdate(likes=None)).audience.likes is None
        detail = sessions.get_session.sync(sid, client=client)
        assert isinstance(detail, m.SessionDetail) and detail.audience.viewers == 1_000
        assert (detail.audience_figures.gpm_fen, detail.audience_figures.sales_per_viewer_fen,
                detail.audience_figures.orders_per_viewer, detail.audience_figures.average_order_fen) == (
            30_460, 30, 0.002, 15_230)

        # End, then the results.
        ended = sessions.end_session.sync(sid, client=client)
        assert ended.status == m.SessionStatus.ENDED and ended.ended_at is not None
        results = totals_api.get_results.sync(sid, client=client)
        assert isinstance(results, m.Results)
        assert (results.amount_fen, results.orders, results.refunded_orders, results.refunded_fen) == (
            30460, 2, 1, 6980)
        assert sum(minute.amount_fen for minute in results.timeline) == 30460
        assert results.ended_at == ended.ended_at
        assert results.audience.viewers == 1_000 and results.audience_figures.gpm_fen == 30_460

        # Beside the platforms' record (none imported): reconciliation, then an official keeps the live count.
        rec = totals_api.get_reconciliation.sync(sid, client=client)
        assert (rec.live.orders, rec.live.amount_fen, rec.platform.orders, rec.difference.amount_fen) == (
            2, 30460, 0, -30460)
        official = module("client").AuthenticatedClient(
            base_url=server.url, token=users.token("official"), raise_on_unexpected_status=True, timeout=20.0)
        with official:
            keep = m.SetFinalFiguresBodyType0(source=m.SetFinalFiguresBodyType0Source.LIVE, reason="核对无误")
            r = totals_api.set_final_figures.sync_detailed(sid, client=official, body=keep)
            assert r.status_code == 200, r.content
            final = totals_api.get_results.sync(sid, client=client).final
            assert (final.source, final.reason) == (m.FinalSource.LIVE, "核对无误") and final.by == "official"
            assert totals_api.revert_final_figures.sync_detailed(sid, client=official).status_code == 200

        # A signed push endpoint: made (its secret shown once), listed without it, given a new one, deleted.
        hook = hooks.create_hook.sync(sid, client=client)
        assert hook.secret and hook.url.endswith(f"/hooks/orders/{hook.hook_id}")
        listed_hooks = hooks.list_hooks.sync(sid, client=client).hooks
        assert [h.hook_id for h in listed_hooks] == [hook.hook_id] and "secret" not in listed_hooks[0].to_dict()
        assert hooks.rotate_hook.sync_detailed(sid, hook.hook_id, client=client).status_code == 200
        assert hooks.delete_hook.sync_detailed(sid, hook.hook_id, client=client).status_code == 204

        # A group chat told about the session: a WeCom robot added (shown masked), listed, its log read, deleted.
        key = "0b0b0b0b-1c1c-4d4d-8e8e-9f9f9f9f9f9f"
        body = m.WeComRobotInput(kind=m.WeComRobotInputKind.WECOM,
                                 url=f"https://qyapi.weixin.qq.com/cgi-bin/webhook/send?key={key}")
        robot = notifications.add_robot.sync(sid, client=client, body=body)
        assert isinstance(robot, m.Robot) and robot.url.endswith("key=0b…9f") and key not in robot.url
        assert (robot.kind, robot.has_secret, robot.scope) == (m.RobotKind.WECOM, False, m.RobotScope.SESSION)
        assert [r.id for r in notifications.list_robots.sync(sid, client=client).robots] == [robot.id]
        assert notifications.list_robot_deliveries.sync(sid, client=client, limit=10).deliveries == []
        r = notifications.add_robot.sync_detailed(sid, client=client, body=m.SignedRobotInput(
            kind=m.SignedRobotInputKind.DINGTALK, url="https://example.com/robot/send?access_token=x"))
        assert r.status_code == 422 and (r.parsed.error.field, r.parsed.error.code) == ("url", "url_shape")
        assert notifications.delete_robot.sync_detailed(sid, robot.id, client=client).status_code == 204

        # Compare it with a second session, live with one order.
        other = sessions.create_session.sync(client=client, body=m.SessionCreate(title="第二场", products=products))
        sessions.start_session.sync(other.id, client=client)
        orders_api.record_orders.sync(other.id, client=client, body=m.OrderInput(sku="DRIED-1KG", quantity=1))
        comparison = totals_api.compare_sessions.sync(client=client, ids=f"{sid},{other.id}")
        assert [c.session.id for c in comparison.sessions] == [sid, other.id]
        assert [c.figures.amount_fen for c in comparison.sessions] == [30460, 5900]
        assert comparison.sessions[1].difference.amount_fen.abs_ == 5900 - 30460

        # The document itself, through the client.
        document = meta.openapi.sync(client=client)
        assert document.additional_properties["openapi"].startswith("3.1.")
