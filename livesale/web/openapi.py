"""The OpenAPI 3.1 document of ``/api/v1``, ``/healthz`` and ``/livez``, served at ``/api/v1/openapi.json``.

A plain dict built by small helpers, once per process. It must stay true to
the code: ``tests/web/test_openapi.py`` checks that every route is described
and runs schemathesis against the app with every check enabled.

Where the validator's rules are more than JSON Schema can say (text is
NFC-normalised and trimmed before its length is counted; catalogue SKUs and
duplicate SKUs / external ids depend on the data), the schema says as much as
it can exactly and the descriptions say the rest.
"""

from __future__ import annotations

import copy
from typing import Any

from livesale import gunicorn_conf
from livesale.config import DEFAULTS
from livesale.core import audience, robots
from livesale.core import validation as v
from livesale.core.compare import HEAD_FIELDS

Schema = dict[str, Any]

API = "/api/v1"
MAX_BATCH = DEFAULTS["MAX_BATCH"]
MAX_BODY_BYTES = DEFAULTS["MAX_CONTENT_LENGTH"]
#: Session ids are ``integer`` columns, 32-bit on PostgreSQL; a larger id in a path is a 404.
MAX_ID = v.MAX_ID

# Characters ``str.strip()`` removes, and control characters, as regex class bodies.
_SPACE = r"\t\n\x0b\x0c\r\x1c-\x1f \x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000"
_CONTROL = r"\x00-\x1f\x7f-\x9f\u2028\u2029"
# Any day but the first and the last Python knows: their instants may fall outside years
# 1-9999 once in UTC (0001-01-01T00:00+08:00, 9999-12-31T23:00-08:00), which is a 422.
_DAY = (
    r"(?:(?:000[2-9]|00[1-9][0-9]|0[1-9][0-9]{2}|[1-8][0-9]{3}|9[0-8][0-9]{2}|99[0-8][0-9]|999[0-8])-[0-9]{2}-[0-9]{2}"
    r"|0001-(?:0[2-9]|1[0-2])-[0-9]{2}|0001-01-(?:0[2-9]|[12][0-9]|3[01])"
    r"|9999-(?:0[1-9]|1[01])-[0-9]{2}|9999-12-(?:[0-2][0-9]|30))"
)

INTEGER_LITERAL = "An integer literal (2, not 2.0 or 2e0)."
ERROR_CODES = (
    "bad_request (400: the body is not JSON), unauthorized, forbidden, not_found, method_not_allowed, "
    "too_large, uri_too_long (414), headers_too_large (431), invalid (422), session_ended, session_not_live, "
    "session_not_ended, session_live, price_locked, session_started, idempotency_conflict, no_platform_lines, "
    "unreadable_export (422), no_window (409), retry (409), unavailable (503), internal (500)"
)


# --- schema helpers -------------------------------------------------------------------------------


def ref(name: str) -> Schema:
    return {"$ref": f"#/components/schemas/{name}"}


def nullable(schema: Schema) -> Schema:
    """``schema`` or ``null``."""
    out = copy.deepcopy(schema)
    if "$ref" in out:
        return {"oneOf": [out, {"type": "null"}]}
    kind = out["type"]
    out["type"] = [*(kind if isinstance(kind, list) else [kind]), "null"]
    if "enum" in out:
        out["enum"] = [*out["enum"], None]
    return out


def integer(minimum: int | None = None, maximum: int | None = None, **extra: Any) -> Schema:
    schema: Schema = {"type": "integer", **extra}
    if minimum is not None:
        schema["minimum"] = minimum
    if maximum is not None:
        schema["maximum"] = maximum
    if maximum is not None and maximum > 2**31 - 1 or minimum is not None and minimum < -(2**31):
        schema.setdefault("format", "int64")
    return schema


def int_input(minimum: int, maximum: int, **extra: Any) -> Schema:
    """An integer in a request body: written as an integer literal (``2``; ``2.0`` and ``2e0`` are refused)."""
    schema = integer(minimum, maximum, **extra)
    schema["description"] = (extra.get("description", "") + " " + INTEGER_LITERAL).strip()
    return schema


def string(**extra: Any) -> Schema:
    return {"type": "string", **extra}


def text(max_length: int, *, required: bool, description: str = "") -> Schema:
    """A text field as ``validation.text`` accepts it.

    The value is NFC-normalised and trimmed, then it must not contain control
    characters (C0, DEL, C1, U+2028, U+2029) and must hold at most
    ``max_length`` characters (and at least one if required). The pattern says
    exactly that of the trimmed part, so leading and trailing white space
    (control or not) is allowed and not counted. What it cannot say: NFC can
    change the length (``e`` + U+0301 is one character; U+0958 is two).
    """
    visible = f"[^{_SPACE}{_CONTROL}]"
    core = f"{visible}([^{_CONTROL}]{{0,{max_length - 2}}}{visible})?"
    if not required:
        core = f"({core})?"
    rule = (
        f"Trimmed and NFC-normalised, then at most {max_length} characters"
        f"{', not blank' if required else ''}; no control characters."
    )
    return string(
        pattern=f"^[{_SPACE}]*{core}[{_SPACE}]*$",
        description=f"{description} {rule}".strip(),
    )


def obj(properties: dict[str, Schema], *, required: tuple[str, ...] = (), closed: bool = True, **extra: Any) -> Schema:
    schema: Schema = {"type": "object", "properties": properties}
    if required:
        schema["required"] = list(required)
    if closed:
        schema["additionalProperties"] = False
    schema.update(extra)
    return schema


def response_object(properties: dict[str, Schema], **extra: Any) -> Schema:
    """A response object: every property is always present; nothing else is."""
    return obj(properties, required=tuple(properties), **extra)


def json_content(schema: Schema, **extra: Any) -> dict[str, Any]:
    return {"application/json": {"schema": schema, **extra}}


def response(description: str, schema: Schema, *, headers: dict[str, Any] | None = None) -> dict[str, Any]:
    out: dict[str, Any] = {"description": description, "content": json_content(schema)}
    if headers:
        out["headers"] = headers
    return out


#: What gunicorn answers, before the app sees the request, to an over-long request line or too many or
#: too large header fields (``gunicorn_conf.LivesaleWorker.handle_error``, in the Error shape).
SERVER_REFUSALS = (414, 431)


def error_ref(status: int) -> dict[str, Any]:
    return {"$ref": f"#/components/responses/{ERROR_RESPONSES[status][0]}"}


def responses(ok: dict[int, dict[str, Any]], *errors: int) -> dict[str, Any]:
    """``ok`` and ``errors``, plus what any API operation may answer: 429 (rate limits) and 503 (outages).
    (``operation`` adds the server's refusals.)"""
    out: dict[str, Any] = {str(status): copy.deepcopy(body) for status, body in ok.items()}
    for status in sorted({*errors, 429, 503}):
        out[str(status)] = error_ref(status)
    return out


def path_param(name: str, schema: Schema, description: str) -> dict[str, Any]:
    return {"name": name, "in": "path", "required": True, "schema": schema, "description": description}


def query_param(name: str, schema: Schema, description: str) -> dict[str, Any]:
    return {"name": name, "in": "query", "required": False, "schema": schema, "description": description}


def operation(
    operation_id: str,
    summary: str,
    tag: str,
    resp: dict[str, Any],
    *,
    parameters: list[dict[str, Any]] | None = None,
    body: Schema | None = None,
    body_examples: dict[str, Any] | None = None,
    public: bool = False,
    description: str | None = None,
    links: dict[str, dict[str, Any]] | None = None,
) -> dict[str, Any]:
    op: dict[str, Any] = {"operationId": operation_id, "summary": summary, "tags": [tag]}
    if description:
        op["description"] = description
    if parameters:
        op["parameters"] = parameters
    if body is not None:
        content = json_content(body)
        if body_examples:
            content["application/json"]["examples"] = body_examples
        op["requestBody"] = {"required": True, "content": content}
    # Any request, to any path, may be refused by the server before the app reads it (ERROR_RESPONSES).
    op["responses"] = dict(sorted({**{str(s): error_ref(s) for s in SERVER_REFUSALS}, **resp}.items()))
    if public:
        op["security"] = []
    if links:
        for status, status_links in links.items():
            op["responses"][status]["links"] = status_links
    return op


