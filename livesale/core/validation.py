"""Validation of incoming payloads. Pure functions over decoded JSON.

Every error is an ``InvalidInput`` naming the offending field with a JSON-ish
path (``orders[3].quantity``). Validation happens before anything is written,
so an invalid request stores nothing.
"""

from __future__ import annotations

import dataclasses
import hashlib
import re
import unicodedata
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, TypeVar
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

from .errors import InvalidInput

MAX_QUANTITY = 10_000
MAX_UNIT_PRICE_FEN = 100_000_000
MAX_GOAL_FEN = 1_000_000_000_000
MAX_STOCK = 1_000_000_000
MAX_PRODUCTS = 200
MAX_HOSTS = 20
CURRENCIES = ("CNY",)
SESSION_STATUSES = ("scheduled", "live", "ended")

# ``\Z``, not ``$``: ``$`` also matches before a trailing newline ("SKU\n").
SKU_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}\Z")
# Control characters (C0, DEL, C1) have no place in names or regions; nor
# have line/paragraph separators, nor lone surrogates (JSON can spell them as
# "\ud800", but they are not text: no database or JSON encoder accepts them).
_CONTROL_RE = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029\ud800-\udfff]")

ORDER_FIELDS = frozenset(
    {"sku", "quantity", "unit_price_fen", "buyer_region", "channel", "external_id", "currency"}
)
TEXT_LIMITS = {"buyer_region": 64, "channel": 32, "external_id": 128}
IDEMPOTENCY_KEY_MAX = 128
#: Ids are 32-bit integers on PostgreSQL: anything larger names nothing.
MAX_ID = 2**31 - 1


def _path(prefix: str, name: str) -> str:
    return f"{prefix}.{name}" if prefix else name


def _printable_key(key: str) -> str:
    """A client-sent key made safe to echo back in an error.

    Lone surrogates (which no JSON encoder accepts) are escaped, and the empty
    key is shown as ``""`` so the error still names a field.
    """
    return key.encode("utf-8", "backslashreplace").decode("utf-8") if key else '""'


def require_object(value: Any, field: str) -> Mapping[str, Any]:
    if not isinstance(value, dict):
        raise InvalidInput("must be a JSON object", field=field or "body")
    return value


def reject_unknown(data: Mapping[str, Any], allowed: frozenset[str], prefix: str = "") -> None:
    for key in data:
        if key not in allowed:
            raise InvalidInput("unknown field", field=_path(prefix, _printable_key(str(key))))


def integer(value: Any, field: str, *, minimum: int, maximum: int) -> int:
    """An exact JSON integer in range. Floats, strings and booleans are refused."""
    # bool is a subclass of int in Python; JSON true is not a quantity.
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidInput(f"must be an integer (got {_json_type(value)})", field=field)
    if value < minimum or value > maximum:
        raise InvalidInput(f"must be between {minimum} and {maximum}", field=field)
    return value


def text(value: Any, field: str, *, max_length: int, required: bool = False) -> str:
    """A trimmed, NFC-normalised string without control characters."""
    if value is None and not required:
        return ""
    if not isinstance(value, str):
        raise InvalidInput(f"must be a string (got {_json_type(value)})", field=field)
    if not value.isascii():  # ASCII is already NFC
        value = unicodedata.normalize("NFC", value)
    value = value.strip()
    if required and not value:
        raise InvalidInput("must not be empty", field=field)
    if len(value) > max_length:
        raise InvalidInput(f"must be at most {max_length} characters", field=field)
    if _CONTROL_RE.search(value):
        raise InvalidInput("must not contain control characters", field=field)
    return value


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, (int, float)):
        return "number with a fraction" if isinstance(value, float) else "integer"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    return "object"


# --- orders -----------------------------------------------------------------


@dataclasses.dataclass(frozen=True, slots=True)
class OrderInput:
    """One validated order, not yet checked against the session's catalogue."""

    sku: str
    quantity: int
    unit_price_fen: int | None
    buyer_region: str
    channel: str
    external_id: str | None
    field: str  # where it came from, for errors found later ("orders[2]")

    def payload_hash(self, unit_price_fen: int) -> str:
        """A digest of what the order says, to tell a retry from a different order."""
        parts = (
            self.sku,
            str(self.quantity),
            str(unit_price_fen),
            self.buyer_region,
            self.channel,
            self.external_id or "",
        )
        return hashlib.sha256("\x1f".join(parts).encode()).hexdigest()[:32]


