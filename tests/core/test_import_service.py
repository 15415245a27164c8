"""The import's decisions, line by line, against a real database: what is added, repeated, refunded,
skipped (and why), matched by code or by a saved name mapping; what is recorded; what a dry run and a
refusal leave behind (nothing). Lines are given as ``ExportLine``s here: reading files is tested in
``tests/web/test_imports_api.py`` (every platform, encoding and format, through the API)."""

from __future__ import annotations

import dataclasses
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import sqlalchemy as sa

from livesale.core import auth, validation
from livesale.core import orders as order_service
from livesale.core import sessions as session_service
from livesale.core import tables as t
from livesale.core.db import write_transaction
from livesale.core.errors import Conflict, Forbidden, InvalidInput, NotFound
from livesale.core.imports import service
from livesale.core.imports.lines import NOT_PAID, PAID, REFUNDED, ExportLine
from tests.conftest import APRICOT_SESSION
from tests.ledger import order_input

CN = ZoneInfo("Asia/Shanghai")
START = datetime(2026, 6, 1, 20, 0, tzinfo=CN)
END = datetime(2026, 6, 1, 22, 0, tzinfo=CN)


def actor(store: Any, name: str, role: str) -> auth.Actor:
    with write_transaction(store.db) as conn:
        existing = conn.execute(sa.select(t.users.c.id).where(t.users.c.name == name)).scalar()
        user_id = existing or auth.create_user(conn, name=name, role=role)
    return auth.Actor(user_id=user_id, name=name, role=role)


@pytest.fixture
def host(store: Any) -> auth.Actor:
    return actor(store, "host", "host")


def new_session(store: Any, host: auth.Actor, *, village: str = "疏附县", ran: bool = True, **extra: Any) -> int:
    info = session_service.create_session(
        store, actor=host, data=validation.parse_session({**APRICOT_SESSION, "village": village, **extra}))
    if ran:  # ended, 20:00-22:00 China time on 1 June 2026
        with write_transaction(store.db) as conn:
            conn.execute(sa.update(t.live_sessions).where(t.live_sessions.c.id == info.id)
                         .values(status="ended", started_at=START, ended_at=END))
    return info.id


@pytest.fixture
def session_id(store: Any, host: auth.Actor) -> int:
    return new_session(store, host)


def line(row: int, line_id: str, *, code: str = "APRICOT-5KG", name: str = "鲜杏", spec: str = "5斤", quantity: int = 1,
         amount_fen: int = 6980, minute: int = 30, status: str = PAID) -> ExportLine:
    return ExportLine(
        row=row, line_id=line_id, order_ref=line_id.split("-")[0], product_name=name, spec=spec, merchant_code=code,
        quantity=quantity, amount_fen=amount_fen,
        paid_at=None if status == NOT_PAID else START + timedelta(minutes=minute),
        province="浙江省", city="杭州市", status=status,
    )


def run(store: Any, who: auth.Actor, session_id: int, lines: list[ExportLine], **kw: Any) -> dict[str, Any]:
    return service.import_lines(store, actor=who, session_id=session_id, platform=kw.pop("platform", "douyin"),
                                lines=lines, filename="orders.csv", sha256="ab" * 32, **kw).report()


def stored(store: Any, session_id: int) -> dict[str, tuple[str, str, int, int]]:
    p = t.platform_lines
    with store.db.connect() as conn:
        rows = conn.execute(sa.select(p.c.line_id, p.c.status, p.c.sku, p.c.quantity, p.c.amount_fen)
                            .where(p.c.session_id == session_id))
        return {r[0]: (r[1], r[2], r[3], r[4]) for r in rows}


def records(store: Any, session_id: int) -> list[Any]:
    with store.db.connect() as conn:
        return conn.execute(sa.select(t.imports).where(t.imports.c.session_id == session_id)
                            .order_by(t.imports.c.id)).all()


def figures_of(lines: list[ExportLine]) -> dict[str, int]:
    return {"orders": len(lines), "items": sum(x.quantity for x in lines), "amount_fen": sum(x.amount_fen for x in lines)}