# --- components -----------------------------------------------------------------------------------

SKU = string(
    pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$",
    description="1-64 letters, digits, '.', '_' or '-', starting with a letter or digit.",
    examples=["APRICOT-5KG"],
)
TIMESTAMP = string(format="date-time", description="UTC, RFC 3339 (e.g. 2026-06-01T12:00:00.123456Z).")
DATE_TIME_INPUT = string(
    format="date-time",
    maxLength=40,
    pattern=f"^{_DAY}T",
    description="An RFC 3339 date-time with a UTC offset (e.g. 2026-06-01T20:00:00+08:00); stored in UTC. "
    "Not on 0001-01-01 or 9999-12-31, whose instants may not exist in UTC (422).",
)
FEN = integer(format="int64", description="An amount of money in fen (1/100 yuan).")
COUNT = integer(0)
PERCENT = {"type": ["number", "null"], "description": "A percentage, one decimal; null when it has no base."}


#: Not an enum of the ~600 names: code generators turn enum values into identifiers, and
#: GMT0, GMT-0 and GMT+0 collide there. The server checks the name (422 naming the field).
TIMEZONE = string(
    maxLength=64,
    pattern=r"^[A-Za-z][A-Za-z0-9_+-]*(/[A-Za-z0-9_+-]+){0,2}$",
    description="An IANA time zone name, as in the tz database (checked by the server: an unknown name is "
    "a 422 naming the field). China is Asia/Shanghai (UTC+8); Xinjiang's local time is Asia/Urumqi (UTC+6).",
    examples=["Asia/Shanghai", "Asia/Urumqi", "UTC"],
)


def product_input() -> Schema:
    return obj(
        {
            "sku": SKU,
            "name": text(200, required=True),
            "unit": nullable(text(50, required=False, description="e.g. '2.5 kg box'; null is \"\".")),
            "unit_price_fen": int_input(0, v.MAX_UNIT_PRICE_FEN),
            "stock": nullable(int_input(0, v.MAX_STOCK)),
        },
        required=("sku", "name", "unit_price_fen"),
    )


def session_create() -> Schema:
    return obj(
        {
            "title": text(200, required=True),
            "village": nullable(text(100, required=False, description='null is "".')),
            "hosts": {"type": "array", "maxItems": v.MAX_HOSTS, "items": text(50, required=True)},
            "platform": nullable(text(50, required=False, description='e.g. "douyin"; null is "".')),
            "goal_fen": int_input(0, v.MAX_GOAL_FEN, default=0),
            "currency": {**ref("Currency"), "default": "CNY"},
            "timezone": {**TIMEZONE, "default": "Asia/Shanghai"},
            "products": {
                "type": "array",
                "minItems": 1,
                "maxItems": v.MAX_PRODUCTS,
                "items": ref("ProductInput"),
                "description": "No two products may share a SKU (422 naming products[i].sku).",
            },
            "scheduled_start": nullable(DATE_TIME_INPUT),
            "planned_duration_min": int_input(1, 24 * 60, default=120),
        },
        required=("title", "products"),
        description="A session to create. Unknown fields are refused (422).",
    )


def session_update() -> Schema:
    """An edit: the fields of a new session, each optional; an absent field stays as it is."""
    schema = session_create()
    schema.pop("required")
    for prop in schema["properties"].values():
        prop.pop("default", None)
    schema["properties"]["products"]["description"] = (
        "The whole new list of products, matched to the stored ones by SKU (a new SKU adds a product). "
        "No two may share a SKU (422 naming products[i].sku). A live session keeps all its products "
        "(409 session_live naming products) and the price of every product that has sold "
        "(409 price_locked naming products[i].unit_price_fen)."
    )
    schema["description"] = (
        "Changes to a session. Scheduled: anything. Live: anything but scheduled_start and timezone "
        "(409 session_live). Ended: nothing (409 session_ended). Unknown fields are refused (422)."
    )
    return schema


def order_input() -> Schema:
    return obj(
        {
            "sku": {**SKU, "description": "A product SKU of this session (else 422 naming the field)."},
            "quantity": int_input(1, v.MAX_QUANTITY),
            "unit_price_fen": nullable(
                int_input(0, v.MAX_UNIT_PRICE_FEN, description="Defaults (null or absent) to the product's price.")
            ),
            "buyer_region": nullable(text(v.TEXT_LIMITS["buyer_region"], required=False)),
            "channel": nullable(text(v.TEXT_LIMITS["channel"], required=False)),
            "external_id": nullable(
                text(
                    v.TEXT_LIMITS["external_id"],
                    required=False,
                    description="The platform's order id: a repeat with the same payload is the same order "
                    "(200), with another payload a conflict (409). Blank or null means none.",
                )
            ),
            "currency": {**ref("Currency"), "description": "If given, the session's currency."},
        },
        required=("sku", "quantity"),
    )


def order_batch() -> Schema:
    return obj(
        {
            "orders": {
                "type": "array",
                "minItems": 1,
                "maxItems": MAX_BATCH,
                "items": ref("OrderInput"),
                "description": f"At most {MAX_BATCH} orders (the MAX_BATCH setting); no external_id twice "
                "(422 naming orders[i].external_id). All or nothing.",
            }
        },
        required=("orders",),
    )


def product() -> Schema:
    return response_object(
        {
            "sku": string(),
            "name": string(),
            "unit": string(),
            "unit_price_fen": integer(0, v.MAX_UNIT_PRICE_FEN),
            "stock": nullable(integer(0, v.MAX_STOCK)),
        }
    )


def session() -> Schema:
    return response_object(
        {
            "id": integer(1, MAX_ID),
            "title": string(),
            "village": string(),
            "hosts": {"type": "array", "items": string()},
            "platform": string(),
            "status": ref("SessionStatus"),
            "goal_fen": integer(0, v.MAX_GOAL_FEN),
            "currency": ref("Currency"),
            "timezone": string(description="An IANA time zone name.", examples=["Asia/Shanghai"]),
            "products": {"type": "array", "items": ref("Product")},
            "widget_key": string(description="The key of the session's public widget."),
            "widget_enabled": {"type": "boolean"},
            "widget_origins": {"type": "array", "items": string(),
                               "description": "Origins allowed to embed the widget; empty: any."},
            "widget_milestone_fen": integer(0, format="int64",
                                            description="The widget celebrates each multiple of it (0: the goal only)."),
            "scheduled_start": nullable(TIMESTAMP),
            "planned_duration_min": integer(1, 24 * 60),
            "started_at": nullable(TIMESTAMP),
            "ended_at": nullable(TIMESTAMP),
        }
    )


def order() -> Schema:
    return response_object(
        {
            "id": string(format="uuid"),
            "session_id": integer(1, MAX_ID),
            "sku": string(),
            "quantity": integer(1, v.MAX_QUANTITY),
            "unit_price_fen": integer(0, v.MAX_UNIT_PRICE_FEN),
            "amount_fen": integer(0, v.MAX_QUANTITY * v.MAX_UNIT_PRICE_FEN),
            "buyer_region": string(),
            "channel": string(),
            "external_id": nullable(string()),
            "status": string(enum=["paid", "refunded"]),
            "created_at": TIMESTAMP,
            "refunded_at": nullable(TIMESTAMP),
        }
    )


