"""The data model: SQLAlchemy 2.0 typed mappings, no Flask.

Money is integer fen (``BigInteger``) everywhere. Times are stored as UTC and
converted to a session's time zone only for display.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
import sqlalchemy.orm as so


class UTCDateTime(sa.TypeDecorator[datetime]):
    """An aware UTC datetime on every backend.

    SQLite has no time zones, so values are stored naive in UTC and handed
    back aware; PostgreSQL stores ``timestamptz``.
    """

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: sa.Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: sa.Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def utcnow() -> datetime:
    return datetime.now(UTC)


class Base(so.DeclarativeBase):
    type_annotation_map = {
        datetime: UTCDateTime(),
        dict[str, Any]: sa.JSON(),
        list[Any]: sa.JSON(),
    }
    metadata = sa.MetaData(
        naming_convention={
            "ix": "ix_%(column_0_label)s",
            "uq": "uq_%(table_name)s_%(column_0_N_name)s",
            "ck": "ck_%(table_name)s_%(constraint_name)s",
            "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
            "pk": "pk_%(table_name)s",
        }
    )


class User(Base):
    __tablename__ = "users"

    id: so.Mapped[int] = so.mapped_column(primary_key=True)
    name: so.Mapped[str] = so.mapped_column(sa.String(64), unique=True)
    role: so.Mapped[str] = so.mapped_column(sa.String(16))
    password_hash: so.Mapped[str | None] = so.mapped_column(sa.String(256))
    active: so.Mapped[bool] = so.mapped_column(default=True)
    created_at: so.Mapped[datetime] = so.mapped_column(default=utcnow)


class ApiToken(Base):
    """A bearer token; only its SHA-256 is stored."""

    __tablename__ = "api_tokens"

    id: so.Mapped[int] = so.mapped_column(primary_key=True)
    user_id: so.Mapped[int] = so.mapped_column(sa.ForeignKey("users.id", ondelete="CASCADE"))
    token_hash: so.Mapped[str] = so.mapped_column(sa.String(64), unique=True)
    label: so.Mapped[str | None] = so.mapped_column(sa.String(100))
    created_at: so.Mapped[datetime] = so.mapped_column(default=utcnow)
    revoked_at: so.Mapped[datetime | None]


class LiveSession(Base):
    """One livestream selling session ("live session", 直播场次)."""

    __tablename__ = "live_sessions"

    id: so.Mapped[int] = so.mapped_column(primary_key=True)
    title: so.Mapped[str] = so.mapped_column(sa.String(200))
    village: so.Mapped[str] = so.mapped_column(sa.String(100), default="", index=True)
    hosts: so.Mapped[list[Any]] = so.mapped_column(default=list)
    platform: so.Mapped[str] = so.mapped_column(sa.String(50), default="")
    status: so.Mapped[str] = so.mapped_column(sa.String(16), default="scheduled", index=True)
    scheduled_start: so.Mapped[datetime | None]
    planned_duration_min: so.Mapped[int] = so.mapped_column(default=120)
    started_at: so.Mapped[datetime | None]
    ended_at: so.Mapped[datetime | None]
    goal_fen: so.Mapped[int] = so.mapped_column(sa.BigInteger, default=0)
    currency: so.Mapped[str] = so.mapped_column(sa.String(3), default="CNY")
    timezone: so.Mapped[str] = so.mapped_column(sa.String(64), default="Asia/Shanghai")
    widget_key: so.Mapped[str] = so.mapped_column(sa.String(64), unique=True)
    widget_enabled: so.Mapped[bool] = so.mapped_column(default=True, server_default=sa.true())
    #: Origins allowed to embed the widget, space-separated (``https://news.example``); empty: any.
    widget_origins: so.Mapped[str] = so.mapped_column(sa.String(1000), default="", server_default="")
    #: The widget celebrates every time the total crosses a multiple of this (0: only the goal).
    widget_milestone_fen: so.Mapped[int] = so.mapped_column(sa.BigInteger, default=0, server_default="0")
    owner_id: so.Mapped[int | None] = so.mapped_column(
        sa.ForeignKey("users.id", ondelete="SET NULL"), index=True
    )
    # SQLite only: a counter bumped by every write transaction of the session,
    # used as the transaction id (see core.db.begin_session_write).
    write_seq: so.Mapped[int] = so.mapped_column(sa.BigInteger, default=0)
    #: Bumped by every change to the session's description or products, so
    #: processes can cache the catalogue they price orders with.
    catalog_version: so.Mapped[int] = so.mapped_column(default=0)
    created_at: so.Mapped[datetime] = so.mapped_column(default=utcnow)

    products: so.Mapped[list[Product]] = so.relationship(
        back_populates="session", order_by="Product.position", cascade="all, delete-orphan"
    )


class Product(Base):
    __tablename__ = "products"
    __table_args__ = (sa.UniqueConstraint("session_id", "sku"),)

    id: so.Mapped[int] = so.mapped_column(primary_key=True)
    session_id: so.Mapped[int] = so.mapped_column(
        sa.ForeignKey("live_sessions.id", ondelete="CASCADE")
    )
    sku: so.Mapped[str] = so.mapped_column(sa.String(64))
    name: so.Mapped[str] = so.mapped_column(sa.String(200))
    unit: so.Mapped[str] = so.mapped_column(sa.String(50), default="")
    unit_price_fen: so.Mapped[int] = so.mapped_column(sa.BigInteger)
    stock: so.Mapped[int | None]
    position: so.Mapped[int] = so.mapped_column(default=0)

    session: so.Mapped[LiveSession] = so.relationship(back_populates="products")


class Order(Base):
    """An order as recorded; refunds keep the row with status ``refunded``."""

    __tablename__ = "orders"
    __table_args__ = (
        # Idempotency: NULLs never conflict, so both keys are optional.
        sa.UniqueConstraint("session_id", "external_id"),
        sa.UniqueConstraint("session_id", "idempotency_key"),
        sa.Index("ix_orders_session_created", "session_id", "created_at", "id"),
        # Covers the aggregation (core.results): rebuilds and results read
        # the index alone, already grouped (by channel too: migration 0005).
        sa.Index(
            "ix_orders_aggregate", "session_id", "status", "sku", "buyer_region", "minute", "channel", "quantity",
            "amount_fen",
        ),
    )

    id: so.Mapped[uuid.UUID] = so.mapped_column(primary_key=True)
    session_id: so.Mapped[int] = so.mapped_column(
        sa.ForeignKey("live_sessions.id", ondelete="CASCADE")
    )
    sku: so.Mapped[str] = so.mapped_column(sa.String(64))
    quantity: so.Mapped[int]
    unit_price_fen: so.Mapped[int] = so.mapped_column(sa.BigInteger)
    amount_fen: so.Mapped[int] = so.mapped_column(sa.BigInteger)
    buyer_region: so.Mapped[str] = so.mapped_column(sa.String(64), default="")
    channel: so.Mapped[str] = so.mapped_column(sa.String(32), default="")
    external_id: so.Mapped[str | None] = so.mapped_column(sa.String(128))
    idempotency_key: so.Mapped[str | None] = so.mapped_column(sa.String(160))
    #: Digest of the order's payload: a repeat with another payload is a conflict.
    payload_hash: so.Mapped[str] = so.mapped_column(sa.String(32))
    status: so.Mapped[str] = so.mapped_column(sa.String(16), default="paid")
    created_at: so.Mapped[datetime]
    #: Whole minutes since the session started; the timeline groups by it.
    minute: so.Mapped[int]
    #: Transaction ids of the insert and of the refund (see core.db).
    txid: so.Mapped[int] = so.mapped_column(sa.BigInteger)
    refunded_at: so.Mapped[datetime | None]
    refund_txid: so.Mapped[int | None] = so.mapped_column(sa.BigInteger)


class SessionResult(Base):
    """A session's figures, computed from SQL once when it ends."""

    __tablename__ = "session_results"

    session_id: so.Mapped[int] = so.mapped_column(
        sa.ForeignKey("live_sessions.id", ondelete="CASCADE"), primary_key=True
    )
    computed_at: so.Mapped[datetime]
    version: so.Mapped[int] = so.mapped_column(sa.BigInteger)
    amount_fen: so.Mapped[int] = so.mapped_column(sa.BigInteger)
    orders: so.Mapped[int]
    items: so.Mapped[int] = so.mapped_column(sa.BigInteger)
    refunded_orders: so.Mapped[int]
    refunded_fen: so.Mapped[int] = so.mapped_column(sa.BigInteger)
    by_product: so.Mapped[dict[str, Any]]
    by_region: so.Mapped[dict[str, Any]]
    timeline: so.Mapped[list[Any]]
    peak_minute: so.Mapped[int | None]
    #: What sold in the peak minute: ``{sku: [quantity, amount_fen]}`` (NULL for results from before 0002).
    peak_products: so.Mapped[dict[str, Any] | None]
    duration_s: so.Mapped[int]
    #: Sales by channel/platform: ``{channel: [orders, amount_fen]}`` (NULL for results from before 0004).
    by_channel: so.Mapped[dict[str, Any] | None]