def test_import_twice_then_a_later_export_with_refunds(store: Any, host: auth.Actor, session_id: int) -> None:
    first = [line(i + 2, f"5001{i:03d}-{i}", code=("APRICOT-5KG", "DRIED-1KG")[i % 2], quantity=1 + i % 3,
                  amount_fen=(6980, 5900)[i % 2] * (1 + i % 3) - i, minute=i) for i in range(40)]
    report = run(store, host, session_id, first)
    assert report == {
        "dry_run": False, "platform": "douyin", "rows": 40, "added": 40, "repeated": 0, "refunded": 0,
        "amount_added_fen": sum(x.amount_fen for x in first), "skipped": [], "unmatched_products": [],
        "import_id": report["import_id"],
    }
    assert set(stored(store, session_id)) == {f"douyin:{x.line_id}" for x in first}
    with store.db.connect() as conn:  # times, ids and places as the lines said (PostgreSQL stores them by COPY)
        kept = {r[0]: tuple(r[1:]) for r in conn.execute(sa.select(
            t.platform_lines.c.line_id, t.platform_lines.c.paid_at, t.platform_lines.c.order_ref,
            t.platform_lines.c.province, t.platform_lines.c.city, t.platform_lines.c.import_id, t.platform_lines.c.platform)
            .where(t.platform_lines.c.session_id == session_id))}
    assert kept == {f"douyin:{x.line_id}": (x.paid_at, x.order_ref, "浙江省", "杭州市", report["import_id"], "douyin")
                    for x in first}
    again = run(store, host, session_id, first)
    assert (again["added"], again["repeated"], again["refunded"], again["amount_added_fen"]) == (0, 40, 0, 0)

    # A later export: the same lines (ten of them now refunded) and ten new ones.
    refunded = {x.line_id for x in first[::4]}
    later = [dataclasses.replace(x, status=REFUNDED if x.line_id in refunded else PAID) for x in first]
    new = [line(100 + i, f"6001{i:03d}-{i}", amount_fen=6980 + i, minute=100 + i) for i in range(10)]
    report = run(store, host, session_id, later + new)
    assert (report["added"], report["repeated"], report["refunded"]) == (10, 30, 10)
    assert report["amount_added_fen"] == sum(x.amount_fen for x in new)
    lines = stored(store, session_id)
    assert {k for k, v in lines.items() if v[0] == REFUNDED} == {f"douyin:{i}" for i in refunded}
    paid = [x for x in first if x.line_id not in refunded] + new
    with store.db.connect() as conn:
        assert service.platform_figures(conn, session_id=session_id) == figures_of(paid)

    recs = records(store, session_id)
    assert len(recs) == 3
    assert recs[0].before == {"orders": 0, "items": 0, "amount_fen": 0} and recs[0].after == figures_of(first)
    assert recs[1].before == recs[1].after == figures_of(first)
    assert recs[2].before == figures_of(first) and recs[2].after == figures_of(paid)
    assert recs[2].report["refunded"] == 10 and "import_id" not in recs[2].report
    assert (recs[0].user_id, recs[0].filename, recs[0].sha256, recs[0].platform) == (host.user_id, "orders.csv",
                                                                                     "ab" * 32, "douyin")
    # A refund seen again is a repeat.
    assert run(store, host, session_id, later)["repeated"] == 40


def test_skipped_lines_are_reported_by_row(store: Any, host: auth.Actor, session_id: int) -> None:
    lines = [
        line(2, "1-1"),
        line(3, "2-1", status=NOT_PAID),
        line(4, "1-1"),  # the same line id again
        line(5, "3-1", minute=-11),  # 19:49, the window opens at 19:50
        line(6, "4-1", minute=-10),  # 19:50: in
        line(7, "5-1", minute=130),  # 22:10: in
        line(8, "6-1", minute=131),  # 22:11: out
        line(9, "7-1", code="X-9", name="杏脯", spec="礼盒"),
        line(10, "8-1", code="", name="杏脯", spec="礼盒"),
        line(11, "9-1", code="X-9", name="杏脯", spec="礼盒"),
        line(12, "10-1", code="", name="杏仁", spec=""),
    ]
    report = run(store, host, session_id, lines)
    assert report["added"] == 3 and report["amount_added_fen"] == 3 * 6980
    assert report["skipped"] == [
        {"row": 3, "reason": "not_paid"}, {"row": 4, "reason": "duplicate_in_file"},
        {"row": 5, "reason": "outside_window"}, {"row": 8, "reason": "outside_window"},
        {"row": 9, "reason": "unmatched_product"}, {"row": 10, "reason": "unmatched_product"},
        {"row": 11, "reason": "unmatched_product"}, {"row": 12, "reason": "unmatched_product"},
    ]
    assert report["unmatched_products"] == [
        {"name": "杏脯 (礼盒)", "code": "X-9", "rows": [9, 11]},
        {"name": "杏脯 (礼盒)", "code": "", "rows": [10]},
        {"name": "杏仁", "code": "", "rows": [12]},
    ]
    # A wider window takes the two lines at its edges; 0 minutes only the run itself.
    wide = run(store, host, new_session(store, host), lines, window_minutes=11, dry_run=True)
    assert wide["added"] == 5
    narrow = run(store, host, new_session(store, host), lines, window_minutes=0, dry_run=True)
    assert narrow["added"] == 1