def totals() -> Schema:
    return response_object(
        {
            "session_id": integer(1, MAX_ID),
            "status": ref("SessionStatus"),
            "version": integer(0, format="int64", description="Rises with every change; compare, don't count."),
            "amount_fen": FEN,
            "orders": integer(),
            "items": integer(format="int64"),
            "goal_fen": integer(0, v.MAX_GOAL_FEN),
            "currency": ref("Currency"),
            "by_product": {
                "type": "object",
                "description": "Every product of the session by SKU, zero if unsold.",
                "additionalProperties": response_object({"quantity": integer(format="int64"), "amount_fen": FEN}),
            },
            "by_region": {
                "type": "object",
                "description": 'By buyer region ("" when not given), highest amount first.',
                "additionalProperties": response_object({"orders": integer(), "amount_fen": FEN}),
            },
            "by_channel": {
                "type": "object",
                "description": "By the orders' channel, highest amount first: a platform's code (douyin, kuaishou, "
                'channels, taobao) in any case counts as that code; other text as sent; "" when not given.',
                "additionalProperties": response_object({"orders": integer(), "amount_fen": FEN}),
            },
            "updated_at": nullable(TIMESTAMP),
        },
        description="Paid orders only (refunds excluded).",
    )


def results() -> Schema:
    base = totals()
    props = dict(base["properties"])
    props.update(
        {
            "status": string(enum=["ended"]),
            "updated_at": TIMESTAMP,
            "timeline": {
                "type": "array",
                "description": "Per minute since the start, up to the last minute with sales.",
                "items": response_object({"minute": COUNT, "amount_fen": FEN, "orders": integer()}),
            },
            "peak_minute": nullable(COUNT),
            "duration_s": COUNT,
            "refunded_orders": COUNT,
            "refunded_fen": integer(0, format="int64"),
            "started_at": TIMESTAMP,
            "ended_at": TIMESTAMP,
        }
    )
    return response_object(props, description="The totals persisted when the session ended, and more.")


def comparison() -> Schema:
    fen_or_null = nullable(FEN)
    figures = response_object(
        {
            "amount_fen": FEN,
            "orders": COUNT,
            "items": integer(0, format="int64"),
            "avg_order_fen": FEN,
            "duration_s": COUNT,
            "sales_per_hour_fen": {**fen_or_null, "description": "null under a minute on air."},
            "goal_pct": PERCENT,
            "peak_minute": nullable(COUNT),
            "peak_minute_fen": FEN,
        }
    )
    diff = ref("Difference")
    head = response_object({k: session()["properties"][k] for k in HEAD_FIELDS})
    return response_object(
        {
            "sessions": {
                "type": "array",
                "description": "In the order asked; differences are against the first (null for the first).",
                "items": response_object(
                    {
                        "session": head,
                        "figures": figures,
                        "difference": {
                            "oneOf": [{"type": "null"}, response_object({k: diff for k in figures["properties"]})]
                        },
                    }
                ),
            },
            "cumulative": {
                "type": "array",
                "description": "Sales so far at the end of each minute since the session's start.",
                "items": response_object(
                    {"session_id": integer(1, MAX_ID), "amount_fen": {"type": "array", "items": FEN}}
                ),
            },
            "pace": {
                "type": "array",
                "description": "For each live session: sales at this minute against the best earlier "
                "ended session of the same village at the same minute.",
                "items": response_object(
                    {
                        "session_id": integer(1, MAX_ID),
                        "minute": COUNT,
                        "amount_fen": FEN,
                        "best_session_id": integer(1, MAX_ID),
                        "best_title": string(),
                        "best_amount_fen": FEN,
                        "difference": diff,
                    }
                ),
            },
            "products": {
                "type": "array",
                "items": response_object(
                    {
                        "sku": string(),
                        "name": string(),
                        "sessions": {
                            "type": "array",
                            "items": {"oneOf": [{"type": "null"},
                                                response_object({"quantity": integer(0, format="int64"),
                                                                 "amount_fen": FEN})]},
                        },
                    }
                ),
            },
            "regions": {
                "type": "array",
                "items": response_object(
                    {
                        "region": string(),
                        "sessions": {
                            "type": "array",
                            "items": {"oneOf": [{"type": "null"},
                                                response_object({"orders": COUNT, "amount_fen": FEN})]},
                        },
                    }
                ),
            },
            "channels": {
                "type": "array",
                "description": 'Sales by the orders\' channel (as in totals\' by_channel; "" when not given), '
                "highest total first; null where a session sold nothing on it.",
                "items": response_object(
                    {
                        "channel": string(),
                        "sessions": {
                            "type": "array",
                            "items": {"oneOf": [{"type": "null"},
                                                response_object({"orders": COUNT, "amount_fen": FEN})]},
                        },
                    }
                ),
            },
        },
        description="2 to 6 sessions side by side, from their persisted results (live ones: as of now).",
    )


def error() -> Schema:
    return response_object(
        {
            "error": obj(
                {
                    "code": string(description=f"Machine-readable: {ERROR_CODES}."),
                    "message": string(description="For people."),
                    "field": string(description="The offending field, e.g. orders[3].quantity or Idempotency-Key."),
                },
                required=("code", "message"),
            )
        }
    )


ERROR_RESPONSES: dict[int, tuple[str, str]] = {
    400: ("BadRequest", "The body is not JSON, or not sent as application/json (code bad_request, field body); "
          "or the server could not read the request at all (code bad_request, no field)."),
    401: ("Unauthorized", "No valid bearer token."),
    403: ("Forbidden", "The caller's role or ownership does not allow this."),
    404: ("NotFound", "No such session or order (also for an id that is not a valid number or UUID)."),
    409: ("Conflict", "The request contradicts the session's state, or reuses a key for another payload."),
    413: ("TooLarge", f"The body is larger than {MAX_BODY_BYTES} bytes (the MAX_CONTENT_LENGTH setting)."),
    414: ("UriTooLong", f"The request line (method, path and query) is longer than "
          f"{gunicorn_conf.limit_request_line} bytes (code uri_too_long): refused by the server before the app "
          "reads it, whatever the query says. Send fewer or shorter query parameters."),
    422: ("Invalid", "A field is wrong; field names it (code invalid)."),
    429: ("RateLimited", "Too many requests (code rate_limited); wait Retry-After seconds."),
    431: ("HeadersTooLarge", f"More than {gunicorn_conf.limit_request_fields} header fields, or one longer than "
          f"{gunicorn_conf.limit_request_field_size} bytes (code headers_too_large): refused by the server "
          "before the app reads the request."),
    503: ("Unavailable", "The database or the totals store (Redis) is unavailable (code unavailable); the request "
          "may not have completed: retry after Retry-After seconds, with the same Idempotency-Key for orders."),
}


def components() -> dict[str, Any]:
    error_responses = {}
    for status, (name, description) in ERROR_RESPONSES.items():
        body = response(description, ref("Error"))
        if status == 401:
            body["headers"] = {
                "WWW-Authenticate": {"required": True, "schema": string(), "description": 'Bearer realm="livesale"'}
            }
        if status in (429, 503):
            body["headers"] = {
                "Retry-After": {"required": True, "schema": string(), "description": "Seconds to wait before retrying."}
            }
        error_responses[name] = body
    return {
        "securitySchemes": {
            "bearer": {
                "type": "http",
                "scheme": "bearer",
                "description": "An API token (ls_...) from `livesale token issue NAME`.",
            }
        },
        "schemas": {
            "ProductInput": product_input(),
            "SessionCreate": session_create(),
            "SessionUpdate": session_update(),
            "OrderInput": order_input(),
            "OrderBatch": order_batch(),
            "Product": product(),
            "Session": session(),
            "SessionList": response_object(
                {
                    "sessions": {"type": "array", "items": ref("Session")},
                    "total": COUNT,
                    "limit": integer(1, 200),
                    "offset": integer(0, 10**9),
                }
            ),
            "Order": order(),
            "OrderList": response_object(
                {
                    "orders": {"type": "array", "items": ref("Order")},
                    "next": nullable(string(format="uuid", description="Pass as `after` for the next page.")),
                }
            ),
            "Totals": totals(),
            "Results": results(),
            "Comparison": comparison(),
            "OrderRecorded": response_object({"order": ref("Order"), "totals": ref("Totals")}),
            "OrdersRecorded": response_object(
                {"orders": {"type": "array", "items": ref("Order")}, "totals": ref("Totals")}
            ),
            # Shared enums are components: a generated client then has one type for each, not one per use.
            "SessionStatus": string(enum=list(v.SESSION_STATUSES)),
            "Currency": string(enum=list(v.CURRENCIES)),
            "Difference": response_object(
                {
                    "abs": {"type": ["integer", "null"]},
                    "pct": PERCENT,
                },
                description="A figure against the reference session's: absolute and in per cent.",
            ),
            "Health": response_object(
                {"db": string(enum=["ok", "down"]), "redis": string(enum=["ok", "down"])}
            ),
            "Error": error(),
        },
        "responses": error_responses,
        "parameters": {
            "SessionId": path_param("session_id", integer(1, MAX_ID), "The session's id."),
            "IdempotencyKey": {
                "name": "Idempotency-Key",
                "in": "header",
                "required": False,
                "description": "Makes a retry safe: the same key with the same body is the same order(s), "
                "answered 200; with another body, 409. In a batch, item i gets the key `<key>#i`. "
                "1-128 printable ASCII characters after trimming.",
                "schema": string(
                    pattern=r"^[\t\n\x0b\x0c\r\x1c-\x1f \x85\xa0]*[!-~]([ -~]{0,126}[!-~])?"
                    r"[\t\n\x0b\x0c\r\x1c-\x1f \x85\xa0]*$"
                ),
            },
        },
    }


