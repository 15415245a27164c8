"""``core.backup``: backup → restore round trips on the test database (SQLite, or PostgreSQL with
``LIVESALE_TEST_DATABASE_URL``), compared table by table and row by row; what a restore refuses;
the Redis totals after a restore."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from livesale.core import backup, schema
from livesale.core import sessions as session_service
from livesale.core.db import create_db_engine
from livesale.models import Base
from tests.conftest import APRICOT_SESSION, Api

TABLES = [table.name for table in Base.metadata.sorted_tables] + ["alembic_version"]


def table_rows(url: str) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of every livesale table, in a stable order: what two databases are compared by."""
    engine = create_db_engine(url, pool_size=1)
    try:
        with engine.connect() as conn:
            out = {}
            for name in TABLES:
                table = sa.Table(name, sa.MetaData(), autoload_with=conn)
                rows = conn.execute(sa.select(table)).all()
                out[name] = sorted((tuple(r) for r in rows), key=repr)
            return out
    finally:
        engine.dispose()


def sell(api: Api, session_id: int, n: int, region: str = "浙江杭州") -> list[dict[str, Any]]:
    batch = [{"sku": "APRICOT-5KG" if i % 3 else "DRIED-1KG", "quantity": 1 + i % 4, "buyer_region": region}
             for i in range(n)]
    recorded = api.post(f"/api/v1/sessions/{session_id}/orders", json={"orders": batch})
    assert recorded.status_code == 201, recorded.json
    return recorded.json["orders"]


def populate(api: Api) -> dict[str, int]:
    """An ended session with a refund, a live one with orders, a scheduled one."""
    ids = {}
    for name in ("ended", "live", "scheduled"):
        created = api.post("/api/v1/sessions", json={**APRICOT_SESSION, "title": f"{name} 杏子"})
        assert created.status_code == 201, created.json
        ids[name] = created.json["id"]
    for name in ("ended", "live"):
        assert api.post(f"/api/v1/sessions/{ids[name]}/start").status_code == 200
    orders = sell(api, ids["ended"], 12)
    assert api.post(f"/api/v1/sessions/{ids['ended']}/orders/{orders[0]['id']}/refund").status_code == 200
    assert api.post(f"/api/v1/sessions/{ids['ended']}/end").status_code == 200
    sell(api, ids["live"], 7, region="新疆喀什")
    return ids


def is_postgres(url: str) -> bool:
    return url.startswith("postgresql")


def empty_database(url: str) -> None:
    """Make the test database empty but migrated (as a fresh `livesale db upgrade` leaves it)."""
    engine = create_db_engine(url, pool_size=1)
    try:
        with engine.begin() as conn:
            if is_postgres(url):
                names = ", ".join(t.name for t in Base.metadata.sorted_tables)
                conn.execute(sa.text(f"TRUNCATE {names} RESTART IDENTITY CASCADE"))
            else:
                for table in reversed(Base.metadata.sorted_tables):
                    conn.execute(table.delete())
    finally:
        engine.dispose()


def test_round_trip_restores_every_row_over_changed_data(
    app: Any, host_api: Api, database_url: str, tmp_path: Path, store: Any
) -> None:
    ids = populate(host_api)
    before = table_rows(database_url)
    assert len(before["orders"]) == 19 and len(before["session_results"]) == 1
    file = tmp_path / "livesale.backup"
    report = backup.backup(database_url, file)
    assert report.counts["orders"] == 19 and report.counts["sessions"] == 3 and report.counts["results"] == 1
    assert report.revision == schema.head_revision() and report.size_bytes == file.stat().st_size > 0
    assert not list(tmp_path.glob(".*.part")), "no temporary file is left behind"

    # Life goes on after the backup: more orders, the live session ends, a new session.
    sell(host_api, ids["live"], 5)
    assert host_api.post(f"/api/v1/sessions/{ids['live']}/end").status_code == 200
    host_api.post("/api/v1/sessions", json={**APRICOT_SESSION, "title": "after the backup"})
    assert table_rows(database_url) != before

    with pytest.raises(backup.BackupError, match="not empty.*--force") as refused:
        backup.restore(database_url, file)
    assert refused.value.exit_code == 1
    assert len(table_rows(database_url)["orders"]) == 24, "a refused restore changes nothing"

    restored = backup.restore(database_url, file, force=True)
    assert restored.counts == report.counts and restored.from_revision == restored.revision
    assert table_rows(database_url) == before

    # Redis still holds the ended-after-backup session's feed and none of its live totals: the
    # reset drops what the old data left and rebuilds the live session from the restored orders.
    rebuilt = backup.reset_totals(store, session_ids_before={ids["live"], 99})
    assert rebuilt == 1
    live = host_api.get(f"/api/v1/sessions/{ids['live']}/totals").json
    assert (live["status"], live["orders"]) == ("live", 7)
    assert live["amount_fen"] == sum(r[5] for r in before["orders"] if r[1] == ids["live"])
    ended = host_api.get(f"/api/v1/sessions/{ids['ended']}/results").json
    assert (ended["orders"], ended["refunded_orders"]) == (11, 1)
    # The restored database takes new orders where the backup left off.
    sell(host_api, ids["live"], 2)
    assert host_api.get(f"/api/v1/sessions/{ids['live']}/totals").json["orders"] == 9
    assert session_service.live_totals(store, session_id=ids["live"]).figures.orders == 9