# --- the platforms' record of a session (issue: orders from the platforms) -------------------------


class ImportRecord(Base):
    """One import of a platform's order export: who, when, which file, what it did."""

    __tablename__ = "imports"

    id: so.Mapped[int] = so.mapped_column(primary_key=True)
    session_id: so.Mapped[int] = so.mapped_column(sa.ForeignKey("live_sessions.id", ondelete="CASCADE"), index=True)
    user_id: so.Mapped[int | None] = so.mapped_column(sa.ForeignKey("users.id", ondelete="SET NULL"))
    created_at: so.Mapped[datetime] = so.mapped_column(default=utcnow)
    platform: so.Mapped[str] = so.mapped_column(sa.String(16))
    filename: so.Mapped[str] = so.mapped_column(sa.String(255), default="")
    sha256: so.Mapped[str] = so.mapped_column(sa.String(64))
    #: The import's answer (added, repeated, refunded, skipped rows…), as the API gave it.
    report: so.Mapped[dict[str, Any]]
    #: The session's platform figures before and after (orders, items, amount_fen).
    before: so.Mapped[dict[str, Any]]
    after: so.Mapped[dict[str, Any]]


class PlatformLine(Base):
    """One order line of a platform's export: the platform's record of a session.

    Kept apart from ``orders`` (the live count): platform lines never move
    the running totals; reconciliation lays the two side by side.
    """

    __tablename__ = "platform_lines"
    __table_args__ = (sa.UniqueConstraint("session_id", "line_id"),)

    id: so.Mapped[int] = so.mapped_column(primary_key=True)
    session_id: so.Mapped[int] = so.mapped_column(sa.ForeignKey("live_sessions.id", ondelete="CASCADE"))
    #: ``<platform>:<the platform's line id>`` (Douyin: 子订单编号, else 主订单编号; …).
    line_id: so.Mapped[str] = so.mapped_column(sa.String(200))
    platform: so.Mapped[str] = so.mapped_column(sa.String(16))
    #: The platform's order id: several lines can share it.
    order_ref: so.Mapped[str] = so.mapped_column(sa.String(128), default="")
    sku: so.Mapped[str] = so.mapped_column(sa.String(64))
    quantity: so.Mapped[int]
    amount_fen: so.Mapped[int] = so.mapped_column(sa.BigInteger)
    paid_at: so.Mapped[datetime]
    province: so.Mapped[str] = so.mapped_column(sa.String(64), default="")
    city: so.Mapped[str] = so.mapped_column(sa.String(64), default="")
    #: ``paid`` or ``refunded`` (a line imported as paid and later exported refunded or cancelled).
    status: so.Mapped[str] = so.mapped_column(sa.String(16), default="paid")
    refunded_at: so.Mapped[datetime | None]
    import_id: so.Mapped[int | None] = so.mapped_column(sa.ForeignKey("imports.id", ondelete="SET NULL"))
    created_at: so.Mapped[datetime] = so.mapped_column(default=utcnow)