# --- paths ----------------------------------------------------------------------------------------

SESSION_ID = {"$ref": "#/components/parameters/SessionId"}
SESSION_LINK = {"session_id": "$response.body#/id"}


def _session_links() -> dict[str, dict[str, Any]]:
    return {
        name: {"operationId": op, "parameters": SESSION_LINK}
        for name, op in (
            ("GetSession", "getSession"),
            ("StartSession", "startSession"),
            ("EndSession", "endSession"),
            ("RecordOrders", "recordOrders"),
            ("ListOrders", "listOrders"),
            ("GetTotals", "getTotals"),
            ("GetResults", "getResults"),
        )
    }


def paths() -> dict[str, Any]:
    session_ok = {200: response("The session.", ref("Session"))}
    recorded = {
        "oneOf": [ref("OrderRecorded"), ref("OrdersRecorded")],
        "description": '{"order", "totals"} for a single order; {"orders", "totals"} for a batch.',
    }
    date_bound = string(
        anyOf=[
            string(maxLength=0),
            string(format="date", pattern=f"^{_DAY}$"),
            DATE_TIME_INPUT,
        ]
    )
    return {
        "/healthz": {
            "get": operation(
                "health",
                "Whether the database and Redis answer",
                "meta",
                {
                    "200": response("Both answer.", ref("Health")),
                    "503": response("One does not.", ref("Health")),
                },
                public=True,
            )
        },
        "/livez": {
            "get": operation(
                "live",
                "Whether the process answers (no database or Redis round trip)",
                "meta",
                {"200": response("It does.", response_object({"status": string(enum=["ok"])}))},
                public=True,
            )
        },
        f"{API}/openapi.json": {
            "get": operation(
                "openapi",
                "This document",
                "meta",
                {"200": response("The OpenAPI 3.1 document.", {"type": "object"})},
                public=True,
            )
        },
        f"{API}/sessions": {
            "post": operation(
                "createSession",
                "Create a scheduled session with its products",
                "sessions",
                responses(
                    {
                        201: response(
                            "Created.",
                            ref("Session"),
                            headers={
                                "Location": {
                                    "required": True,
                                    "schema": string(),
                                    "description": "/api/v1/sessions/{id}",
                                }
                            },
                        )
                    },
                    400, 401, 403, 413, 422,
                ),
                body=ref("SessionCreate"),
                body_examples={
                    "apricots": {
                        "value": {
                            "title": "喀什杏子直播",
                            "village": "疏附县",
                            "hosts": ["阿依古丽"],
                            "platform": "douyin",
                            "goal_fen": 6_000_000,
                            "products": [
                                {"sku": "APRICOT-5KG", "name": "鲜杏 5斤", "unit": "2.5 kg box",
                                 "unit_price_fen": 6980, "stock": 100},
                                {"sku": "DRIED-1KG", "name": "杏干 1公斤", "unit": "1 kg bag", "unit_price_fen": 5900},
                            ],
                        }
                    }
                },
                links={"201": _session_links()},
            ),
            "get": operation(
                "listSessions",
                "Sessions the caller may see, newest first",
                "sessions",
                responses({200: response("A page of sessions.", ref("SessionList"))}, 401, 422),
                description="Hosts see their own sessions; admins and officials see all. "
                "An empty filter value is the same as none.",
                parameters=[
                    query_param("limit", integer(1, 200, default=50), "Page size."),
                    query_param("offset", integer(0, 10**9, default=0), "Sessions to skip."),
                    query_param("status", {"anyOf": [string(maxLength=0), ref("SessionStatus")]},
                                "Only sessions in this state."),
                    query_param("village", text(100, required=False), "Only sessions of this village (exact)."),
                    query_param("q", text(100, required=False), "Title or village contains this."),
                    query_param(
                        "from", date_bound,
                        "Sessions dated (started, else scheduled, else created) at or after this: a day "
                        "(YYYY-MM-DD, China time) or a date-time with offset.",
                    ),
                    query_param("to", date_bound, "... and before this (a day includes that whole day)."),
                ],
            ),
        },
        f"{API}/sessions/{{session_id}}": {
            "parameters": [SESSION_ID],
            "get": operation(
                "getSession", "A session", "sessions", responses(session_ok, 401, 403, 404)
            ),
            "patch": operation(
                "updateSession",
                "Change a session, its goal or its products",
                "sessions",
                responses(session_ok, 400, 401, 403, 404, 409, 413, 422),
                body=ref("SessionUpdate"),
                body_examples={"more stock and a new product": {"value": {
                    "goal_fen": 8_000_000,
                    "products": [
                        {"sku": "APRICOT-5KG", "name": "鲜杏 5斤", "unit": "2.5 kg box", "unit_price_fen": 6980,
                         "stock": 300},
                        {"sku": "DRIED-1KG", "name": "杏干 1公斤", "unit": "1 kg bag", "unit_price_fen": 5900},
                        {"sku": "JAM-500G", "name": "杏酱", "unit": "500 g jar", "unit_price_fen": 2500, "stock": 50},
                    ],
                }}},
                description="Only the session's owner (or an admin). Validated as a new session is; nothing "
                "is stored unless all of it is accepted. Orders after the change are priced from the new "
                "products; live screens get the new goal and products with their next update.",
            ),
            "delete": operation(
                "deleteSession",
                "Delete a scheduled session",
                "sessions",
                responses({204: {"description": "Deleted, with its products."}}, 401, 403, 404, 409),
                description="Only a scheduled session that has never been on air (409 session_started "
                "otherwise); only its owner or an admin.",
            ),
        },
        f"{API}/sessions/{{session_id}}/start": {
            "parameters": [SESSION_ID],
            "post": operation(
                "startSession",
                "Open the session for orders",
                "sessions",
                responses(session_ok, 401, 403, 404, 409, 503),
                description="Starting a live session changes nothing; an ended one is a 409 (session_ended).",
            ),
        },
        f"{API}/sessions/{{session_id}}/widget": {
            "parameters": [SESSION_ID],
            "patch": operation(
                "updateWidget",
                "Change the session's widget settings",
                "sessions",
                responses(session_ok, 400, 401, 403, 404, 413, 422),
                body=obj(
                    {
                        "enabled": {"type": "boolean"},
                        "origins": {
                            "type": "array", "maxItems": 20,
                            "items": string(pattern=r"^https?://[A-Za-z0-9.-]+(:[0-9]{1,5})?/?$"),
                            "description": "Origins allowed to embed the widget (frame-ancestors); empty: any.",
                        },
                        "milestone_fen": int_input(0, v.MAX_GOAL_FEN,
                                                   description="Celebrate each multiple of this (0: the goal only)."),
                    }
                ),
                description="Only the session's owner (or an admin). Turning the widget off lets its "
                "viewers go at once.",
            ),
        },
        f"{API}/sessions/{{session_id}}/widget/rotate": {
            "parameters": [SESSION_ID],
            "post": operation(
                "rotateWidgetKey",
                "Give the widget a new key",
                "sessions",
                responses(session_ok, 401, 403, 404),
                description="The old key stops working at once: its pages get 404 and its live viewers are let go.",
            ),
        },
        f"{API}/sessions/{{session_id}}/end": {
            "parameters": [SESSION_ID],
            "post": operation(
                "endSession",
                "Close the session and persist its results",
                "sessions",
                responses(session_ok, 401, 403, 404, 409),
                description="Ending an ended session returns it unchanged; a scheduled one is a 409 "
                "(session_not_live).",
            ),
        },
        f"{API}/sessions/{{session_id}}/orders": {
            "parameters": [SESSION_ID],
            "post": operation(
                "recordOrders",
                "Record one order, or a batch of them",
                "orders",
                responses(
                    {
                        201: response("At least one order is new.", recorded),
                        200: response("Every order repeated a known one (same key, same payload).", recorded),
                    },
                    400, 401, 403, 404, 409, 413, 422, 503,
                ),
                description="The session must be live (409 session_not_live / session_ended otherwise), except "
                "that an exact repeat of stored orders is answered 200 with them even after the end (a client "
                "that lost its answer just before the end learns its order was counted). "
                "Orders are validated before anything is stored: an invalid batch stores nothing.",
                parameters=[{"$ref": "#/components/parameters/IdempotencyKey"}],
                body={"oneOf": [ref("OrderInput"), ref("OrderBatch")]},
                body_examples={
                    "single": {"value": {"sku": "APRICOT-5KG", "quantity": 2, "buyer_region": "浙江杭州",
                                         "channel": "douyin", "external_id": "dy-1001"}},
                    "batch": {"value": {"orders": [{"sku": "APRICOT-5KG", "quantity": 1},
                                                   {"sku": "DRIED-1KG", "quantity": 3, "unit_price_fen": 5500}]}},
                },
            ),
            "get": operation(
                "listOrders",
                "The session's orders, oldest first",
                "orders",
                responses({200: response("A page of orders.", ref("OrderList"))}, 401, 403, 404, 422),
                parameters=[
                    query_param("limit", integer(1, 1000, default=100), "Page size."),
                    query_param(
                        "after",
                        string(anyOf=[string(maxLength=0), string(format="uuid")]),
                        "`next` of the previous page: an order id of this session (else 422).",
                    ),
                ],
            ),
        },
        f"{API}/sessions/{{session_id}}/orders/{{order_id}}/refund": {
            "parameters": [
                SESSION_ID,
                path_param("order_id", string(format="uuid"), "The order's id (anything else is a 404)."),
            ],
            "post": operation(
                "refundOrder",
                "Refund an order",
                "orders",
                responses(
                    {200: response("The refunded order and the totals.", ref("OrderRecorded"))},
                    401, 403, 404, 409, 503,
                ),
                description="The order leaves every total and keeps its row. Refunding it again changes "
                "nothing; after the session has ended, 409 (session_ended).",
            ),
        },
        f"{API}/sessions/{{session_id}}/totals": {
            "parameters": [SESSION_ID],
            "get": operation(
                "getTotals",
                "Current totals",
                "totals",
                responses({200: response("The totals.", ref("Totals"))}, 401, 403, 404, 503),
                description="Live: from Redis (rebuilt from SQL if lost). Ended: the persisted results. "
                "Scheduled: zeros.",
            ),
        },
        f"{API}/sessions/{{session_id}}/results": {
            "parameters": [SESSION_ID],
            "get": operation(
                "getResults",
                "The results persisted when the session ended",
                "totals",
                responses({200: response("The results.", ref("Results"))}, 401, 403, 404, 409),
                description="409 (session_not_ended) until the session has ended.",
            ),
        },
        f"{API}/compare": {
            "get": operation(
                "compareSessions",
                "Compare 2 to 6 sessions",
                "totals",
                responses({200: response("The comparison.", ref("Comparison"))}, 401, 403, 404, 422, 503),
                parameters=[
                    {
                        "name": "ids", "in": "query", "required": True,
                        "schema": string(pattern=r"^[1-9][0-9]{0,9}(,[1-9][0-9]{0,9}){1,5}$"),
                        "description": "2 to 6 session ids, comma-separated; the first is the reference. "
                        "An id that names no session is a 404.",
                    }
                ],
                description="Reads the results persisted at each session's end (live sessions: their "
                "totals now), never the orders. Every session must be readable by the caller.",
            ),
        },
    }


