"""Admins manage users and tokens in the browser as well as from the CLI; nobody else may."""

from __future__ import annotations

import re
from typing import Any

import pytest

from livesale.web.auth import forget_cached_tokens
from tests.conftest import Api, Users
from tests.web.test_pages import login, page_csrf


def row(html: str, name: str) -> str:
    found = re.search(rf'<tr data-user="{re.escape(name)}".*?</tr>', html, re.S)
    assert found, name
    return found.group(0)


@pytest.fixture
def admin_client(client: Any, users: Users) -> Any:
    users.token("admin", "root")
    login(client, "root")
    return client


def test_only_admins_see_the_users_page(client: Any, users: Users) -> None:
    assert client.get("/admin/users").status_code == 302  # log in first
    for role in ("official", "host"):
        users.token(role)
        login(client, role)
        assert client.get("/admin/users").status_code == 403
        assert client.post("/admin/users", data={"name": "x", "role": "admin"}).status_code in (400, 403)
        client.post("/logout", data={"csrf_token": page_csrf(client.get("/sessions").text)})


def test_admin_adds_a_user_who_can_log_in(admin_client: Any) -> None:
    page = admin_client.get("/admin/users")
    assert page.status_code == 200 and page.headers["X-Frame-Options"] == "DENY"
    csrf = page_csrf(page.text)
    r = admin_client.post("/admin/users", data={"name": "古丽", "role": "host", "password": "apricots-2026",
                                                "csrf_token": csrf})
    assert r.status_code == 302
    assert "古丽" in admin_client.get("/admin/users").text
    again = admin_client.post("/admin/users", data={"name": "古丽", "role": "host", "csrf_token": csrf})
    assert again.status_code == 409
    short = admin_client.post("/admin/users", data={"name": "x", "role": "host", "password": "short",
                                                    "csrf_token": csrf})
    assert short.status_code == 400
    no_csrf = admin_client.post("/admin/users", data={"name": "y", "role": "host"})
    assert no_csrf.status_code == 400
    assert 'data-user="y"' not in admin_client.get("/admin/users").text


def test_admin_issues_revokes_and_deactivates(admin_client: Any, users: Users) -> None:
    users.token("host", "aygul")
    csrf = page_csrf(admin_client.get("/admin/users").text)
    issued = admin_client.post("/admin/users/aygul/tokens", data={"label": "手机", "csrf_token": csrf})
    assert issued.status_code == 200 and issued.headers["Cache-Control"] == "no-store"
    token = re.search(r'<code id="new-token">(ls_[^<]+)</code>', issued.text).group(1)
    api = Api(users.app.test_client(), token)
    assert api.get("/api/v1/sessions").status_code == 200
    assert row(admin_client.get("/admin/users").text, "aygul").count('data-field="tokens">2<') == 1

    assert admin_client.post("/admin/users/aygul/revoke", data={"csrf_token": csrf}).status_code == 302
    forget_cached_tokens()  # the API caches a token for a few seconds
    assert api.get("/api/v1/sessions").status_code == 401
    assert 'data-field="tokens">0<' in row(admin_client.get("/admin/users").text, "aygul")

    fresh = admin_client.post("/admin/users/aygul/tokens", data={"csrf_token": csrf})
    token = re.search(r'<code id="new-token">(ls_[^<]+)</code>', fresh.text).group(1)
    assert admin_client.post("/admin/users/aygul/active", data={"active": "0", "csrf_token": csrf}).status_code == 302
    forget_cached_tokens()
    assert Api(users.app.test_client(), token).get("/api/v1/sessions").status_code == 401
    assert "deactivated" in row(admin_client.get("/admin/users?lang=en").text, "aygul")
    assert admin_client.post("/admin/users/aygul/active", data={"active": "1", "csrf_token": csrf}).status_code == 302
    forget_cached_tokens()
    assert Api(users.app.test_client(), token).get("/api/v1/sessions").status_code == 200
    # An admin cannot lock themselves out; unknown users and bad values are refused.
    admin_client.post("/admin/users/root/active", data={"active": "0", "csrf_token": csrf})
    assert "deactivated" not in row(admin_client.get("/admin/users?lang=en").text, "root")
    assert admin_client.post("/admin/users/aygul/active", data={"active": "x", "csrf_token": csrf}).status_code == 400
    assert admin_client.post("/admin/users/aygul/revoke", data={}).status_code == 400