def parse_order(data: Any, *, prefix: str = "", currency: str = "CNY") -> OrderInput:
    """One order. Field names in errors get ``prefix`` (``orders[3].quantity``).

    This runs a thousand times per batch, so the common case is kept to
    plain type checks and the error path builds the field path.
    """
    try:
        return _parse_order(data, currency, prefix)
    except InvalidInput as exc:
        if prefix:
            exc.field = _path(prefix, exc.field) if exc.field != "body" else prefix
        raise


def _parse_order(data: Any, currency: str, prefix: str) -> OrderInput:
    if type(data) is not dict:
        raise InvalidInput("must be a JSON object", field="body")
    for key in data:
        if key not in ORDER_FIELDS:
            raise InvalidInput("unknown field", field=_printable_key(str(key)))
    sku = data.get("sku")
    if sku is None and "sku" not in data:
        raise InvalidInput("is required", field="sku")
    quantity = data.get("quantity")
    if quantity is None and "quantity" not in data:
        raise InvalidInput("is required", field="quantity")
    if type(sku) is not str or not SKU_RE.match(sku):
        raise InvalidInput("must be a product SKU of this session", field="sku")
    # type() is not isinstance(): JSON true must not pass as the integer 1.
    if type(quantity) is not int or not 1 <= quantity <= MAX_QUANTITY:
        integer(quantity, "quantity", minimum=1, maximum=MAX_QUANTITY)
    price = data.get("unit_price_fen")
    if price is not None and (type(price) is not int or not 0 <= price <= MAX_UNIT_PRICE_FEN):
        integer(price, "unit_price_fen", minimum=0, maximum=MAX_UNIT_PRICE_FEN)
    if "currency" in data and data["currency"] != currency:
        raise InvalidInput(f"must be {currency}, the session's currency", field="currency")
    region = data.get("buyer_region")
    channel = data.get("channel")
    external_id = data.get("external_id")
    return OrderInput(
        sku=sku,
        quantity=quantity,
        unit_price_fen=price,
        buyer_region="" if region is None else text(region, "buyer_region", max_length=TEXT_LIMITS["buyer_region"]),
        channel="" if channel is None else text(channel, "channel", max_length=TEXT_LIMITS["channel"]),
        external_id=None
        if external_id is None
        else (text(external_id, "external_id", max_length=TEXT_LIMITS["external_id"]) or None),
        field=prefix,
    )


def parse_order_request(body: Any, *, max_batch: int, currency: str = "CNY") -> tuple[list[OrderInput], bool]:
    """Parse a single order or a batch ``{"orders": [...]}``; returns (orders, is_batch)."""
    body = require_object(body, "")
    if "orders" not in body:
        return [parse_order(body, currency=currency)], False
    reject_unknown(body, frozenset({"orders"}))
    items = body["orders"]
    if not isinstance(items, list):
        raise InvalidInput("must be an array of orders", field="orders")
    if not items:
        raise InvalidInput("must hold at least one order", field="orders")
    if len(items) > max_batch:
        raise InvalidInput(f"must hold at most {max_batch} orders", field="orders")
    orders = [parse_order(item, prefix=f"orders[{i}]", currency=currency) for i, item in enumerate(items)]
    seen: set[str] = set()
    for order in orders:
        if order.external_id is None:
            continue
        if order.external_id in seen:
            raise InvalidInput("appears twice in this batch", field=f"{order.field}.external_id")
        seen.add(order.external_id)
    return orders, True


def idempotency_key(value: str | None) -> str | None:
    if value is None:
        return None
    value = value.strip()
    if not value or len(value) > IDEMPOTENCY_KEY_MAX or not value.isascii() or not value.isprintable():
        raise InvalidInput(
            f"must be 1 to {IDEMPOTENCY_KEY_MAX} printable ASCII characters", field="Idempotency-Key"
        )
    return value


# --- sessions ---------------------------------------------------------------


SESSION_FIELDS = frozenset(
    {
        "title", "village", "hosts", "platform", "goal_fen", "currency", "timezone",
        "products", "scheduled_start", "planned_duration_min",
    }
)
PRODUCT_FIELDS = frozenset({"sku", "name", "unit", "unit_price_fen", "stock"})


@dataclasses.dataclass(frozen=True, slots=True)
class ProductInput:
    sku: str
    name: str
    unit: str
    unit_price_fen: int
    stock: int | None


@dataclasses.dataclass(frozen=True, slots=True)
class SessionInput:
    title: str
    village: str
    hosts: list[str]
    platform: str
    goal_fen: int
    currency: str
    timezone: str
    products: list[ProductInput]
    scheduled_start: datetime | None
    planned_duration_min: int


def parse_timezone(value: Any, field: str = "timezone") -> str:
    if not isinstance(value, str) or value not in _timezones():
        raise InvalidInput("must be an IANA time zone such as Asia/Shanghai", field=field)
    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError) as exc:  # pragma: no cover - tzdata mismatch
        raise InvalidInput("unknown time zone", field=field) from exc
    return value