def test_a_saved_mapping_matches_and_the_villages_next_sessions_reuse_it(
        store: Any, host: auth.Actor, session_id: int) -> None:
    lines = [line(2, "1-1", code="", name="杏脯", spec="礼盒", amount_fen=3990),
             line(3, "2-1", code="", name="杏脯", spec="散装", amount_fen=1990),
             line(4, "3-1", code="dy-778", name="杏仁", spec="", amount_fen=2500)]
    service.save_mapping(store, actor=host, session_id=session_id, platform="douyin", platform_name="杏脯",
                         spec="礼盒", sku="DRIED-1KG")
    report = run(store, host, session_id, lines, dry_run=True)
    assert report["added"] == 1 and [u["rows"] for u in report["unmatched_products"]] == [[3], [4]]
    # Without a spec, a mapping covers every spec of that name; a mapping is per platform.
    service.save_mapping(store, actor=host, session_id=session_id, platform="douyin", platform_name="杏脯",
                         spec="", sku="APRICOT-5KG")
    service.save_mapping(store, actor=host, session_id=session_id, platform="kuaishou", platform_name="杏仁",
                         spec="", sku="APRICOT-5KG")
    report = run(store, host, session_id, lines)
    assert report["added"] == 2 and report["amount_added_fen"] == 3990 + 1990
    assert {k: v[1] for k, v in stored(store, session_id).items()} == {"douyin:1-1": "DRIED-1KG",
                                                                         "douyin:2-1": "APRICOT-5KG"}
    # The village's next session reuses the mappings; another village's does not.
    assert run(store, host, new_session(store, host), lines, dry_run=True)["added"] == 2
    assert run(store, host, new_session(store, host, village="伽师县"), lines, dry_run=True)["added"] == 0
    # Saving again changes the sku; a sku the session does not sell is refused.
    service.save_mapping(store, actor=host, session_id=session_id, platform="douyin", platform_name="杏脯",
                         spec="礼盒", sku="APRICOT-5KG")
    with store.db.connect() as conn:
        info = session_service.load_session(conn, session_id=session_id)
    assert len(service.list_mappings(store, info=info)) == 3
    with pytest.raises(InvalidInput) as refused:
        service.save_mapping(store, actor=host, session_id=session_id, platform="douyin", platform_name="杏脯",
                             spec="", sku="PEACH-1")
    assert refused.value.field == "sku"


def test_a_line_refunded_before_its_first_import_is_kept_out_of_the_amounts(
        store: Any, host: auth.Actor, session_id: int) -> None:
    lines = [line(2, "1-1"), line(3, "2-1", status=REFUNDED, amount_fen=5900)]
    report = run(store, host, session_id, lines)
    assert (report["added"], report["refunded"], report["amount_added_fen"]) == (1, 1, 6980)
    assert stored(store, session_id)["douyin:2-1"][0] == REFUNDED
    assert records(store, session_id)[0].after == {"orders": 1, "items": 1, "amount_fen": 6980}
    assert run(store, host, session_id, lines)["repeated"] == 2


def test_a_dry_run_stores_nothing(store: Any, host: auth.Actor, session_id: int) -> None:
    lines = [line(2, "1-1"), line(3, "2-1")]
    report = run(store, host, session_id, lines, dry_run=True)
    assert report["dry_run"] is True and report["added"] == 2 and "import_id" not in report
    assert stored(store, session_id) == {} and records(store, session_id) == []
    run(store, host, session_id, lines[:1])
    refund = run(store, host, session_id, [dataclasses.replace(lines[0], status=REFUNDED), lines[1]], dry_run=True)
    assert (refund["refunded"], refund["added"]) == (1, 1)
    assert stored(store, session_id)["douyin:1-1"][0] == PAID and len(records(store, session_id)) == 1


def test_who_may_import(store: Any, host: auth.Actor, session_id: int) -> None:
    lines = [line(2, "1-1")]
    for who in (actor(store, "official", "official"), actor(store, "host-2", "host")):
        with pytest.raises(Forbidden):
            run(store, who, session_id, lines)
        with pytest.raises(Forbidden):
            run(store, who, session_id, lines, dry_run=True)
        with pytest.raises(Forbidden):
            service.save_mapping(store, actor=who, session_id=session_id, platform="douyin", platform_name="x",
                                 spec="", sku="DRIED-1KG")
    assert stored(store, session_id) == {} and records(store, session_id) == []
    with pytest.raises(NotFound):
        run(store, host, 424242, lines)
    assert run(store, actor(store, "admin", "admin"), session_id, lines)["added"] == 1
    # The command line acts as an admin with no user of its own: recorded without one.
    cli = auth.Actor(user_id=0, name="livesale", role="admin")
    run(store, cli, session_id, [line(3, "2-1")])
    assert [r.user_id for r in records(store, session_id)][-1] is None