class ProductMapping(Base):
    """A platform's product name and spec → a session product's sku, saved by a host; the
    village's next sessions reuse it."""

    __tablename__ = "product_mappings"
    __table_args__ = (sa.UniqueConstraint("village", "platform", "platform_name", "spec"),)

    id: so.Mapped[int] = so.mapped_column(primary_key=True)
    village: so.Mapped[str] = so.mapped_column(sa.String(100), default="")
    platform: so.Mapped[str] = so.mapped_column(sa.String(16))
    platform_name: so.Mapped[str] = so.mapped_column(sa.String(200))
    spec: so.Mapped[str] = so.mapped_column(sa.String(200), default="")
    sku: so.Mapped[str] = so.mapped_column(sa.String(64))
    created_by: so.Mapped[int | None] = so.mapped_column(sa.ForeignKey("users.id", ondelete="SET NULL"))
    created_at: so.Mapped[datetime] = so.mapped_column(default=utcnow)


class FinalDecision(Base):
    """Which figures of a session stand: every confirmation, proposal and revert, in order
    (the newest confirmation or revert decides; a host's proposal decides nothing)."""

    __tablename__ = "final_decisions"

    id: so.Mapped[int] = so.mapped_column(primary_key=True)
    session_id: so.Mapped[int] = so.mapped_column(sa.ForeignKey("live_sessions.id", ondelete="CASCADE"), index=True)
    #: ``confirm``, ``propose`` or ``revert``.
    action: so.Mapped[str] = so.mapped_column(sa.String(16))
    #: ``platform`` or ``live``.
    source: so.Mapped[str] = so.mapped_column(sa.String(16))
    reason: so.Mapped[str] = so.mapped_column(sa.String(500), default="")
    user_id: so.Mapped[int | None] = so.mapped_column(sa.ForeignKey("users.id", ondelete="SET NULL"))
    created_at: so.Mapped[datetime] = so.mapped_column(default=utcnow)


