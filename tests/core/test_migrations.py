"""The Alembic migrations build exactly the schema the models describe, on both databases,
and each revision applies to a database left at the one before it."""

from __future__ import annotations

from pathlib import Path

import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from livesale.core import schema
from livesale.models import Base


def test_migrated_schema_matches_the_models(database_url: str) -> None:
    engine = sa.create_engine(database_url)
    try:
        with engine.connect() as conn:
            context = MigrationContext.configure(conn, opts={"compare_type": True})
            diffs = compare_metadata(context, Base.metadata)
    finally:
        engine.dispose()
    assert diffs == [], "the models and the migrations differ: write a migration"


def test_upgrade_from_the_first_revision_keeps_old_results(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/old.sqlite"
    schema.upgrade(url, revision="0001")
    engine = sa.create_engine(url)
    try:
        with engine.begin() as conn:
            conn.execute(sa.text(
                "INSERT INTO live_sessions (id, title, village, hosts, platform, status, goal_fen, currency, "
                "timezone, widget_key, planned_duration_min, write_seq, catalog_version, created_at) "
                "VALUES (1, 't', 'v', '[]', '', 'ended', 0, 'CNY', 'Asia/Shanghai', 'k', 120, 0, 0, "
                "'2026-01-01 00:00:00')"
            ))
            conn.execute(sa.text(
                "INSERT INTO session_results (session_id, computed_at, version, amount_fen, orders, items, "
                "refunded_orders, refunded_fen, by_product, by_region, timeline, peak_minute, duration_s) "
                "VALUES (1, '2026-01-01 02:00:00', 1, 6980, 1, 1, 0, 0, '{}', '{}', '[]', 0, 7200)"
            ))
            conn.execute(sa.text(
                "INSERT INTO orders (id, session_id, sku, quantity, unit_price_fen, amount_fen, buyer_region, channel, "
                "payload_hash, status, created_at, minute, txid) VALUES ('0190e2b7a1c07cc3a8f1e1b2c3d4e5f6', 1, "
                "'APRICOT-5KG', 1, 6980, 6980, '上海', '', 'x', 'paid', '2026-01-01 00:30:00', 30, 1)"
            ))
        schema.upgrade(url)
        with engine.connect() as conn:
            # Nothing cascades away while tables are rebuilt (foreign keys are off during migrations).
            assert conn.execute(sa.text("SELECT count(*) FROM orders")).scalar_one() == 1
            assert conn.execute(sa.text("SELECT widget_enabled FROM live_sessions")).scalar_one() in (1, True)
            row = conn.execute(sa.text("SELECT amount_fen, peak_products FROM session_results")).one()
            version = conn.execute(sa.text("SELECT version_num FROM alembic_version")).scalar_one()
    finally:
        engine.dispose()
    assert tuple(row) == (6980, None)
    assert version == schema.head_revision()