# --- signed pushes (issue 14 item 5) --------------------------------------------------------------

HOOK_ID = path_param("hook_id", string(maxLength=64), "The hook's id (as its create answer gave it).")
SIGNATURE_HEADER = "X-Livesale-Signature"


def _hook_secret() -> Schema:
    return response_object(
        {
            "hook_id": string(pattern=r"^[A-Za-z0-9_-]{16,64}$"),
            "secret": string(minLength=32, description="Shown only in this answer (Cache-Control: no-store)."),
            "url": string(description="Where the sender POSTs: /hooks/orders/{hook_id} on this server."),
        },
        description="A hook and its secret: keep the secret on the sender's server.",
    )


def hook_paths() -> dict[str, Any]:
    """The hooks' API and the push endpoint itself (signed, no token)."""
    recorded = {
        "oneOf": [ref("OrderRecorded"), ref("OrdersRecorded")],
        "description": 'As POST /api/v1/sessions/{id}/orders answers: {"order", "totals"} or {"orders", "totals"}.',
    }
    refused = response(
        "A missing or malformed signature (bad_signature), one that does not match the body and the hook's "
        "current secret (bad_signature), a t more than 300 s from the server's clock either way "
        "(stale_signature), or an unknown or deleted hook (unknown_hook). Nothing is stored.",
        ref("Error"),
        headers={"WWW-Authenticate": {"required": True, "schema": string(),
                                      "description": f'{SIGNATURE_HEADER} realm="livesale"'}},
    )
    push_ok = responses(
        {201: response("At least one order is new.", recorded),
         200: response("Every order repeated a known one (same external_id, same payload).", recorded)},
        400, 403, 409, 413, 422,
    )
    push_ok["401"] = refused
    listed = response_object(
        {"hooks": {"type": "array", "items": response_object({
            "hook_id": string(), "created_by": nullable(string()), "created_at": TIMESTAMP, "url": string()})}},
    )
    return {
        "/hooks/orders/{hook_id}": {
            "parameters": [HOOK_ID],
            "post": {
                **operation(
                    "pushOrders",
                    "Push one order or a batch, signed with the hook's secret",
                    "hooks",
                    push_ok,
                    body={"oneOf": [ref("OrderInput"), ref("OrderBatch")]},
                    body_examples={"single": {"value": {"sku": "APRICOT-5KG", "quantity": 2, "channel": "douyin",
                                                        "external_id": "dy-1001"}}},
                    description="For a shop's middleware or a platform relay: no token and no cookie. The header "
                    f"`{SIGNATURE_HEADER}: t=<unix seconds>,v1=<hex HMAC-SHA256(secret, \"<t>.<raw body>\")>` "
                    "signs the exact bytes sent (the body is checked before it is parsed; several v1 values may be "
                    "given). The orders are the API's, recorded as the session's host, and answered as "
                    "POST /api/v1/sessions/{id}/orders answers them. Every order must carry an external_id "
                    "(422 naming it otherwise): the same external_id counts once, so a retry, or a push replayed "
                    "within the 5 minutes, changes nothing. Rate-limited per hook; refused signatures per address.",
                ),
                "security": [{"hookSignature": []}],
            },
        },
        f"{API}/sessions/{{session_id}}/hooks": {
            "parameters": [SESSION_ID],
            "post": operation(
                "createHook",
                "Make a signed-push hook for the session",
                "hooks",
                responses({201: response("The hook and its secret, shown this once.", _hook_secret())},
                          401, 403, 404),
                description="Only the session's owner (or an admin); officials 403.",
            ),
            "get": operation(
                "listHooks",
                "The session's hooks (never their secrets)",
                "hooks",
                responses({200: response("Hooks that take pushes, oldest first.", listed)}, 401, 403, 404),
                description="Only the session's owner (or an admin); officials 403.",
            ),
        },
        f"{API}/sessions/{{session_id}}/hooks/{{hook_id}}": {
            "parameters": [SESSION_ID, HOOK_ID],
            "delete": operation(
                "deleteHook",
                "Delete a hook",
                "hooks",
                responses({204: {"description": "Deleted: pushes to it are refused from now on (401)."}},
                          401, 403, 404),
            ),
        },
        f"{API}/sessions/{{session_id}}/hooks/{{hook_id}}/rotate": {
            "parameters": [SESSION_ID, HOOK_ID],
            "post": operation(
                "rotateHook",
                "Give a hook a new secret",
                "hooks",
                responses({200: response("The hook and its new secret, shown this once.", _hook_secret())},
                          401, 403, 404),
                description="Same address; pushes signed with the old secret are refused at once.",
            ),
        },
    }