class OrderHook(Base):
    """A signed push endpoint (``/hooks/orders/<hook_id>``) for a session's live orders.

    The secret is kept as given: checking an HMAC needs it (unlike a bearer
    token, which is only compared, and so stored hashed).
    """

    __tablename__ = "order_hooks"

    id: so.Mapped[int] = so.mapped_column(primary_key=True)
    hook_id: so.Mapped[str] = so.mapped_column(sa.String(64), unique=True)
    session_id: so.Mapped[int] = so.mapped_column(sa.ForeignKey("live_sessions.id", ondelete="CASCADE"), index=True)
    secret: so.Mapped[str] = so.mapped_column(sa.String(128))
    created_by: so.Mapped[int | None] = so.mapped_column(sa.ForeignKey("users.id", ondelete="SET NULL"))
    created_at: so.Mapped[datetime] = so.mapped_column(default=utcnow)
    revoked_at: so.Mapped[datetime | None]


class SessionAudience(Base):
    """The platform's audience figures of a sale session (场观, 峰值在线, …), typed in by a host.

    Each figure is ``None`` until given. Kept apart from ``live_sessions`` so that
    updating them never touches the row that every order write pins.
    """

    __tablename__ = "session_audience"

    session_id: so.Mapped[int] = so.mapped_column(
        sa.ForeignKey("live_sessions.id", ondelete="CASCADE"), primary_key=True
    )
    viewers: so.Mapped[int | None] = so.mapped_column(sa.BigInteger)
    peak_viewers: so.Mapped[int | None] = so.mapped_column(sa.BigInteger)
    new_followers: so.Mapped[int | None] = so.mapped_column(sa.BigInteger)
    likes: so.Mapped[int | None] = so.mapped_column(sa.BigInteger)
    comments: so.Mapped[int | None] = so.mapped_column(sa.BigInteger)
    updated_by: so.Mapped[int | None] = so.mapped_column(sa.ForeignKey("users.id", ondelete="SET NULL"))
    updated_at: so.Mapped[datetime] = so.mapped_column(default=utcnow)