def test_restore_into_an_empty_database_needs_no_force(host_api: Api, database_url: str, tmp_path: Path) -> None:
    populate(host_api)
    before = table_rows(database_url)
    file = tmp_path / "livesale.backup"
    backup.backup(database_url, file)
    empty_database(database_url)
    backup.restore(database_url, file)
    assert table_rows(database_url) == before


def test_a_backup_file_is_not_overwritten_by_accident(database_url: str, tmp_path: Path) -> None:
    file = tmp_path / "kept.backup"
    file.write_bytes(b"last week's backup")
    with pytest.raises(backup.BackupError, match="exists.*--overwrite"):
        backup.backup(database_url, file)
    assert file.read_bytes() == b"last week's backup"
    backup.backup(database_url, file, overwrite=True)
    assert file.read_bytes() != b"last week's backup"
    with pytest.raises(backup.BackupError, match="no folder"):
        backup.backup(database_url, tmp_path / "missing" / "x.backup")


def test_what_restore_refuses(database_url: str, tmp_path: Path) -> None:
    text = tmp_path / "notes.txt"
    text.write_text("not a backup")
    with pytest.raises(backup.BackupError, match="not a livesale backup"):
        backup.restore(database_url, text, force=True)
    with pytest.raises(backup.BackupError, match="no file"):
        backup.restore(database_url, tmp_path / "missing.backup", force=True)
    other = tmp_path / "other.sqlite"
    with sqlite3.connect(other) as conn:
        conn.execute("CREATE TABLE notes (x)")
    conn.close()
    if is_postgres(database_url):
        with pytest.raises(backup.BackupError, match="SQLite backup but the database is PostgreSQL"):
            backup.restore(database_url, other, force=True)
        return
    with pytest.raises(backup.BackupError, match="not a livesale database"):
        backup.restore(database_url, other, force=True)
    newer = tmp_path / "newer.sqlite"
    with sqlite3.connect(newer) as conn:
        conn.execute("CREATE TABLE alembic_version (version_num VARCHAR(32) NOT NULL)")
        conn.execute("INSERT INTO alembic_version VALUES ('9999')")
    conn.close()
    with pytest.raises(backup.BackupError, match="revision 9999.*newer livesale"):
        backup.restore(database_url, newer, force=True)


def test_an_older_sqlite_backup_is_migrated_forward(tmp_path: Path) -> None:
    old = f"sqlite:///{tmp_path / 'old.sqlite'}"
    schema.upgrade(old, "0002")
    engine = create_db_engine(old, pool_size=1)
    with engine.begin() as conn:
        conn.execute(sa.text("INSERT INTO users (name, role, active, created_at) "
                             "VALUES ('ayi', 'host', 1, '2024-06-01 08:00:00')"))
    engine.dispose()
    file = tmp_path / "old.backup"
    assert backup.backup(old, file).revision == "0002"
    target = f"sqlite:///{tmp_path / 'new.sqlite'}"
    report = backup.restore(target, file)
    assert (report.from_revision, report.revision) == ("0002", schema.head_revision())
    assert report.counts["users"] == 1
    assert "migrated from 0002" in backup.describe(report)
    assert table_rows(target)["users"][0][1] == "ayi"
    with sqlite3.connect(f"file:{file}?mode=ro", uri=True) as conn:
        assert conn.execute("SELECT version_num FROM alembic_version").fetchone() == ("0002",), \
            "the backup itself is left as it was"
    conn.close()


def test_a_missing_pg_tool_is_one_line_with_what_to_install() -> None:
    with pytest.raises(backup.ToolMissing) as missing:
        backup.find_pg_tool("pg_dump_not_installed_here")
    assert missing.value.exit_code == 2
    assert "install the PostgreSQL client tools" in str(missing.value) and "\n" not in str(missing.value)


def test_pg_tools_are_found_here() -> None:
    """The PostgreSQL passes need them; say so plainly if this machine lacks them."""
    try:
        found = backup.find_pg_tool("pg_dump")
    except backup.ToolMissing as exc:
        pytest.skip(f"no pg_dump on this machine: {exc}")
    assert Path(found).name == "pg_dump"