def test_window_of_a_session_that_has_not_run(store: Any, host: auth.Actor) -> None:
    planned = new_session(store, host, ran=False, scheduled_start=START.isoformat(), planned_duration_min=60)
    lines = [line(2, "1-1", minute=65), line(3, "2-1", minute=75)]  # 21:05 in, 21:15 out (plan ends 21:00)
    report = run(store, host, planned, lines)
    assert report["added"] == 1 and report["skipped"] == [{"row": 3, "reason": "outside_window"}]
    unplanned = new_session(store, host, ran=False)
    with pytest.raises(Conflict) as refused:
        run(store, host, unplanned, lines)
    assert refused.value.code == "no_window"


def test_bad_platform_or_window_is_refused(store: Any, host: auth.Actor, session_id: int) -> None:
    for kw, field in (({"platform": "youzan"}, "platform"), ({"window_minutes": 1441}, "window_minutes"),
                      ({"window_minutes": -1}, "window_minutes"), ({"window_minutes": "1.5"}, "window_minutes")):
        with pytest.raises(InvalidInput) as refused:
            run(store, host, session_id, [line(2, "1-1")], **kw)
        assert refused.value.field == field
    assert records(store, session_id) == []


def test_platform_lines_never_move_the_running_totals(store: Any, host: auth.Actor) -> None:
    session = session_service.create_session(store, actor=host, data=validation.parse_session(APRICOT_SESSION))
    session_service.start_session(store, actor=host, session_id=session.id)
    order_service.record_orders(store, actor=host, session_id=session.id,
                                orders=[order_input({"sku": "APRICOT-5KG", "quantity": 2})])
    before = store.totals.read(session_id=session.id)
    now = datetime.now(CN)
    lines = [dataclasses.replace(line(2 + i, f"{i}-1"), paid_at=now) for i in range(5)]
    assert run(store, host, session.id, lines)["added"] == 5
    after = store.totals.read(session_id=session.id)
    assert before is not None and after is not None and after.figures == before.figures
    assert session_service.live_totals(store, session_id=session.id).figures.amount_fen == 2 * 6980


# --- livesale import ------------------------------------------------------------------------------------


def test_the_import_command(runner: Any, store: Any, host: auth.Actor, session_id: int, tmp_path: Any) -> None:
    from livesale.cli import main
    from tests.imports_samples import export_files, sample_lines

    lines = sample_lines(6, start=START + timedelta(minutes=5), statuses=("paid", "paid", "not_paid"),
                         products=(("APRICOT-5KG", "鲜杏", "5斤", 6980), ("DRIED-1KG", "杏干", "1公斤", 5900)))
    paths = []
    for name, content in export_files("taobao", lines, fmt="csv-gb18030"):
        paths.append(tmp_path / name)
        paths[-1].write_bytes(content)
    args = ["import", *map(str, paths), "--session", str(session_id), "--platform", "taobao"]
    paid = [x for x in lines if x.status == "paid"]
    dry = runner.invoke(main, [*args, "--dry-run"])
    assert dry.exit_code == 0, dry.output
    assert dry.output.startswith("dry run, nothing stored: 6 rows of a taobao export")
    assert f"added     {len(paid)} lines, ¥{sum(x.amount_fen for x in paid) // 100:,}." in dry.output
    assert "never paid: rows 4, 7" in dry.output and records(store, session_id) == []
    done = runner.invoke(main, args)
    assert done.exit_code == 0 and "import 1 recorded" in done.output
    assert len(stored(store, session_id)) == len(paid) and records(store, session_id)[0].user_id is None
    again = runner.invoke(main, args)
    assert f"repeated  {len(paid)} " in again.output and "added     0 lines" in again.output

    bad = tmp_path / "bad.csv"
    bad.write_bytes("external_id,sku,name,quantity,amount_yuan,paid_at\r\n1,APRICOT-5KG,杏,1,abc,2026-06-01 20:30\r\n"
                    .encode())
    refused = runner.invoke(main, ["import", str(bad), "--session", str(session_id), "--platform", "generic"])
    assert refused.exit_code == 1 and refused.output.count("\n") == 1 and "row 2" in refused.output, refused.output
    missing = runner.invoke(main, ["import", str(bad), "--session", "424242", "--platform", "generic"])
    assert missing.exit_code == 1 and "no session 424242" in missing.output
    assert len(records(store, session_id)) == 2