class Robot(Base):
    """A group-chat robot (WeCom, DingTalk, Feishu) told about a sale session.

    ``session_id`` set: this session's robot. ``session_id`` NULL: a default of
    ``village``, told about every session of that village. The URL (it carries
    the robot's key) and the signing secret are secrets: kept as given (sending
    needs them) and shown masked.
    """

    __tablename__ = "robots"

    id: so.Mapped[int] = so.mapped_column(primary_key=True)
    session_id: so.Mapped[int | None] = so.mapped_column(
        sa.ForeignKey("live_sessions.id", ondelete="CASCADE"), index=True
    )
    village: so.Mapped[str | None] = so.mapped_column(sa.String(100), index=True)
    #: ``wecom``, ``dingtalk`` or ``feishu``.
    kind: so.Mapped[str] = so.mapped_column(sa.String(16))
    url: so.Mapped[str] = so.mapped_column(sa.String(2000))
    secret: so.Mapped[str | None] = so.mapped_column(sa.String(200))
    #: The language of its messages (``zh``, ``ug``, ``en``).
    lang: so.Mapped[str] = so.mapped_column(sa.String(8), default="zh")
    created_by: so.Mapped[int | None] = so.mapped_column(sa.ForeignKey("users.id", ondelete="SET NULL"))
    created_at: so.Mapped[datetime] = so.mapped_column(default=utcnow)
    deleted_at: so.Mapped[datetime | None]


class OutboxEvent(Base):
    """Something robots are told about, written in the transaction of the change
    that caused it (a session started or ended) or, for goal and milestones, once
    by its key (``(session_id, key)`` is unique, so finding it twice adds nothing)."""

    __tablename__ = "outbox_events"
    __table_args__ = (sa.UniqueConstraint("session_id", "key"),)

    id: so.Mapped[int] = so.mapped_column(primary_key=True)
    session_id: so.Mapped[int] = so.mapped_column(sa.ForeignKey("live_sessions.id", ondelete="CASCADE"))
    #: ``started``, ``goal``, ``milestone:<fen>``, ``ended``.
    key: so.Mapped[str] = so.mapped_column(sa.String(64))
    #: The figures the message tells (amount, orders, …) as they were at the event.
    payload: so.Mapped[dict[str, Any]]
    created_at: so.Mapped[datetime] = so.mapped_column(default=utcnow)


class RobotDelivery(Base):
    """One event to one robot: its state and the receiver's last answer (the delivery log).

    Created with the event for every robot of the session then; the sender
    claims due rows (``claimed_until``), sends, and records the outcome.
    """

    __tablename__ = "robot_deliveries"
    __table_args__ = (
        sa.UniqueConstraint("event_id", "robot_id"),
        sa.Index("ix_robot_deliveries_due", "status", "next_attempt_at"),
    )

    id: so.Mapped[int] = so.mapped_column(primary_key=True)
    event_id: so.Mapped[int] = so.mapped_column(sa.ForeignKey("outbox_events.id", ondelete="CASCADE"))
    robot_id: so.Mapped[int] = so.mapped_column(sa.ForeignKey("robots.id", ondelete="CASCADE"), index=True)
    session_id: so.Mapped[int] = so.mapped_column(
        sa.ForeignKey("live_sessions.id", ondelete="CASCADE"), index=True
    )
    #: ``pending``, ``retrying``, ``sent`` or ``failed`` (gave up).
    status: so.Mapped[str] = so.mapped_column(sa.String(16), default="pending")
    attempts: so.Mapped[int] = so.mapped_column(default=0)
    next_attempt_at: so.Mapped[datetime] = so.mapped_column(default=utcnow)
    claimed_until: so.Mapped[datetime | None]
    last_attempt_at: so.Mapped[datetime | None]
    #: The receiver's HTTP status and the start of its answer, or why nothing was sent.
    response_status: so.Mapped[int | None]
    response_body: so.Mapped[str] = so.mapped_column(sa.String(500), default="")
    error: so.Mapped[str] = so.mapped_column(sa.String(500), default="")
    sent_at: so.Mapped[datetime | None]
    created_at: so.Mapped[datetime] = so.mapped_column(default=utcnow)