def add_signed_pushes(document: dict[str, Any]) -> dict[str, Any]:
    """``document`` with the hooks' paths and the push signature's security scheme."""
    document["paths"].update(hook_paths())
    document["components"]["securitySchemes"]["hookSignature"] = {
        "type": "apiKey",
        "in": "header",
        "name": SIGNATURE_HEADER,
        "description": "t=<unix seconds>,v1=<hex HMAC-SHA256(secret, \"<t>.<raw body>\")>, with the hook's secret; "
        "t within 300 s of the server's clock.",
    }
    document["tags"].append({"name": "hooks"})
    return document


# --- reconciliation and final figures (issue 14 items 2-3) ------------------------------------------


def _final() -> Schema:
    source = string(enum=["live", "platform"])
    return response_object(
        {
            "source": {**source, "description": "Whose figures stand: the live count or the platform's record."},
            "by": nullable(string(description="Who confirmed; null when nobody did (the default stands).")),
            "at": nullable(TIMESTAMP),
            "reason": nullable(string(description='Why, as given; "automatic" for a session without live orders '
                                      "whose platform record stands by itself.")),
            "proposal": nullable(response_object(
                {"source": source, "by": nullable(string()), "at": TIMESTAMP, "reason": string()},
                description="A host's proposal made since the last decision (it decides nothing).",
            )),
        },
        description="Which figures of the session stand. An ended session's results, lists, comparisons and "
        "exports use them.",
    )


def _reconciliation() -> Schema:
    side = response_object({"orders": COUNT, "items": integer(0, format="int64"), "amount_fen": FEN})
    signed = response_object({"orders": integer(), "items": integer(format="int64"), "amount_fen": FEN},
                             description="platform − live")
    totals = {**side["properties"], "refunded_orders": COUNT, "refunded_fen": integer(0, format="int64")}
    return response_object(
        {
            "session_id": integer(1, MAX_ID),
            "slot_minutes": integer(1),
            "slot_origin": nullable({**TIMESTAMP, "description": "Where slot 0 starts: the session's start "
                                     "(planned, if it has not started)."}),
            "live": response_object({**totals, "by_channel": {"type": "object", "additionalProperties": side,
                                                              "description": 'By the orders\' channel ("" when '
                                                              "not given)."}},
                                    description="The live count: paid orders (refunded apart)."),
            "platform": response_object({**totals, "by_platform": {"type": "object", "additionalProperties": side}},
                                        description="The platform's record: paid lines, each one order."),
            "difference": signed,
            "by_product": {"type": "array", "items": response_object(
                {"sku": string(), "name": string(), "live": side, "platform": side, "difference": signed})},
            "by_slot": {
                "type": "array",
                "description": "10-minute slots from slot_origin (offset_min from it; negative before it), from "
                "the first slot with sales (or 0) to the last; live orders by when they were recorded, "
                "platform lines by when they were paid.",
                "items": response_object({"start": nullable(TIMESTAMP), "offset_min": integer(),
                                          "live": side, "platform": side, "difference": signed}),
            },
            "only_live": {"type": "array", "items": string(), "maxItems": 1000,
                          "description": "external_ids of live orders that are no platform line's full id "
                          "(<platform>:<id>); the first 1000."},
            "only_platform": {"type": "array", "items": string(), "maxItems": 1000,
                              "description": "Platform line ids no live order carries as external_id; the first 1000."},
            "only_live_total": COUNT,
            "only_platform_total": COUNT,
            "matched": COUNT,
            "live_without_id": {**COUNT, "description": "Live orders without an external_id (cannot be matched)."},
            "final": ref("Final"),
        },
        description="The live count beside the platform's record. Refunded orders and lines are out of every "
        "figure; differences are platform − live.",
    )


def reconcile_paths() -> dict[str, Any]:
    decided = response_object({"proposed": {"type": "boolean"}, "action": string(enum=["confirm", "propose",
                                                                                       "revert"]),
                               "final": ref("Final")})
    decision_responses = {200: response("Confirmed or reverted: the figures that stand now.", decided),
                          202: response("A host's proposal, recorded; nothing changed.", decided)}
    body = {
        "oneOf": [
            obj({"source": string(enum=["platform", "live"]), "reason": text(500, required=True)},
                required=("source", "reason")),
            obj({"source": {"type": "null"}, "reason": text(500, required=False)}, required=("source",)),
        ],
        "description": 'A source with a reason, or {"source": null} to revert to the default figures.',
    }
    return {
        f"{API}/sessions/{{session_id}}/reconciliation": {
            "parameters": [SESSION_ID],
            "get": operation(
                "getReconciliation",
                "The live count beside the platform's record",
                "totals",
                responses({200: response("The reconciliation.", ref("Reconciliation"))}, 401, 403, 404),
                description="Anyone who may read the session.",
            ),
        },
        f"{API}/sessions/{{session_id}}/final": {
            "parameters": [SESSION_ID],
            "post": operation(
                "setFinalFigures",
                "Confirm which figures stand (officials, admins) or propose them (the session's host)",
                "totals",
                responses(decision_responses, 400, 401, 403, 404, 409, 413, 422),
                body=body,
                body_examples={"confirm": {"value": {"source": "platform", "reason": "次日平台导出已核对"}}},
                description="Officials and admins confirm (200); the session's host proposes (202, nothing "
                "changes); another host 403. 409: the session has not ended (session_not_ended), or the "
                "platform's record is empty (no_platform_lines). Every decision is recorded with who, when "
                "and why.",
            ),
            "delete": operation(
                "revertFinalFigures",
                "Revert to the default figures",
                "totals",
                responses({200: response("Reverted: the figures that stand now.", decided)}, 401, 403, 404, 409),
                description="Officials and admins. The default is the live count, or the platform's record "
                "for a session without live orders.",
            ),
        },
    }


def add_reconciliation(document: dict[str, Any]) -> dict[str, Any]:
    """``document`` with reconciliation and final figures: their paths, and ``final`` in results and comparisons."""
    document["paths"].update(reconcile_paths())
    schemas = document["components"]["schemas"]
    schemas["Final"] = _final()
    schemas["Reconciliation"] = _reconciliation()
    schemas["Results"]["properties"]["final"] = ref("Final")
    schemas["Results"]["required"].append("final")
    row = schemas["Comparison"]["properties"]["sessions"]["items"]
    row["properties"]["final"] = ref("Final")
    row["required"].append("final")
    return document


# --- audience figures (issue 15 item 3) ----------------------------------------------------------------

AUDIENCE_NAMES = {
    "viewers": "Views of the stream (场观).",
    "peak_viewers": "Peak concurrent viewers (峰值在线, PCU).",
    "new_followers": "New followers (新增粉丝).",
    "likes": "Likes (点赞).",
    "comments": "Comments (评论).",
}


def _audience() -> Schema:
    return response_object(
        {name: nullable(integer(0, audience.MAX_AUDIENCE, description=f"{text_} null: not given."))
         for name, text_ in AUDIENCE_NAMES.items()},
        description="The platform's audience figures of the session, as its host gave them.",
    )


