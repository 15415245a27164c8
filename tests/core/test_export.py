"""``core.export``: the zip's CSVs sum to the API's totals and results, its manifest agrees with the
files, and text a spreadsheet would run as a formula comes out as text."""

from __future__ import annotations

import csv
import hashlib
import io
import json
import zipfile
from collections import defaultdict
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from livesale.core import backup, export, schema
from livesale.core import tables as t
from tests.conftest import APRICOT_SESSION, Api

HOSTILE = ["=cmd|' /C calc'!A0", "+1", "-1", "@SUM(1+1)"]
DANGEROUS_STARTS = ("=", "+", "-", "@", "\t", "\r")


def read_zip(path: Path) -> tuple[dict[str, list[dict[str, str]]], dict[str, Any], dict[str, bytes]]:
    with zipfile.ZipFile(path) as archive:
        raw = {name: archive.read(name) for name in archive.namelist()}
    manifest = json.loads(raw.pop(export.MANIFEST))
    tables = {}
    for name, data in raw.items():
        assert data.startswith("\ufeff".encode()), f"{name} starts with a BOM"
        tables[name] = list(csv.DictReader(io.StringIO(data.decode("utf-8-sig"), newline="")))
    return tables, manifest, raw


def make_sessions(api: Api) -> dict[str, int]:
    products = [
        {"sku": f"H{i}", "name": name, "unit": "box", "unit_price_fen": 1999 + i * 1000, "stock": None}
        for i, name in enumerate(HOSTILE)
    ] + APRICOT_SESSION["products"]
    ids = {}
    for name in ("ended", "live", "scheduled"):
        created = api.post("/api/v1/sessions", json={**APRICOT_SESSION, "title": f"{name} {HOSTILE[0]}",
                                                     "products": products})
        assert created.status_code == 201, created.json
        ids[name] = created.json["id"]
    for name in ("ended", "live"):
        assert api.post(f"/api/v1/sessions/{ids[name]}/start").status_code == 200
        batch = [{"sku": products[i % len(products)]["sku"], "quantity": 1 + i % 3,
                  "buyer_region": HOSTILE[(i // 2) % 4] if i % 2 else "浙江杭州"} for i in range(17)]
        recorded = api.post(f"/api/v1/sessions/{ids[name]}/orders", json={"orders": batch})
        assert recorded.status_code == 201, recorded.json
        refund = recorded.json["orders"][3]["id"]
        assert api.post(f"/api/v1/sessions/{ids[name]}/orders/{refund}/refund").status_code == 200
    assert api.post(f"/api/v1/sessions/{ids['ended']}/end").status_code == 200
    return ids


def test_the_csvs_sum_to_the_totals_and_results(host_api: Api, store: Any, tmp_path: Path) -> None:
    ids = make_sessions(host_api)
    # Tab and carriage return never come through the API (it refuses control characters) but may
    # be in older or imported data: they are put in directly.
    with store.db.begin() as conn:
        conn.execute(sa.update(t.products).where(t.products.c.sku == "H0", t.products.c.session_id == ids["live"])
                     .values(name="\t=1+1"))
        conn.execute(sa.update(t.products).where(t.products.c.sku == "H1", t.products.c.session_id == ids["live"])
                     .values(name="\r@cmd"))
    report = export.export_zip(store.db, tmp_path / "livesale.zip")
    assert not list(tmp_path.glob(".*.part"))
    tables, manifest, raw = read_zip(report.path)
    assert set(tables) == {spec.name for spec in export.FILES}

    orders = tables["orders.csv"]
    assert len(orders) == 34
    paid: dict[int, dict[str, Any]] = defaultdict(lambda: {
        "amount_fen": 0, "orders": 0, "items": 0, "by_product": defaultdict(lambda: [0, 0]),
        "by_region": defaultdict(lambda: [0, 0])})
    for row in orders:
        # Both money columns, exact: yuan is fen / 100 to the cent.
        assert Decimal(row["amount_yuan"]) * 100 == int(row["amount_fen"])
        assert Decimal(row["unit_price_yuan"]) * 100 == int(row["unit_price_fen"])
        if row["status"] != "paid":
            assert row["status"] == "refunded" and row["refunded_at"]
            continue
        figures = paid[int(row["session_id"])]
        amount, quantity = int(row["amount_fen"]), int(row["quantity"])
        figures["amount_fen"] += amount
        figures["orders"] += 1
        figures["items"] += quantity
        figures["by_product"][row["sku"]][0] += quantity
        figures["by_product"][row["sku"]][1] += amount
        region = row["buyer_region"].removeprefix("'") if row["buyer_region"][:2] in {"'" + c for c in "=+-@"} \
            else row["buyer_region"]
        figures["by_region"][region][0] += 1
        figures["by_region"][region][1] += amount

    for name in ("ended", "live"):
        sid = ids[name]
        totals = host_api.get(f"/api/v1/sessions/{sid}/totals").json
        mine = paid[sid]
        assert (mine["amount_fen"], mine["orders"], mine["items"]) == \
            (totals["amount_fen"], totals["orders"], totals["items"])
        assert {sku: {"quantity": q, "amount_fen": a} for sku, (q, a) in mine["by_product"].items()} == \
            {sku: v for sku, v in totals["by_product"].items() if v["quantity"]}
        assert {r: {"orders": c, "amount_fen": a} for r, (c, a) in mine["by_region"].items()} == totals["by_region"]
    assert ids["scheduled"] not in paid

    # results.csv and its breakdowns are the API's results of the ended session.
    results = host_api.get(f"/api/v1/sessions/{ids['ended']}/results").json
    [row] = tables["results.csv"]
    assert int(row["session_id"]) == ids["ended"]
    for key in ("amount_fen", "orders", "items", "refunded_orders", "refunded_fen", "duration_s"):
        assert int(row[key]) == results[key], key
    assert Decimal(row["amount_yuan"]) * 100 == results["amount_fen"]
    assert {r["sku"]: {"quantity": int(r["quantity"]), "amount_fen": int(r["amount_fen"])}
            for r in tables["result_products.csv"]} == \
        {sku: v for sku, v in results["by_product"].items() if v["quantity"]}
    assert sum(int(r["orders"]) for r in tables["result_regions.csv"]) == results["orders"]
    assert [int(r["amount_fen"]) for r in tables["result_minutes.csv"]] == \
        [m["amount_fen"] for m in results["timeline"]]

    sessions = {int(r["id"]): r for r in tables["sessions.csv"]}
    assert {sid: sessions[sid]["status"] for sid in ids.values()} == {v: k for k, v in ids.items()}
    assert sessions[ids["ended"]]["owner"] == "host" and sessions[ids["ended"]]["hosts"] == "阿依古丽"
    assert len(tables["products.csv"]) == 3 * 6

    # The manifest: rows and sums of each file, checked against the files themselves.
    assert manifest["schema_revision"] == schema.head_revision()
    assert manifest["livesale_version"] == export.livesale_version() != ""
    assert manifest["exported_at"].endswith("Z") and manifest["database"] == store.db.dialect.name
    for name, rows in tables.items():
        entry = manifest["files"][name]
        assert entry["rows"] == len(rows), name
        assert entry["sha256"] == hashlib.sha256(raw[name]).hexdigest()
        for column, total in entry["sums"].items():
            if column.endswith("_yuan"):
                assert Decimal(total) * 100 == entry["sums"][column.removesuffix("_yuan") + "_fen"]
            else:
                assert total == sum(int(r[column] or 0) for r in rows), (name, column)
    by_status = manifest["files"]["orders.csv"]["by_status"]
    assert by_status["paid"]["amount_fen"] == sum(p["amount_fen"] for p in paid.values())
    assert by_status["refunded"]["rows"] == 2
    assert "2 results" not in export.describe(report) and "34 orders" in export.describe(report)


def test_formula_text_comes_out_as_text(host_api: Api, store: Any, tmp_path: Path) -> None:
    ids = make_sessions(host_api)
    with store.db.begin() as conn:
        conn.execute(sa.update(t.products).where(t.products.c.sku == "H0", t.products.c.session_id == ids["scheduled"])
                     .values(name="\tTAB=1+1"))
        conn.execute(sa.update(t.orders).where(t.orders.c.sku == "H1").values(buyer_region="\r@cmd"))
    tables, _, _ = read_zip(export.export_zip(store.db, tmp_path / "x.zip").path)
    names = {r["name"] for r in tables["products.csv"]}
    assert {"'+1", "'-1", "'@SUM(1+1)", "'=cmd|' /C calc'!A0", "'\tTAB=1+1"} <= names
    regions = {r["buyer_region"] for r in tables["orders.csv"]}
    assert {"'+1", "'-1", "'@SUM(1+1)", "'=cmd|' /C calc'!A0", "'\r@cmd"} <= regions
    assert {r["buyer_region"] for r in tables["result_regions.csv"] if int(r["session_id"]) == ids["ended"]} >= \
        {"'+1", "'-1"}
    assert tables["sessions.csv"][0]["title"].startswith("ended =cmd"), "only a cell's first character matters"
    for name, rows in tables.items():
        for row in rows:
            for column, value in row.items():
                assert not value.startswith(DANGEROUS_STARTS), (name, column, value)


def test_export_refuses_to_overwrite_and_needs_a_livesale_database(store: Any, tmp_path: Path) -> None:
    kept = tmp_path / "kept.zip"
    kept.write_bytes(b"yesterday")
    with pytest.raises(backup.BackupError, match="exists.*--overwrite"):
        export.export_zip(store.db, kept)
    assert kept.read_bytes() == b"yesterday"
    assert export.export_zip(store.db, kept, overwrite=True).manifest["files"]["orders.csv"]["rows"] == 0
    bare = sa.create_engine(f"sqlite:///{tmp_path / 'bare.sqlite'}")
    with pytest.raises(backup.BackupError, match="no livesale schema"):
        export.export_zip(bare, tmp_path / "bare.zip")
    bare.dispose()
    assert not (tmp_path / "bare.zip").exists()


def test_the_platforms_record_and_the_final_decisions_are_exported(
    app: Any, users: Any, host_api: Api, store: Any, tmp_path: Path
) -> None:
    from tests.core.test_reconcile import add_lines, make_session

    sid = make_session(host_api)["id"]
    lines = add_lines(app, sid, [
        ("douyin:=1+1", "APRICOT-5KG", 2, 13_960, 5, "paid", "=HYPERLINK(\"x\")", "杭州市"),
        ("douyin:6920000000000000001", "DRIED-1KG", 1, 5_900, 12, "paid", "浙江省", "宁波市"),
        ("kuaishou:2001", "DRIED-1KG", 3, 17_700, 30, "refunded", "上海市", "上海市"),
    ])
    assert host_api.post(f"/api/v1/sessions/{sid}/end").status_code == 200
    official = users.api("official")
    assert official.post(f"/api/v1/sessions/{sid}/final", json={"source": "platform", "reason": "+对过账"}
                         ).status_code == 200

    tables, manifest, _ = read_zip(export.export_zip(store.db, tmp_path / "livesale.zip").path)
    exported = tables["platform_lines.csv"]
    assert len(exported) == len(lines) == manifest["files"]["platform_lines.csv"]["rows"]
    assert sum(int(r["amount_fen"]) for r in exported) == sum(x["amount_fen"] for x in lines)
    paid = [r for r in exported if r["status"] == "paid"]
    assert sum(Decimal(r["amount_yuan"]) for r in paid) == Decimal(13_960 + 5_900) / 100
    assert {r["line_id"] for r in exported} == {"douyin:=1+1", "douyin:6920000000000000001", "kuaishou:2001"}
    assert {r["province"] for r in exported} >= {"'=HYPERLINK(\"x\")"}  # a formula stays text
    assert [(r["action"], r["source"], r["reason"], r["by"]) for r in tables["final_decisions.csv"]] == [
        ("confirm", "platform", "'+对过账", "official")]
