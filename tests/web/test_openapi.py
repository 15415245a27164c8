"""The OpenAPI document: valid, complete, and true to what the API does.

* the document is valid OpenAPI 3.1 and is what ``/api/v1/openapi.json`` serves;
* every route of the app under ``/api/v1`` (and the health checks) is described,
  with the same methods and path parameters, and nothing else is;
* the text patterns agree with ``validation.text``, character for character;
* schemathesis drives every operation against the app (in process) with every
  check on: no 5xx, responses (status, content type, headers, body) as
  documented, valid data accepted, invalid data refused, auth enforced.

Schemathesis runs as a host, against a world built per operation (see
``World``). A schema cannot know which SKUs, sessions or orders exist, so
before each call generated values that are *valid* are swapped for valid ones
that exist (a positive case stays positive, a negative one negative; and
schemathesis re-checks which it is). Ids it does not swap keep exercising the
404 paths.
"""

from __future__ import annotations

import json
import re
import uuid
from datetime import UTC, datetime
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from openapi_spec_validator import validate

from livesale.core import validation
from livesale.core.errors import InvalidInput
from livesale.web import openapi
from tests.conftest import APRICOT_SESSION, Users
from tests.imports_samples import export_files, sample_lines

DOC = openapi.openapi_document()
HTTP_METHODS = {"get", "put", "post", "delete", "options", "head", "patch", "trace"}
# Enough to find real bugs, few enough that the whole module stays well under a minute.
MAX_EXAMPLES = 30


# --- the document ---------------------------------------------------------------------------------


def test_document_is_valid_openapi_3_1() -> None:
    validate(DOC)
    assert DOC["openapi"].startswith("3.1.")


def test_document_is_served(client: Any) -> None:
    r = client.get("/api/v1/openapi.json")
    assert r.status_code == 200 and r.mimetype == "application/json"
    assert r.json == json.loads(json.dumps(DOC))
    assert openapi.openapi_document() is DOC  # built once


def _described_path(rule: str) -> str:
    """``/sessions/<int:session_id>`` -> ``/sessions/{session_id}``."""
    return re.sub(r"<(?:[^<>:]+:)?([^<>:]+)>", r"{\1}", rule)


def test_every_route_is_described_and_nothing_else(app: Any) -> None:
    routes: dict[str, set[str]] = {}
    arguments: dict[str, set[str]] = {}
    for rule in app.url_map.iter_rules():
        if rule.rule.startswith(("/api/v1/", "/hooks/")) or rule.rule in ("/healthz", "/livez"):
            path = _described_path(rule.rule)
            routes.setdefault(path, set()).update(m.lower() for m in rule.methods - {"HEAD", "OPTIONS"})
            arguments[path] = set(rule.arguments)
    described = {path: {m for m in item if m in HTTP_METHODS} for path, item in DOC["paths"].items()}
    assert described == routes
    for path, item in DOC["paths"].items():
        for method in described[path]:
            params = [*item.get("parameters", []), *item[method].get("parameters", [])]
            in_path = {_resolve(p)["name"] for p in params if _resolve(p)["in"] == "path"}
            assert in_path == arguments[path] == set(re.findall(r"{(\w+)}", path)), (method, path)