_TZ_CACHE: set[str] = set()


def _timezones() -> set[str]:
    if not _TZ_CACHE:
        _TZ_CACHE.update(available_timezones())
    return _TZ_CACHE


def parse_datetime(value: Any, field: str) -> datetime:
    """An ISO 8601 timestamp with an offset (``2026-06-01T20:00:00+08:00``)."""
    if not isinstance(value, str) or len(value) > 40:
        raise InvalidInput("must be an ISO 8601 date-time with a UTC offset", field=field)
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError as exc:
        raise InvalidInput("must be an ISO 8601 date-time with a UTC offset", field=field) from exc
    if parsed.tzinfo is None:
        raise InvalidInput("must include a UTC offset (e.g. +08:00)", field=field)
    try:
        return parsed.astimezone(UTC)
    except OverflowError:  # e.g. 0001-01-01T00:00:00+01:00 is before year 1 in UTC
        raise InvalidInput("is out of range", field=field) from None


class InvalidFields(InvalidInput):
    """Several fields are wrong (forms show each next to its field); it reads as the first of them."""

    def __init__(self, errors: list[InvalidInput]):
        super().__init__(errors[0].message, field=errors[0].field, code=errors[0].code)
        self.errors = errors


T = TypeVar("T")


class _Checks:
    """Runs field checks: raises the first error, or (``collect``) gathers them all for a form."""

    def __init__(self, collect: bool):
        self.collect = collect
        self.errors: list[InvalidInput] = []

    def run(self, check: Callable[..., T], *args: Any, **kwargs: Any) -> T | None:
        try:
            return check(*args, **kwargs)
        except InvalidFields as exc:
            if not self.collect:
                raise
            self.errors.extend(exc.errors)
        except InvalidInput as exc:
            if not self.collect:
                raise
            self.errors.append(exc)
        return None

    def fail(self, message: str, field: str) -> None:
        self.run(_raise, message, field)

    def raise_found(self) -> None:
        if self.errors:
            raise InvalidFields(self.errors)


def _raise(message: str, field: str) -> None:
    raise InvalidInput(message, field=field)


# Digits with optional thousands separators, then at most... any decimals (too many are named below).
_YUAN_RE = re.compile(r"(?:[0-9]+|[0-9]{1,3}(?:,[0-9]{3})+)(?:\.([0-9]*))?\Z")


def parse_yuan(value: Any, field: str, *, maximum: int = MAX_GOAL_FEN) -> int:
    """An amount typed in yuan (``69.8``, ``69.80``, ``¥69.80``, ``６９．８``, ``1,234.50``) as exact fen.

    Full-width digits and signs are read as their ASCII forms (NFKC); the
    conversion is decimal, never binary floating point, so ``0.29`` is 29 fen.
    """
    if isinstance(value, bool) or not isinstance(value, (str, int)):
        raise InvalidInput(f"must be an amount in yuan (got {_json_type(value)})", field=field)
    raw = unicodedata.normalize("NFKC", str(value)).strip()
    raw = raw.removeprefix("¥").removesuffix("元").strip()
    if not raw:
        raise InvalidInput("is required", field=field)
    if len(raw) > 32:
        raise InvalidInput(f"must be at most {maximum // 100} yuan", field=field)
    if raw[0] in "-\u2212":
        raise InvalidInput("must not be negative", field=field)
    match = _YUAN_RE.match(raw)
    if match is None:
        raise InvalidInput("must be an amount in yuan such as 69.80", field=field)
    if match.group(1) is not None and len(match.group(1)) > 2:
        raise InvalidInput("must have at most 2 decimals (fen)", field=field)
    fen = Decimal(raw.replace(",", "").rstrip(".")) * 100
    if fen > maximum:
        raise InvalidInput(f"must be at most {maximum // 100} yuan", field=field)
    return int(fen)


