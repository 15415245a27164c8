"""The mapped tables as SQLAlchemy Core ``Table`` objects.

The hot paths (recording orders, aggregating a session) use Core statements
on these tables; the ORM classes in ``livesale.models`` stay the single
definition of the schema.
"""

from livesale.models import (
    ApiToken,
    FinalDecision,
    ImportRecord,
    LiveSession,
    Order,
    OrderHook,
    OutboxEvent,
    PlatformLine,
    Product,
    ProductMapping,
    Robot,
    RobotDelivery,
    SessionAudience,
    SessionResult,
    User,
)

users = User.__table__
api_tokens = ApiToken.__table__
live_sessions = LiveSession.__table__
products = Product.__table__
orders = Order.__table__
session_results = SessionResult.__table__
imports = ImportRecord.__table__
platform_lines = PlatformLine.__table__
product_mappings = ProductMapping.__table__
final_decisions = FinalDecision.__table__
order_hooks = OrderHook.__table__
session_audience = SessionAudience.__table__
robots = Robot.__table__
outbox_events = OutboxEvent.__table__
robot_deliveries = RobotDelivery.__table__