def _resolve(node: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in node:
        target: Any = DOC
        for part in node["$ref"].removeprefix("#/").split("/"):
            target = target[part]
        node = target
    return node


def test_every_operation_documents_its_errors() -> None:
    for path, item in DOC["paths"].items():
        for method in HTTP_METHODS & set(item):
            op = item[method]
            codes = set(op["responses"])
            # Refused by gunicorn before the app (tests/live/test_refusals_server.py sends them).
            assert {"414", "431"} <= codes, (method, path)
            if op.get("security") == []:
                assert "401" not in codes, (method, path)
            else:
                assert "401" in codes, (method, path)
            if "session_id" in path:
                assert {"403", "404"} <= codes, (method, path)
            if "requestBody" in op:
                assert {"400", "413", "422"} <= codes, (method, path)


@pytest.mark.parametrize("session_id", [openapi.MAX_ID + 1, 2**63, 10**30])
def test_out_of_range_session_id_is_401_then_404(client: Any, users: Users, session_id: int) -> None:
    """Not a 500 (PostgreSQL's integer overflows, SQLite's past 2**63), nor a 405; auth first."""
    token = users.token("host")
    for path, item in DOC["paths"].items():
        if "{session_id}" not in path:
            continue
        url = path.replace("{session_id}", str(session_id)).replace("{order_id}", str(uuid.uuid4()))
        url = url.replace("{robot_id}", "1")
        for method in sorted(HTTP_METHODS & set(item)):
            r = client.open(url, method=method.upper(), json={})
            assert r.status_code == 401, (method, url, r.status_code)
            r = client.open(url, method=method.upper(), json={}, headers={"Authorization": f"Bearer {token}"})
            assert (r.status_code, r.json["error"]["code"]) == (404, "not_found"), (method, url)


# --- text patterns agree with validation.text --------------------------------------------------------


def _matches(pattern: str, value: str) -> bool:
    """``pattern`` as JSON Schema reads it (ECMA-262): ``$`` is the end, not "before a final newline"."""
    return re.search(pattern[:-1] + r"\Z" if pattern.endswith("$") else pattern, value) is not None


# White space and controls of every kind, and ordinary characters; nothing that
# NFC normalisation would lengthen or shorten, which JSON Schema cannot count.
_CHARS = st.sampled_from(
    ["a", "Z", "9", "区", "é", "🍑", " ", "\t", "\n", "\r", "\x0b", "\x1f", "\x00", "\x07", "\x7f", "\x85",
     "\x9f", "\xa0", "\u1680", "\u2003", "\u2028", "\u2029", "\u3000", "\ufeff", "\u200b"]
)


@pytest.mark.parametrize("required", [True, False])
@settings(max_examples=400, deadline=None)
@given(value=st.text(_CHARS, max_size=9))
def test_text_pattern_is_what_validation_accepts(required: bool, value: str) -> None:
    limit = 5
    pattern = openapi.text(limit, required=required)["pattern"]
    try:
        validation.text(value, "f", max_length=limit, required=required)
        accepted = True
    except InvalidInput:
        accepted = False
    assert _matches(pattern, value) == accepted, (value, pattern)


@settings(max_examples=300, deadline=None)
@given(value=st.text(st.sampled_from(["k", "~", " ", "\t", "\n", "\xa0", "\x85", "\x01", "\x7f", "é"]), max_size=8))
def test_idempotency_key_pattern_is_what_validation_accepts(value: str) -> None:
    schema = _resolve({"$ref": "#/components/parameters/IdempotencyKey"})["schema"]
    try:
        validation.idempotency_key(value)
        accepted = True
    except InvalidInput:
        accepted = False
    assert _matches(schema["pattern"], value) == accepted, repr(value)


@settings(max_examples=300, deadline=None)
@given(value=st.text(st.sampled_from(["A", "z", "0", ".", "_", "-", " ", "\n", "é", "/"]), max_size=66))
def test_sku_pattern_is_what_validation_accepts(value: str) -> None:
    assert _matches(openapi.SKU["pattern"], value) == (validation.SKU_RE.match(value) is not None), repr(value)


def test_timezone_schema_admits_every_zone_the_server_accepts() -> None:
    """A string, not an enum (generated clients make enum values identifiers: GMT0, GMT-0 and GMT+0
    would collide); the server checks the name. The schema must not refuse a name the server takes."""
    schema = DOC["components"]["schemas"]["SessionCreate"]["properties"]["timezone"]
    assert "enum" not in schema and schema["default"] == "Asia/Shanghai"
    assert {"Asia/Shanghai", "Asia/Urumqi"} <= set(schema["examples"])
    for zone in validation._timezones():
        assert validation.parse_timezone(zone) == zone
        assert _matches(schema["pattern"], zone) and len(zone) <= schema["maxLength"], zone
    for zone in schema["examples"]:
        validation.parse_timezone(zone)


# --- schemathesis ---------------------------------------------------------------------------------

CATALOGUE = [p["sku"] for p in APRICOT_SESSION["products"]]
#: Robots' addresses in these tests: a local receiver (never called here), allowed by the fixture's settings.
ROBOT_BASE = "http://127.0.0.1:9/robot"
ZONES = sorted(validation._timezones())
TIMEZONE_PATTERN = DOC["components"]["schemas"]["SessionCreate"]["properties"]["timezone"]["pattern"]


def _valid_id(value: Any) -> bool:
    return type(value) is int and 1 <= value <= openapi.MAX_ID


def _valid_uuid(value: Any) -> bool:
    if not isinstance(value, str):
        return False
    try:
        return str(uuid.UUID(value)) == value.lower()
    except ValueError:
        return False


def _valid_sku(value: Any) -> bool:
    return isinstance(value, str) and validation.SKU_RE.match(value) is not None


def _integer_literals(value: Any) -> Any:
    """Whole floats (``2.0``) as integers (``2``): JSON Schema calls both an integer, and so
    schemathesis sends both, but the API takes only integer literals (documented, and
    tested in tests/core/test_validation.py). Same value for JSON Schema: the case keeps its kind."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, list):
        return [_integer_literals(v) for v in value]
    if isinstance(value, dict):
        return {k: _integer_literals(v) for k, v in value.items()}
    return value


def _with_known_timezone(body: dict[str, Any]) -> dict[str, Any]:
    """A schema-valid time zone name that names no zone (``A0``) swapped for one that does."""
    zone = body.get("timezone")
    if isinstance(zone, str) and zone not in validation._timezones() and len(zone) <= 64 \
            and _matches(TIMEZONE_PATTERN, zone):
        body = {**body, "timezone": ZONES[sum(map(ord, zone)) % len(ZONES)]}
    return body


def _with_catalogue_sku(order: Any, i: int) -> Any:
    if isinstance(order, dict) and _valid_sku(order.get("sku")):
        order = {**order, "sku": CATALOGUE[i % len(CATALOGUE)]}
    return order


class World:
    """What exists in the test's database, all owned by the ``host`` user.

    Each state-changing operation has a session of its own, so the order in
    which schemathesis visits the operations does not matter: ``start`` meets
    a scheduled session, ``end`` a live one nothing else uses, ``results`` an
    ended one, and the order operations a live one with orders (one refunded).
    """

    def __init__(self, users: Users) -> None:
        self.api = users.api("host")
        self.token = users.token("host")
        self.live = self._create()
        self.to_start = self._create(title="预告")
        self.to_end = self._create(title="就要结束")
        self.ended = self._create(title="已结束")
        for sid in (self.live, self.to_end, self.ended):
            self._post(f"/api/v1/sessions/{sid}/start")
        self.orders = [
            self._post(f"/api/v1/sessions/{self.live}/orders", {"sku": sku, "quantity": q, "buyer_region": "上海"})[
                "order"
            ]["id"]
            for sku, q in (("APRICOT-5KG", 2), ("DRIED-1KG", 1), ("APRICOT-5KG", 5))
        ]
        self._post(f"/api/v1/sessions/{self.live}/orders/{self.orders[1]}/refund")
        for sid in (self.to_end, self.ended):
            self._post(f"/api/v1/sessions/{sid}/orders", {"orders": [{"sku": "DRIED-1KG", "quantity": 3}]})
        self._post(f"/api/v1/sessions/{self.ended}/end")
        # Robots to delete (the app allows the tests' local addresses: see the fixture).
        self.robots = [self._post(f"/api/v1/sessions/{self.live}/notifications",
                                  {"kind": "wecom", "url": f"{ROBOT_BASE}/existing-{i}"})["id"] for i in range(3)]

    def _create(self, **extra: Any) -> int:
        r = self.api.post("/api/v1/sessions", json={**APRICOT_SESSION, **extra})
        assert r.status_code == 201, r.json
        return r.json["id"]

    def _post(self, path: str, body: Any = None) -> Any:
        r = self.api.post(path, json=body)
        assert r.status_code in (200, 201), r.json
        return r.json

    def session_for(self, path: str, drawn: int) -> int | None:
        """The session an operation should meet, or ``None`` to keep the drawn id."""
        if drawn % 5 == 4:
            return None  # most likely no such session: the 404 path
        if path.endswith("/start"):
            return self.to_start
        if path.endswith("/end"):
            return self.to_end
        if path.endswith("/results"):
            return self.ended
        if path.endswith(("/{session_id}", "/totals")):
            return (self.live, self.ended, self.to_start)[drawn % 3]
        return self.live

    def map_case(self, case: schemathesis.Case) -> schemathesis.Case:
        """Swap valid generated references for valid ones that exist."""
        path = case.path
        drawn = case.path_parameters.get("session_id")
        if _valid_id(drawn):
            target = self.session_for(path, drawn)
            if target is not None:
                case.path_parameters = {**case.path_parameters, "session_id": target}
        drawn = case.path_parameters.get("order_id")
        if _valid_uuid(drawn) and int(drawn[-1], 16) % 5 != 4:  # else most likely no such order: a 404
            order_id = self.orders[int(drawn[0], 16) % len(self.orders)]
            case.path_parameters = {**case.path_parameters, "order_id": order_id}
        drawn = case.path_parameters.get("robot_id")
        if _valid_id(drawn) and drawn % 5 != 4:  # else most likely no such robot: a 404
            case.path_parameters = {**case.path_parameters, "robot_id": self.robots[drawn % len(self.robots)]}
        if _valid_uuid((case.query or {}).get("after")):
            case.query = {**case.query, "after": self.orders[0]}  # an unknown cursor is a 422
        if isinstance(case.body, (dict, list, float)):
            case.body = _integer_literals(case.body)
        body = case.body
        if case.method == "POST" and path.endswith("/orders") and isinstance(body, dict):
            # Only the session's SKUs are orderable; an external_id may not repeat in a batch.
            if isinstance(body.get("orders"), list):
                items = [_with_catalogue_sku(o, i) for i, o in enumerate(body["orders"])]
                for i, item in enumerate(items):
                    if isinstance(item, dict) and isinstance(item.get("external_id"), str):
                        items[i] = {**item, "external_id": f"{i}:{item['external_id'].strip()[:100]}"}
                case.body = {**body, "orders": items}
            else:
                case.body = _with_catalogue_sku(body, 0)
        elif case.method == "POST" and path.endswith("/imports") and isinstance(body, dict):
            # An export is more than its schema can say (a header, columns, amounts): the generated bytes are
            # swapped for a readable export of the platform (Taobao: its two reports), lines paid now.
            files, platform = body.get("file"), body.get("platform")
            if isinstance(files, list) and 1 <= len(files) <= 2 and platform in openapi.IMPORT_PLATFORMS \
                    and all(isinstance(f, (str, bytes)) for f in files):  # a file; else a negative case stays one
                lines = sample_lines(3, start=datetime.now(UTC), minutes=1, products=(("DRIED-1KG", "杏干", "", 5900),))
                # As text (UTF-8 CSV): a string is what JSON Schema's re-check of the case takes as valid.
                # Parts the form does not name are dropped too: schemathesis adds them to multipart bodies
                # despite additionalProperties false, and the app refuses them (422 naming the part).
                known = openapi.import_paths()[f"{openapi.API}/sessions/{{session_id}}/imports"]["post"][
                    "requestBody"]["content"]["multipart/form-data"]["schema"]["properties"]
                case.body = {**{k: v for k, v in body.items() if k in known},
                             "file": [content.decode() for _, content in export_files(platform, lines)]}
        elif case.method == "POST" and path.endswith("/notifications") and isinstance(body, dict) \
                and isinstance(body.get("url"), str) and 1 <= len(body["url"]) <= 2000:
            # No schema says which addresses are a robot's: a valid one is swapped for the tests' local receiver.
            case.body = {**body, "url": f"{ROBOT_BASE}/{sum(map(ord, body['url'])) % 1000}"}
        elif (case.method, path.rsplit("/", 1)[-1]) in (("POST", "sessions"), ("PATCH", "{session_id}")) \
                and isinstance(body, dict):
            # Only names of the tz database are time zones; no two products of a session may share a SKU.
            case.body = body = _with_known_timezone(body)
            products = body.get("products")
            if isinstance(products, list):
                case.body = {
                    **body,
                    "products": [
                        {**p, "sku": f"{i}-{p['sku'][:60]}"} if isinstance(p, dict) and _valid_sku(p.get("sku")) else p
                        for i, p in enumerate(products)
                    ],
                }
        return case


SCHEMA = schemathesis.openapi.from_dict(
    DOC,
    config=schemathesis.Config.from_dict(
        {
            # The token is sent with each call (it exists only once the test runs), so schemathesis
            # must not generate Authorization values of its own: a negative case made by dropping
            # the header would get it back. The ignored_auth check still sends every operation
            # without credentials and with invalid ones, and requires a 401.
            "generation": {
                "mode": "all",
                "max-examples": MAX_EXAMPLES,
                "database": "none",
                "with-security-parameters": False,
            },
            "phases": {"examples": {"enabled": True}, "coverage": {"enabled": True}, "fuzzing": {"enabled": True}},
            "checks": {"enabled": True},
        }
    ),
)


@pytest.fixture
def world(app: Any, users: Users) -> World:
    # The ignored_auth check sends each example without and with a bad token, far more than the
    # per-address limit of 401s allows (web/limits.py); that limit has tests of its own.
    app.config["RATE_LIMIT_BAD_TOKEN"] = "100000 per minute"
    app.config.update(WEBHOOK_ALLOW_HTTP=True, WEBHOOK_ALLOW_PRIVATE=True)  # robots at a local address
    return World(users)


@SCHEMA.parametrize()
@settings(
    deadline=None,
    # The app, its database and the world are built once per operation and shared by its examples.
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow, HealthCheck.filter_too_much],
)
def test_api_conforms_to_its_document(case: schemathesis.Case, app: Any, world: World) -> None:
    # Assigned, not edited in place: schemathesis then re-checks whether the case is still
    # positive or negative (it is: only valid values were swapped for valid values).
    world.map_case(case)
    # The schema was loaded before any app existed; checks that send probes of their own
    # (ignored_auth) take the app from the schema.
    case.operation.schema.app = app
    case.call_and_validate(app=app, headers={"Authorization": f"Bearer {world.token}"})