def _audience_figures() -> Schema:
    money = nullable(FEN)
    return response_object(
        {
            "orders_per_viewer": {"type": ["number", "null"], "minimum": 0,
                                  "description": "Orders ÷ viewers (看播转化率), a ratio rounded half-even to 4 "
                                  "decimals (0.0217 is 2.17 %); null without viewers or with 0."},
            "sales_per_viewer_fen": {**money, "description": "Amount ÷ viewers (UV价值) in fen, rounded half-even; "
                                     "null without viewers or with 0."},
            "gpm_fen": {**money, "description": "Amount × 1000 ÷ viewers (GPM) in fen, rounded half-even; null "
                        "without viewers or with 0."},
            "average_order_fen": {**money, "description": "Amount ÷ orders (客单价) in fen, rounded half-even; "
                                  "null without orders."},
        },
        description="Conversion figures on the sales the session's report shows: paid orders only; live: as of "
        "now; ended: the figures that stand (the platform's record once confirmed as final).",
    )


def _audience_update() -> Schema:
    return obj(
        {name: nullable(int_input(0, audience.MAX_AUDIENCE, description=f"{text_} null clears it."))
         for name, text_ in AUDIENCE_NAMES.items()},
        description="Each field optional: those sent change, the others stay; null clears one. Unknown fields, "
        "booleans, fractions, strings and negatives are refused (422 naming the field); nothing is stored then.",
    )


def audience_paths() -> dict[str, Any]:
    return {
        f"{API}/sessions/{{session_id}}/audience": {
            "parameters": [SESSION_ID],
            "patch": operation(
                "updateAudience",
                "Give, correct or clear the session's audience figures",
                "sessions",
                responses({200: response("The stored audience figures and the conversion figures.",
                                         ref("SessionAudience"))},
                          400, 401, 403, 404, 409, 413, 422),
                body=ref("AudienceUpdate"),
                body_examples={"from the data screen": {"value": {"viewers": 56789, "peak_viewers": 3120,
                                                                  "new_followers": 845, "likes": 120345,
                                                                  "comments": 4321}}},
                description="Only the session's owner (or an admin); officials 403. While the session is live or "
                "after it has ended (a scheduled one: 409 session_not_live). One transaction: an invalid body "
                "stores nothing.",
            ),
        },
    }


def add_audience(document: dict[str, Any]) -> dict[str, Any]:
    """``document`` with the audience figures: their path, and ``audience`` / ``audience_figures`` in a
    session (GET), its results and each session of a comparison."""
    document["paths"].update(audience_paths())
    schemas = document["components"]["schemas"]
    schemas["Audience"] = _audience()
    schemas["AudienceFigures"] = _audience_figures()
    schemas["AudienceUpdate"] = _audience_update()
    both = {"audience": ref("Audience"), "audience_figures": ref("AudienceFigures")}
    schemas["SessionAudience"] = response_object(both)
    schemas["SessionDetail"] = response_object({**schemas["Session"]["properties"], **both},
                                               description="A session with its audience and conversion figures.")
    document["paths"][f"{API}/sessions/{{session_id}}"]["get"]["responses"]["200"] = response(
        "The session, with its audience and conversion figures.", ref("SessionDetail"))
    for target in (schemas["Results"], schemas["Comparison"]["properties"]["sessions"]["items"]):
        target["properties"].update(both)
        target["required"].extend(both)
    row = schemas["Comparison"]["properties"]["sessions"]["items"]
    row["properties"]["audience_difference"] = {
        "oneOf": [{"type": "null"}, response_object({k: ref("Difference") for k in (
            *audience.AUDIENCE_FIELDS, *audience.FIGURE_FIELDS)})],
        "description": "Against the first session (null for the first); orders_per_viewer has none "
        "(abs and pct null).",
    }
    row["required"].append("audience_difference")
    return document


# --- imports of the platforms' order exports (issue 14 item 1) ----------------------------------------

IMPORT_PLATFORMS = ("douyin", "kuaishou", "channels", "taobao", "generic")
IMPORT_MAX_BYTES = 64 * 1024 * 1024


def import_report() -> Schema:
    return obj(
        {
            "dry_run": {"type": "boolean"},
            "platform": string(enum=list(IMPORT_PLATFORMS)),
            "rows": COUNT,
            "added": integer(0, description="New paid lines stored."),
            "repeated": integer(0, description="Lines imported before (by <platform>:<line id>): nothing changed."),
            "refunded": integer(0, description="Lines stored as paid and now refunded or cancelled (marked refunded), "
                                "and new lines that were refunded before livesale saw them (kept out of amounts)."),
            "amount_added_fen": integer(0, format="int64", description="The added lines' amount in fen."),
            "skipped": {"type": "array", "description": "Rows not imported, by row number (the header is row 1).",
                        "items": response_object({"row": integer(1), "reason": string(enum=[
                            "not_paid", "outside_window", "unmatched_product", "duplicate_in_file"])})},
            "unmatched_products": {
                "type": "array",
                "description": "Products neither a session SKU (by merchant code) nor mapped by name: name (with the "
                "spec in brackets), merchant code (\"\" when none) and rows. Never guessed; not imported.",
                "items": response_object({"name": string(), "code": string(), "rows": {"type": "array",
                                                                                     "items": integer(1)}}),
            },
            "import_id": integer(1, description="The import's record (a real import only)."),
        },
        required=("dry_run", "platform", "rows", "added", "repeated", "refunded", "amount_added_fen", "skipped",
                  "unmatched_products"),
    )


def import_paths() -> dict[str, Any]:
    body = obj(
        {
            "file": {"type": "array", "minItems": 1, "maxItems": 2,
                     "items": string(contentMediaType="application/octet-stream"),
                     "description": "The export, CSV (UTF-8, UTF-8 with BOM, GB18030/GBK) or XLSX; repeat the field "
                     "for Taobao's order report and item report."},
            "platform": string(enum=list(IMPORT_PLATFORMS), description="Whose export (generic: livesale's own "
                               "columns external_id, sku, name, quantity, amount_yuan, paid_at, province, city, "
                               "status)."),
            "dry_run": string(enum=["0", "1", "true", "false"], default="0",
                              description="1: report what the import would do, store nothing."),
            "window_minutes": string(pattern=r"^(0|[1-9][0-9]{0,2}|1[0-3][0-9]{2}|14[0-3][0-9]|1440)$",
                                     default="10", description="0-1440: lines paid this long before the start or "
                                     "after the end still count."),
            "csrf_token": string(description="Ignored (a page's form may send it; cookie calls need the "
                                 "X-CSRFToken header)."),
        },
        required=("file", "platform"),
        description="Other fields are refused (422 naming the field).",
    )
    return {
        f"{API}/sessions/{{session_id}}/imports": {
            "parameters": [SESSION_ID],
            "post": {
                **operation(
                    "importExport",
                    "Import a platform's order export",
                    "imports",
                    responses(
                        {201: response("Imported (and recorded).", import_report()),
                         200: response("A dry run: what an import would do; nothing stored.", import_report())},
                        400, 401, 403, 404, 409, 413, 422,
                    ),
                    description="Only the session's owner (or an admin); officials 403. Each line is matched to a "
                    "session product by its merchant code, else by a name mapping saved on the session page; paid "
                    "between the session's start - window_minutes and its end + window_minutes (planned times for a "
                    "session that has not run; 409 no_window if it has none). The same file again, or a later export "
                    "that overlaps, adds nothing; a line now refunded is marked refunded. A file that cannot be read "
                    "is a 422 (unreadable_export) naming the row and column; it, and a dry run, store nothing. "
                    f"Platform lines never move the live totals. Up to {IMPORT_MAX_BYTES} bytes.",
                ),
                "requestBody": {"required": True, "content": {"multipart/form-data": {"schema": body}}},
            },
        },
    }


# --- group-chat robots (issue 15 item 4) ---------------------------------------------------------------