def parse_product(data: Any, prefix: str, *, checks: _Checks | None = None) -> ProductInput | None:
    """One product; with ``checks`` collecting, ``None`` when it has errors (they are in ``checks``)."""
    checks = checks or _Checks(collect=False)
    data = require_object(data, prefix)
    reject_unknown(data, PRODUCT_FIELDS, prefix)
    found = len(checks.errors)
    sku = data.get("sku")
    if not isinstance(sku, str) or not SKU_RE.match(sku):
        checks.fail(
            "must be 1-64 letters, digits, '.', '_' or '-', starting with a letter or digit", f"{prefix}.sku"
        )
    if "unit_price_fen" not in data:
        checks.fail("is required", f"{prefix}.unit_price_fen")
    stock = data.get("stock")
    name = checks.run(text, data.get("name"), f"{prefix}.name", max_length=200, required=True)
    unit = checks.run(text, data.get("unit"), f"{prefix}.unit", max_length=50)
    price = None
    if "unit_price_fen" in data:
        price = checks.run(
            integer, data["unit_price_fen"], f"{prefix}.unit_price_fen", minimum=0, maximum=MAX_UNIT_PRICE_FEN
        )
    if stock is not None:
        stock = checks.run(integer, stock, f"{prefix}.stock", minimum=0, maximum=MAX_STOCK)
    if len(checks.errors) > found:
        return None
    return ProductInput(sku=sku, name=name or "", unit=unit or "", unit_price_fen=price or 0, stock=stock)


def _parse_products(products: Any, checks: _Checks) -> list[ProductInput] | None:
    if not isinstance(products, list) or not products:
        checks.fail("must be a non-empty array of products", "products")
        return None
    if len(products) > MAX_PRODUCTS:
        checks.fail(f"must hold at most {MAX_PRODUCTS} products", "products")
        return None
    parsed = [parse_product(p, f"products[{i}]", checks=checks) for i, p in enumerate(products)]
    skus: set[str] = set()
    for i, product in enumerate(parsed):
        if product is None:
            continue
        if product.sku in skus:
            checks.fail("appears twice", f"products[{i}].sku")
        skus.add(product.sku)
    return None if any(p is None for p in parsed) else [p for p in parsed if p is not None]


def _session_fields(body: Any, checks: _Checks, *, partial: bool) -> dict[str, Any]:
    """The fields of a session body, parsed: all of them with defaults (a new session), or only
    those present (an edit). The checks run in one fixed order, so the API names the same first error."""
    body = require_object(body, "")
    reject_unknown(body, SESSION_FIELDS)

    def given(name: str) -> bool:
        return not partial or name in body

    out: dict[str, Any] = {}
    hosts = body.get("hosts", [])
    if given("hosts") and (not isinstance(hosts, list) or len(hosts) > MAX_HOSTS):
        checks.fail(f"must be an array of at most {MAX_HOSTS} names", "hosts")
        hosts = None
    if given("products"):
        out["products"] = _parse_products(body.get("products"), checks)
    if given("currency"):
        currency = body.get("currency", "CNY")
        if currency not in CURRENCIES:
            checks.fail("must be CNY", "currency")
        out["currency"] = currency
    if given("title"):
        out["title"] = checks.run(text, body.get("title"), "title", max_length=200, required=True)
    if given("village"):
        out["village"] = checks.run(text, body.get("village"), "village", max_length=100)
    if given("hosts") and hosts is not None:
        out["hosts"] = [checks.run(text, h, f"hosts[{i}]", max_length=50, required=True) for i, h in enumerate(hosts)]
    if given("platform"):
        out["platform"] = checks.run(text, body.get("platform"), "platform", max_length=50)
    if given("goal_fen"):
        out["goal_fen"] = checks.run(integer, body.get("goal_fen", 0), "goal_fen", minimum=0, maximum=MAX_GOAL_FEN)
    if given("timezone"):
        out["timezone"] = checks.run(parse_timezone, body.get("timezone", "Asia/Shanghai"))
    if given("scheduled_start"):
        start = body.get("scheduled_start")
        out["scheduled_start"] = None if start is None else checks.run(parse_datetime, start, "scheduled_start")
    if given("planned_duration_min"):
        out["planned_duration_min"] = checks.run(
            integer, body.get("planned_duration_min", 120), "planned_duration_min", minimum=1, maximum=24 * 60
        )
    checks.raise_found()
    return out


def parse_session(body: Any, *, all_errors: bool = False) -> SessionInput:
    """A new session. With ``all_errors`` every wrong field is reported (``InvalidFields``), for forms."""
    return SessionInput(**_session_fields(body, _Checks(all_errors), partial=False))


@dataclasses.dataclass(frozen=True, slots=True)
class SessionUpdate:
    """What an edit changes: the session's fields that were sent, and its products if they were.

    ``products`` is the whole new list, matched to the stored one by SKU.
    """

    fields: dict[str, Any]
    products: list[ProductInput] | None


def parse_session_update(body: Any, *, all_errors: bool = False) -> SessionUpdate:
    """An edit of a session (``PATCH``): any of the fields of a new session; absent ones stay."""
    fields = _session_fields(body, _Checks(all_errors), partial=True)
    return SessionUpdate(fields={k: v for k, v in fields.items() if k != "products"},
                         products=fields.get("products"))
