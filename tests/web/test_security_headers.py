"""Security headers on every kind of response, and the login cookies' flags.

Every page: a Content-Security-Policy without inline scripts (nor eval), never framed
(``frame-ancestors 'none'`` and ``X-Frame-Options: DENY``) except the widget, which is framed by
the session's origins; ``nosniff``; a Referrer-Policy. The pages carry no inline script, style
attribute or event handler, so the policy does not break them (tests/browser runs them in Chromium
under it). Cookies: HttpOnly, SameSite=Lax, Secure in production only.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask_login import login_user

from livesale import create_app
from livesale.core.auth import actor_by_id
from livesale.extensions import backend
from livesale.web.login import User
from tests.conftest import APRICOT_SESSION, Api, Users
from tests.web.test_pages import login


def csp_directives(header: str) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for part in header.split(";"):
        name, *values = part.split()
        out[name.lower()] = values
    return out


@pytest.fixture
def site(app: Flask, client: Any, users: Users, host_api: Api, live_session: dict[str, Any]) -> dict[str, Any]:
    """One response of every kind: name -> response."""
    sid = live_session["id"]
    other = host_api.post("/api/v1/sessions", json=APRICOT_SESSION).json["id"]
    key = live_session["widget_key"]
    got: dict[str, Any] = {
        "landing": client.get("/"),
        "login": client.get("/login"),
        "widget": client.get(f"/widget/{key}"),
        "widget JSON": client.get(f"/widget/{key}.json"),
        "embed.js": client.get("/embed.js"),
        "API JSON": host_api.get(f"/api/v1/sessions/{sid}/totals"),
        "API error": client.get("/api/v1/sessions"),
        "404 page": client.get("/no-such-page"),
        "404 JSON": host_api.get("/api/v1/no-such-thing"),
        "healthz": client.get("/healthz"),
    }
    login(client, "host")
    got.update({
        "session list": client.get("/sessions"),
        "report": client.get(f"/sessions/{sid}"),
        "compare": client.get(f"/compare?ids={sid},{other}"),
        "live page": client.get(f"/live/{sid}"),
        "order console": client.get(f"/console/{sid}"),
        "console service worker": client.get("/console/sw.js"),
        "CSV export": client.get(f"/sessions/{sid}/orders.csv"),
        "403 page": client.get("/admin/users"),
    })
    # Read and close them now (headers stay): a streamed response (the CSV) keeps its request's app
    # context, and with it ``g`` (the host's login and CSRF token), until it is closed.
    for response in got.values():
        response.get_data()
        response.close()
    users.token("admin")
    admin = app.test_client()
    login(admin, "admin")
    got["admin"] = admin.get("/admin/users")
    got["admin"].close()
    for name, response in got.items():
        assert response.status_code in (200, 302, 401, 403, 404), (name, response.status_code)
    return got


@pytest.fixture
def broken_app(database_url: str, redis_url: str, tmp_path: Path) -> Iterator[Flask]:
    """An app with a page that fails: the 500 error answers."""
    app = create_app({"ENV": "testing", "SECRET_KEY": "test-secret-not-for-production", "DATABASE_URL": database_url,
                      "REDIS_URL": redis_url, "INSTANCE_PATH": str(tmp_path / "broken"), "ASYNC_MODE": "threading",
                      "PUSH_TICK_S": 0})

    @app.get("/boom")
    def boom() -> str:
        raise RuntimeError("a bug")

    yield app
    backend.close(app)


def with_500s(site: dict[str, Any], broken_app: Flask) -> dict[str, Any]:
    client = broken_app.test_client()
    return {**site, "500 page": client.get("/boom"),
            "500 JSON": client.get("/boom", headers={"Accept": "application/json"})}


def test_every_response_sends_the_security_headers(site: dict[str, Any], broken_app: Flask) -> None:
    responses = with_500s(site, broken_app)
    assert responses["500 page"].status_code == responses["500 JSON"].status_code == 500
    assert responses["500 JSON"].json["error"]["code"] == "internal"
    problems = []
    for name, response in responses.items():
        headers = response.headers
        if headers.get("X-Content-Type-Options") != "nosniff":
            problems.append(f"{name}: X-Content-Type-Options {headers.get('X-Content-Type-Options')!r}")
        if headers.get("Referrer-Policy") not in ("same-origin", "no-referrer", "strict-origin-when-cross-origin"):
            problems.append(f"{name}: Referrer-Policy {headers.get('Referrer-Policy')!r}")
        if "Content-Security-Policy" not in headers:
            problems.append(f"{name}: no Content-Security-Policy")
            continue
        csp = csp_directives(headers["Content-Security-Policy"])
        scripts = csp.get("script-src", csp.get("default-src"))
        if scripts is None or not set(scripts) <= {"'self'", "'none'"}:
            problems.append(f"{name}: scripts allowed from {scripts}")
        if name == "widget":
            if "X-Frame-Options" in headers or csp.get("frame-ancestors") == ["'none'"]:
                problems.append(f"{name}: the widget must be framable by its origins: {headers}")
            continue
        if csp.get("frame-ancestors") != ["'none'"]:
            problems.append(f"{name}: frame-ancestors {csp.get('frame-ancestors')}")
        if headers.get("X-Frame-Options") != "DENY":
            problems.append(f"{name}: X-Frame-Options {headers.get('X-Frame-Options')!r}")
        if response.mimetype == "text/html":
            # A page: its own resources only, no plugins, no <base>, forms to the app.
            for directive, allowed in (("default-src", {"'self'", "'none'"}), ("style-src", {"'self'"}),
                                       ("object-src", {"'none'"}), ("base-uri", {"'none'", "'self'"}),
                                       ("form-action", {"'self'", "'none'"})):
                if not csp.get(directive) or not set(csp[directive]) <= allowed:
                    problems.append(f"{name}: {directive} {csp.get(directive)}")
        if response.mimetype == "application/json" and csp.get("default-src") != ["'none'"]:
            problems.append(f"{name}: JSON should load nothing: {csp}")
    assert problems == []


def test_the_widget_is_framed_only_by_its_sessions_origins(client: Any, host_api: Api,
                                                          live_session: dict[str, Any]) -> None:
    sid, key = live_session["id"], live_session["widget_key"]
    anywhere = csp_directives(client.get(f"/widget/{key}").headers["Content-Security-Policy"])
    assert anywhere["frame-ancestors"] == ["*"] and anywhere["script-src"] == ["'self'"]
    r = host_api.patch(f"/api/v1/sessions/{sid}/widget", json={"origins": ["https://shop.example.cn"]})
    assert r.status_code == 200, r.json
    page = client.get(f"/widget/{key}")
    assert csp_directives(page.headers["Content-Security-Policy"])["frame-ancestors"] == ["https://shop.example.cn"]
    assert "X-Frame-Options" not in page.headers


def test_pages_carry_no_inline_code(site: dict[str, Any]) -> None:
    """What the policy would block: inline scripts (JSON data blocks are data), handlers, style attributes."""
    problems = []
    for name, response in site.items():
        if response.mimetype != "text/html":
            continue
        html = response.get_data(as_text=True)
        for tag in re.findall(r"<script\b[^>]*>", html):
            if "src=" not in tag and 'type="application/json"' not in tag:
                problems.append(f"{name}: inline script {tag}")
        problems += [f"{name}: {m}" for m in re.findall(r"<[^>]*\son[a-z]+\s*=[^>]*>", html)]
        problems += [f"{name}: {m}" for m in re.findall(r"<[^>]*\sstyle\s*=[^>]*>", html)]
        problems += [f"{name}: {m}" for m in re.findall(r"<style\b", html)]
        problems += [f"{name}: {m}" for m in re.findall(r"javascript:", html)]
    assert problems == []


def cookie_flags(response: Any, name: str) -> dict[str, str | bool]:
    """The attributes of the ``Set-Cookie`` for ``name`` (lower-case keys; flags are True)."""
    for header in response.headers.getlist("Set-Cookie"):
        if header.startswith(name + "="):
            flags: dict[str, str | bool] = {}
            for part in header.split(";")[1:]:
                key, _, value = part.strip().partition("=")
                flags[key.lower()] = value or True
            return flags
    raise AssertionError(f"no {name} cookie in {response.headers.getlist('Set-Cookie')}")


@pytest.mark.parametrize("env", ["production", "development", "testing"])
def test_login_cookies_are_httponly_lax_and_secure_in_production(
    env: str, database_url: str, redis_url: str, tmp_path: Path
) -> None:
    app = create_app({"ENV": env, "SECRET_KEY": "a-secret-for-this-test-only-0123456789", "DATABASE_URL": database_url,
                      "REDIS_URL": redis_url, "INSTANCE_PATH": str(tmp_path / env), "ASYNC_MODE": "threading",
                      "PUSH_TICK_S": 0})

    @app.get("/remember-me")
    def remember_me() -> str:  # the remember cookie, as login_user(remember=True) writes it
        with backend.store_of(app).db.connect() as conn:
            actor = actor_by_id(conn, user_id=1)
        assert actor is not None
        login_user(User(actor), remember=True)
        return "ok"

    try:
        Users(app).token("host")
        client = app.test_client()
        session = cookie_flags(login(client, "host"), "session")
        remember = cookie_flags(client.get("/remember-me"), "remember_token")
        for flags in (session, remember):
            assert flags.get("httponly") is True, flags
            assert str(flags.get("samesite")).lower() == "lax", flags
            assert bool(flags.get("secure")) is (env == "production"), flags
        lang = cookie_flags(client.get("/login?lang=en"), "lang")
        assert lang.get("httponly") is True and str(lang.get("samesite")).lower() == "lax"
        assert "secure" not in lang  # plain HTTP here; over HTTPS it is Secure (request.is_secure)
    finally:
        backend.close(app)


def test_the_service_worker_may_fetch_for_the_console(site: dict[str, Any]) -> None:
    """A worker's own CSP governs its fetches: the console's must allow the app's origin."""
    worker = site["console service worker"]
    csp = csp_directives(worker.headers["Content-Security-Policy"])
    assert "'self'" in csp.get("connect-src", csp.get("default-src", []))
