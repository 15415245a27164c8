"""Operations in one process: request ids, structured access logs, /metrics."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from livesale.extensions import socketio
from tests.conftest import Api, Users


def scrape(client: Any, **kw: Any) -> dict[str, float]:
    """``/metrics`` as ``{"name{label=value,...}": value}`` (samples of every family)."""
    r = client.get("/metrics", **kw)
    assert r.status_code == 200, r.data
    assert r.headers["Content-Type"].startswith("text/plain; version=")  # the Prometheus text format
    out: dict[str, float] = {}
    for family in text_string_to_metric_families(r.get_data(as_text=True)):
        for s in family.samples:
            labels = ",".join(f"{k}={v}" for k, v in sorted(s.labels.items()))
            out[f"{s.name}{{{labels}}}"] = s.value
    return out


def delta(before: dict[str, float], after: dict[str, float], key: str) -> float:
    return after.get(key, 0.0) - before.get(key, 0.0)


def log_lines(text: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in text.splitlines() if line.startswith("{")]


def test_every_response_has_a_request_id_and_a_plausible_given_one_is_kept(client: Any) -> None:
    made = client.get("/livez").headers["X-Request-ID"]
    assert re.fullmatch(r"[0-9a-f]{16}", made)
    assert client.get("/livez").headers["X-Request-ID"] != made
    assert client.get("/livez", headers={"X-Request-ID": "nginx-3f2a.9"}).headers["X-Request-ID"] == "nginx-3f2a.9"
    # Anything else (too long, spaces, a newline for log injection) is replaced.
    for bad in ("x" * 65, "two words", "a\"b", "<script>", "é"):
        got = client.get("/livez", headers={"X-Request-ID": bad}).headers["X-Request-ID"]
        assert re.fullmatch(r"[0-9a-f]{16}", got), got


def test_one_json_access_line_per_request_with_its_id(
    client: Any, host_api: Api, live_session: dict[str, Any], capsys: pytest.CaptureFixture[str]
) -> None:
    capsys.readouterr()
    r = host_api.post(f"/api/v1/sessions/{live_session['id']}/orders", json={"sku": "APRICOT-5KG", "quantity": 2},
                      headers={"X-Request-ID": "req-order-1"})
    assert r.status_code == 201
    bad = host_api.post(f"/api/v1/sessions/{live_session['id']}/orders", json={"sku": "APRICOT-5KG", "quantity": 0})
    assert bad.status_code == 422
    lines = [x for x in log_lines(capsys.readouterr().err) if x["logger"] == "livesale.access"]
    assert [(x["method"], x["status"]) for x in lines] == [("POST", 201), ("POST", 422)]
    first = lines[0]
    assert first["request_id"] == "req-order-1" and first["level"] == "info"
    assert first["path"] == f"/api/v1/sessions/{live_session['id']}/orders"
    assert first["user"] == "host" and first["ms"] >= 0 and first["ts"].endswith("Z")
    assert lines[1]["request_id"] == bad.headers["X-Request-ID"]


def test_an_unexpected_error_is_logged_with_the_request_id_it_answers_with(
    app: Any, client: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    @app.get("/api/v1/_boom")
    def boom() -> None:
        raise RuntimeError("boom")

    capsys.readouterr()
    r = client.get("/api/v1/_boom", headers={"X-Request-ID": "req-boom"})
    assert r.status_code == 500
    assert "req-boom" in r.json["error"]["message"]
    lines = log_lines(capsys.readouterr().err)
    error = next(x for x in lines if x["level"] == "error")
    assert error["request_id"] == "req-boom" and "RuntimeError: boom" in error["exc"]


def test_health_checks_are_not_logged_at_info(client: Any, capsys: pytest.CaptureFixture[str]) -> None:
    capsys.readouterr()
    client.get("/healthz")
    client.get("/metrics")
    assert [x for x in log_lines(capsys.readouterr().err) if x["logger"] == "livesale.access"] == []


def test_access_log_can_be_turned_off(app: Any, client: Any, capsys: pytest.CaptureFixture[str]) -> None:
    app.config["ACCESS_LOG"] = False
    capsys.readouterr()
    client.get("/api/v1/sessions")
    assert log_lines(capsys.readouterr().err) == []


def test_metrics_count_new_orders_repeats_and_refusals_exactly(
    client: Any, host_api: Api, live_session: dict[str, Any]
) -> None:
    url = f"/api/v1/sessions/{live_session['id']}/orders"
    before = scrape(client)
    assert host_api.post(url, json={"sku": "APRICOT-5KG", "quantity": 1},
                         headers={"Idempotency-Key": "k-1"}).status_code == 201
    assert host_api.post(url, json={"sku": "APRICOT-5KG", "quantity": 1},
                         headers={"Idempotency-Key": "k-1"}).status_code == 200  # a retry
    batch = {"orders": [{"sku": "DRIED-1KG", "quantity": 1, "external_id": f"e{i}"} for i in range(3)]}
    assert host_api.post(url, json=batch).status_code == 201
    batch["orders"].append({"sku": "DRIED-1KG", "quantity": 1, "external_id": "e3"})
    assert host_api.post(url, json=batch).status_code == 201  # one new, three repeated
    assert host_api.post(url, json={"sku": "NOPE", "quantity": 1}).status_code == 422
    after = scrape(client)

    assert delta(before, after, "livesale_orders_recorded_total{}") == 1 + 3 + 1
    assert delta(before, after, "livesale_order_requests_total{kind=single,outcome=new}") == 1
    assert delta(before, after, "livesale_order_requests_total{kind=single,outcome=repeat}") == 1
    assert delta(before, after, "livesale_order_requests_total{kind=batch,outcome=new}") == 2
    assert delta(before, after, "livesale_order_requests_total{kind=single,outcome=refused}") == 1
    assert delta(before, after, "livesale_ingest_seconds_count{kind=single}") == 3
    assert delta(before, after, "livesale_ingest_seconds_count{kind=batch}") == 2
    assert delta(before, after, "livesale_ingest_seconds_bucket{kind=batch,le=+Inf}") == 2
    assert delta(before, after, "livesale_http_requests_total{endpoint=api.record_orders,status=4xx}") == 1


def test_metrics_count_viewers_push_ticks_and_rebuilds(
    app: Any, client: Any, users: Users, host_api: Api, live_session: dict[str, Any], redis_client: Any
) -> None:
    ticker = app.extensions["livesale.ticker"]
    before = scrape(client)
    viewers = [socketio.test_client(app, namespace="/live", auth={"token": users.token("host")}) for _ in range(3)]
    assert delta(before, scrape(client), "livesale_viewers{}") == 3
    viewers[0].disconnect(namespace="/live")
    assert delta(before, scrape(client), "livesale_viewers{}") == 2

    host_api.post(f"/api/v1/sessions/{live_session['id']}/orders", json={"sku": "APRICOT-5KG", "quantity": 1})
    assert ticker.tick() == 1
    assert ticker.tick() == 0  # nothing changed: not a push tick
    mid = scrape(client)
    assert delta(before, mid, "livesale_push_ticks_total{}") == 1
    assert delta(before, mid, "livesale_pushed_sessions_total{}") == 1

    redis_client.flushdb()  # Redis lost everything: the next read rebuilds from SQL
    assert host_api.get(f"/api/v1/sessions/{live_session['id']}/totals").json["orders"] == 1
    assert delta(mid, scrape(client), "livesale_redis_rebuilds_total{}") == 1
    for v in viewers[1:]:
        v.disconnect(namespace="/live")
    assert delta(before, scrape(client), "livesale_viewers{}") == 0


def test_metrics_can_require_a_token(app: Any, client: Any) -> None:
    app.config["METRICS_TOKEN"] = "s3cret-metrics"
    assert client.get("/metrics").status_code == 401
    assert client.get("/metrics", headers={"Authorization": "Bearer wrong"}).status_code == 401
    scrape(client, headers={"Authorization": "Bearer s3cret-metrics"})


def test_bad_log_settings_are_refused() -> None:
    from livesale.config import ConfigError, check_settings, load_settings

    with pytest.raises(ConfigError, match="ACCESS_LOG"):
        load_settings({"LIVESALE_ACCESS_LOG": "maybe"})
    assert load_settings({"LIVESALE_ACCESS_LOG": "off"})["ACCESS_LOG"] is False
    with pytest.raises(ConfigError, match="LOG_FORMAT"):
        check_settings({"ENV": "testing", "LOG_FORMAT": "xml"})



def test_a_nul_character_in_the_url_or_a_form_is_refused_naming_the_field(
    client: Any, users: Users, host_api: Api
) -> None:
    """PostgreSQL refuses NUL in text: it must be refused up front, never reach a query (was a 500)."""
    r = host_api.get("/api/v1/sessions?platform=%00")
    assert r.status_code == 422 and r.json["error"] == {
        "code": "invalid", "message": "text must not contain a NUL character", "field": "platform"}
    official = users.api("official")
    assert official.get("/sessions?village=a%00b").status_code == 422
    r = host_api.get("/api/v1/sessions?%00=1")  # the name itself: still named, visibly
    assert r.status_code == 422 and r.json["error"]["field"] == "\\u0000"
    r = host_api.get("/api/v1/sessions?=%00")  # no name at all
    assert r.status_code == 422 and r.json["error"]["field"] == "(unnamed)"
    r = client.post("/login", data={"name": "a\x00b", "password": "x"})
    assert r.status_code == 422 and r.json["error"]["field"] == "name"
    assert client.get("/widget/ab%00cd").status_code == 404
    assert host_api.post("/api/v1/sessions/1/orders/a%00b/refund", json={}).status_code == 404