ROBOT_ID = path_param("robot_id", integer(1, MAX_ID), "The robot's id (as its list gives it).")
ROBOT_CODES = (
    "422 codes: kind_missing, kind_unknown, url_missing, url_too_long, url_invalid, url_not_https, url_credentials, "
    "url_private, url_unresolvable, url_shape (not the kind's webhook address), url_other_kind (another kind's), "
    "url_signed (a DingTalk address with timestamp and sign), secret_not_for_wecom, secret_invalid, scope_unknown, "
    "scope_missing, lang_unknown, lang_missing, no_village; 403 village_admin_only; 409 robot_exists, "
    "too_many_robots."
)


def _robot_inputs() -> dict[str, Schema]:
    common: dict[str, Schema] = {
        "url": string(minLength=1, maxLength=2000, description="The group robot's webhook address, as its settings "
                      "show it (spaces around it are dropped): " + "; ".join(robots.EXAMPLES.values()) + ". "
                      "https only and never a private address, unless the server allows them "
                      "(LIVESALE_WEBHOOK_ALLOW_HTTP, LIVESALE_WEBHOOK_ALLOW_PRIVATE: a local receiver in tests); "
                      "such an address is taken without the kind's shape."),
        "scope": string(enum=list(robots.SCOPES), default="session", description="session: told about this session; "
                        "village: a default of the session's village, told about every session there (admins only)."),
        "lang": string(enum=list(robots.LANGS), default="zh", description="The language of its messages."),
    }
    secret = string(pattern=f"^[\\x21-\\x7e]{{1,{robots.SECRET_MAX}}}$",
                     description="The signing secret (加签), if the robot has signing on; kept, never shown again.")
    return {
        "WeComRobotInput": obj({"kind": string(enum=["wecom"]), **common,
                                "secret": {"type": "null", "description": "WeCom robots have no secret."}},
                               required=("kind", "url"), description="A WeCom (企业微信) group robot."),
        "SignedRobotInput": obj({"kind": string(enum=["dingtalk", "feishu"]), **common, "secret": nullable(secret)},
                                required=("kind", "url"), description="A DingTalk or Feishu/Lark group robot, with "
                                "its signing secret or without one."),
    }


def _robot() -> Schema:
    return response_object(
        {
            "id": integer(1, MAX_ID),
            "kind": string(enum=list(robots.KINDS)),
            "url": string(description="Masked: each key shown as its first and last two characters "
                          "(…?access_token=ab…f9)."),
            "has_secret": {"type": "boolean", "description": "Whether it signs its messages (the secret is never "
                           "shown)."},
            "scope": string(enum=list(robots.SCOPES)),
            "village": nullable(string(description="The village a default is for; null for a session's robot.")),
            "lang": string(enum=list(robots.LANGS)),
            "created_by": nullable(string()),
            "created_at": TIMESTAMP,
        },
        description="A robot as anyone who reads the session sees it: masked, without its secret.",
    )


def _delivery() -> Schema:
    return response_object(
        {
            "id": integer(1),
            "event": response_object({"key": string(description="started, goal, milestone:<fen> or ended."),
                                       "created_at": TIMESTAMP}),
            "robot": response_object({"id": integer(1), "kind": string(enum=list(robots.KINDS)),
                                      "url": string(description="Masked."), "scope": string(enum=list(robots.SCOPES)),
                                      "deleted": {"type": "boolean"}}),
            "status": string(enum=list(robots.DELIVERY_STATUSES), description="pending (not tried yet), retrying, "
                             "sent (the receiver took it), failed (given up, or the robot was deleted)."),
            "attempts": integer(0),
            "last_attempt_at": nullable(TIMESTAMP),
            "next_attempt_at": nullable({**TIMESTAMP, "description": "While pending or retrying."}),
            "sent_at": nullable(TIMESTAMP),
            "response_status": nullable(integer(description="The receiver's HTTP status.")),
            "response_body": string(description="The start of the receiver's answer (500 characters at most)."),
            "error": string(description="Why nothing was delivered, when that is known (timeouts, refused "
                            "connections, a deleted robot)."),
        },
        description="One event told (or being told) to one robot.",
    )


def robot_paths() -> dict[str, Any]:
    listed = response_object({"robots": {"type": "array", "items": ref("Robot")}})
    log = response_object({"deliveries": {"type": "array", "items": ref("RobotDelivery")}})
    limit = query_param("limit", integer(1, robots.MAX_LOG, default=100), "How many deliveries, newest first.")
    return {
        f"{API}/sessions/{{session_id}}/notifications": {
            "parameters": [SESSION_ID],
            "post": operation(
                "addRobot",
                "Tell a group chat about the session: add a WeCom, DingTalk or Feishu robot",
                "notifications",
                responses({201: response("The robot, as listed.", ref("Robot"))}, 400, 401, 403, 404, 409, 413, 422),
                body={"oneOf": [ref("WeComRobotInput"), ref("SignedRobotInput")]},
                body_examples={"dingtalk": {"value": {"kind": "dingtalk", "url": "https://oapi.dingtalk.com/robot/"
                                                      "send?access_token=…", "secret": "SEC…", "lang": "zh"}}},
                description="The session's owner (or an admin); officials 403. A village default (scope village) "
                "is told about every session of the village, other hosts' too: admins only (403). The robot then "
                "gets a message when the session starts, passes its goal and each milestone, and ends. The address "
                "is checked when added (its kind's shape, https, a public address after DNS), stored as given and "
                f"only ever shown masked. Refusals name their field and store nothing. {ROBOT_CODES}",
            ),
            "get": operation(
                "listRobots",
                "The robots told about the session (masked)",
                "notifications",
                responses({200: response("The session's own robots, then its village's defaults.", listed)},
                          401, 403, 404),
                description="Whoever may read the session (officials too): addresses masked, secrets never shown.",
            ),
        },
        f"{API}/sessions/{{session_id}}/notifications/{{robot_id}}": {
            "parameters": [SESSION_ID, ROBOT_ID],
            "delete": operation(
                "deleteRobot",
                "Stop telling a robot",
                "notifications",
                responses({204: {"description": "Deleted: it is told nothing more; what it was not yet sent is "
                                 "marked failed. Its deliveries stay in the log."}}, 401, 403, 404),
                description="The session's owner (or an admin); a village default: admins only.",
            ),
        },
        f"{API}/sessions/{{session_id}}/notifications/deliveries": {
            "parameters": [SESSION_ID],
            "get": operation(
                "listRobotDeliveries",
                "The delivery log: what each robot was told and how it answered",
                "notifications",
                responses({200: response("Newest event first, then by robot.", log)}, 401, 403, 404, 422),
                parameters=[limit],
                description="Whoever may read the session (officials too).",
            ),
        },
    }


def add_robots(document: dict[str, Any]) -> dict[str, Any]:
    """``document`` with the group-chat robots' paths and schemas."""
    document["paths"].update(robot_paths())
    schemas = document["components"]["schemas"]
    schemas.update(_robot_inputs())
    schemas["Robot"] = _robot()
    schemas["RobotDelivery"] = _delivery()
    document["tags"].append({"name": "notifications"})
    return document


def build_document() -> dict[str, Any]:
    return add_robots(add_audience(add_reconciliation(add_signed_pushes({
        "openapi": "3.1.0",
        "info": {
            "title": "livesale",
            "version": "1",
            "description": "Live sales tracking for livestream selling sessions. Money is integer fen; "
            "times are UTC. Every error is JSON: "
            '{"error": {"code", "message", "field"?}}.',
        },
        "servers": [{"url": "/"}],
        "security": [{"bearer": []}],
        "tags": [
            {"name": "sessions"},
            {"name": "orders"},
            {"name": "totals"},
            {"name": "meta"},
            {"name": "imports"},
        ],
        "paths": {**paths(), **import_paths()},
        "components": components(),
    }))))


_DOCUMENT: dict[str, Any] | None = None


def openapi_document() -> dict[str, Any]:
    """The document, built on first use and then shared (treat it as read-only)."""
    global _DOCUMENT
    if _DOCUMENT is None:
        _DOCUMENT = build_document()
    return _DOCUMENT
