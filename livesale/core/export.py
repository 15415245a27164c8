"""``livesale export``: every session, product, order and result as CSV files in one zip (no Flask).

The files are read in one read transaction, so they agree with each other
even while a server records orders. Each CSV is UTF-8 with a byte-order mark
(Excel on Chinese Windows needs it), with money both as integer fen (exact,
for programs) and as yuan with two decimals (for people), times in UTC
(ISO 8601), and text that a spreadsheet would run as a formula neutralised
(``core.spreadsheet``). ``manifest.json`` gives each file's rows and sums, so
a reader can check that nothing was lost on the way.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import tempfile
import zipfile
from collections.abc import Callable, Iterable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from . import tables as t
from .backup import BackupError, prepare_output, schema_revision
from .db import read_transaction
from .spreadsheet import BOM, csv_line, yuan

MANIFEST = "manifest.json"


def livesale_version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("livesale")
    except PackageNotFoundError:  # pragma: no cover - running from a bare source tree
        return "unknown"


def _iso(value: datetime | None) -> str | None:
    if value is None:
        return None
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z")


@dataclasses.dataclass(slots=True)
class _Sums:
    """Rows and column sums of one file, for the manifest."""

    columns: tuple[str, ...]
    rows: int = 0
    sums: dict[str, int] = dataclasses.field(default_factory=dict)
    by: dict[str, dict[str, int]] = dataclasses.field(default_factory=dict)

    def add(self, values: dict[str, Any], *, group: str | None = None) -> None:
        self.rows += 1
        for name in self.columns:
            self.sums[name] = self.sums.get(name, 0) + (values[name] or 0)
        if group is not None:
            slot = self.by.setdefault(group, {"rows": 0, **{n: 0 for n in self.columns}})
            slot["rows"] += 1
            for name in self.columns:
                slot[name] += values[name] or 0

    def manifest(self) -> dict[str, Any]:
        out: dict[str, Any] = {"rows": self.rows, "sums": dict(self.sums)}
        for name, total in self.sums.items():
            if name.endswith("_fen"):
                out["sums"][name.removesuffix("_fen") + "_yuan"] = str(yuan(total))
        if self.by:
            out["by_status"] = self.by
        return out


@dataclasses.dataclass(frozen=True, slots=True)
class _File:
    name: str
    columns: tuple[str, ...]
    #: Integer columns summed in the manifest.
    summed: tuple[str, ...]
    #: Rows as dicts with the columns' values (yuan columns are derived from their fen twins).
    rows: Callable[[sa.Connection], Iterable[dict[str, Any]]]
    #: The column whose value groups the manifest's sums (``status``), if any.
    group: str | None = None


def _money(row: dict[str, Any], *names: str) -> dict[str, Any]:
    for name in names:
        fen = row[name]
        row[name.removesuffix("_fen") + "_yuan"] = None if fen is None else yuan(fen)
    return row


def _sessions(conn: sa.Connection) -> Iterator[dict[str, Any]]:
    s, u = t.live_sessions, t.users
    query = (
        sa.select(s, u.c.name.label("owner"))
        .select_from(s.outerjoin(u, u.c.id == s.c.owner_id))
        .order_by(s.c.id)
    )
    for row in conn.execute(query).mappings():
        yield _money({
            "id": row["id"], "title": row["title"], "village": row["village"],
            # One cell; hosts' names hold no "; " in practice, and the order is kept.
            "hosts": "; ".join(str(h) for h in row["hosts"] or []),
            "platform": row["platform"], "status": row["status"], "owner": row["owner"],
            "scheduled_start": _iso(row["scheduled_start"]), "planned_duration_min": row["planned_duration_min"],
            "started_at": _iso(row["started_at"]), "ended_at": _iso(row["ended_at"]),
            "goal_fen": row["goal_fen"], "currency": row["currency"], "timezone": row["timezone"],
            "created_at": _iso(row["created_at"]),
        }, "goal_fen")


def _products(conn: sa.Connection) -> Iterator[dict[str, Any]]:
    p = t.products
    for row in conn.execute(sa.select(p).order_by(p.c.session_id, p.c.position, p.c.id)).mappings():
        yield _money({
            "session_id": row["session_id"], "position": row["position"], "sku": row["sku"], "name": row["name"],
            "unit": row["unit"], "unit_price_fen": row["unit_price_fen"], "stock": row["stock"],
        }, "unit_price_fen")


def _orders(conn: sa.Connection) -> Iterator[dict[str, Any]]:
    o = t.orders
    query = sa.select(o).order_by(o.c.session_id, o.c.created_at, o.c.id)
    # Streamed: a session can hold a million orders.
    for row in conn.execute(query.execution_options(yield_per=5000)).mappings():
        yield _money({
            "session_id": row["session_id"], "id": str(row["id"]), "created_at": _iso(row["created_at"]),
            "minute": row["minute"], "sku": row["sku"], "quantity": row["quantity"],
            "unit_price_fen": row["unit_price_fen"], "amount_fen": row["amount_fen"],
            "buyer_region": row["buyer_region"], "channel": row["channel"], "external_id": row["external_id"],
            "status": row["status"], "refunded_at": _iso(row["refunded_at"]),
        }, "unit_price_fen", "amount_fen")


def _platform_lines(conn: sa.Connection) -> Iterator[dict[str, Any]]:
    p = t.platform_lines
    query = sa.select(p).order_by(p.c.session_id, p.c.paid_at, p.c.id)
    for row in conn.execute(query.execution_options(yield_per=5000)).mappings():
        yield _money({
            "session_id": row["session_id"], "line_id": row["line_id"], "platform": row["platform"],
            "order_ref": row["order_ref"], "sku": row["sku"], "quantity": row["quantity"],
            "amount_fen": row["amount_fen"], "paid_at": _iso(row["paid_at"]), "province": row["province"],
            "city": row["city"], "status": row["status"], "refunded_at": _iso(row["refunded_at"]),
            "import_id": row["import_id"],
        }, "amount_fen")


def _final_decisions(conn: sa.Connection) -> Iterator[dict[str, Any]]:
    d, u = t.final_decisions, t.users
    query = (sa.select(d, u.c.name.label("by")).select_from(d.outerjoin(u, u.c.id == d.c.user_id))
             .order_by(d.c.session_id, d.c.created_at, d.c.id))
    for row in conn.execute(query).mappings():
        yield {"session_id": row["session_id"], "created_at": _iso(row["created_at"]), "action": row["action"],
               "source": row["source"], "reason": row["reason"], "by": row["by"]}


def _results(conn: sa.Connection) -> Iterator[dict[str, Any]]:
    r = t.session_results
    for row in conn.execute(sa.select(r).order_by(r.c.session_id)).mappings():
        yield _money({
            "session_id": row["session_id"], "computed_at": _iso(row["computed_at"]),
            "amount_fen": row["amount_fen"], "orders": row["orders"], "items": row["items"],
            "refunded_orders": row["refunded_orders"], "refunded_fen": row["refunded_fen"],
            "peak_minute": row["peak_minute"], "duration_s": row["duration_s"],
        }, "amount_fen", "refunded_fen")


def _result_parts(conn: sa.Connection, column: str) -> Iterator[tuple[int, Any]]:
    r = t.session_results
    for session_id, value in conn.execute(sa.select(r.c.session_id, r.c[column]).order_by(r.c.session_id)):
        yield int(session_id), value


def _result_products(conn: sa.Connection) -> Iterator[dict[str, Any]]:
    for session_id, by_product in _result_parts(conn, "by_product"):
        for sku, (quantity, amount) in sorted(by_product.items()):
            yield _money({"session_id": session_id, "sku": sku, "quantity": quantity, "amount_fen": amount},
                         "amount_fen")


def _result_regions(conn: sa.Connection) -> Iterator[dict[str, Any]]:
    for session_id, by_region in _result_parts(conn, "by_region"):
        for region, (orders, amount) in sorted(by_region.items()):
            yield _money({"session_id": session_id, "buyer_region": region, "orders": orders,
                          "amount_fen": amount}, "amount_fen")


def _result_minutes(conn: sa.Connection) -> Iterator[dict[str, Any]]:
    for session_id, timeline in _result_parts(conn, "timeline"):
        for point in timeline:
            yield _money({"session_id": session_id, "minute": point["minute"], "orders": point["orders"],
                          "amount_fen": point["amount_fen"]}, "amount_fen")


FILES = (
    _File("sessions.csv", (
        "id", "title", "village", "hosts", "platform", "status", "owner", "scheduled_start", "planned_duration_min",
        "started_at", "ended_at", "goal_fen", "goal_yuan", "currency", "timezone", "created_at",
    ), ("goal_fen",), _sessions, group="status"),
    _File("products.csv", (
        "session_id", "position", "sku", "name", "unit", "unit_price_fen", "unit_price_yuan", "stock",
    ), (), _products),
    _File("orders.csv", (
        "session_id", "id", "created_at", "minute", "sku", "quantity", "unit_price_fen", "unit_price_yuan",
        "amount_fen", "amount_yuan", "buyer_region", "channel", "external_id", "status", "refunded_at",
    ), ("quantity", "amount_fen"), _orders, group="status"),
    _File("results.csv", (
        "session_id", "computed_at", "amount_fen", "amount_yuan", "orders", "items", "refunded_orders",
        "refunded_fen", "refunded_yuan", "peak_minute", "duration_s",
    ), ("amount_fen", "orders", "items", "refunded_orders", "refunded_fen"), _results),
    _File("result_products.csv", ("session_id", "sku", "quantity", "amount_fen", "amount_yuan"),
          ("quantity", "amount_fen"), _result_products),
    _File("result_regions.csv", ("session_id", "buyer_region", "orders", "amount_fen", "amount_yuan"),
          ("orders", "amount_fen"), _result_regions),
    _File("result_minutes.csv", ("session_id", "minute", "orders", "amount_fen", "amount_yuan"),
          ("orders", "amount_fen"), _result_minutes),
    # The platforms' record of each session (imported exports), kept apart from the live count, and which
    # figures officials confirmed as final.
    _File("platform_lines.csv", (
        "session_id", "line_id", "platform", "order_ref", "sku", "quantity", "amount_fen", "amount_yuan", "paid_at",
        "province", "city", "status", "refunded_at", "import_id",
    ), ("quantity", "amount_fen"), _platform_lines, group="status"),
    _File("final_decisions.csv", ("session_id", "created_at", "action", "source", "reason", "by"), (),
          _final_decisions),
)

_NOTES = {
    "encoding": "UTF-8 with a byte-order mark; CRLF line ends",
    "money": "*_fen: integer fen; *_yuan: the same amount in yuan, exact, two decimals",
    "times": "ISO 8601 in UTC",
    "formulas": "text cells starting with = + - @, a tab or a carriage return are prefixed with ' "
                "so that spreadsheets show them as text",
    "orders": "every order, paid and refunded; totals and results count the paid ones only",
    "platform_lines": "the platforms' order lines imported from their exports (never part of the live count); "
                      "final_decisions says which figures stand",
}


def _write_csv(archive: zipfile.ZipFile, spec: _File, conn: sa.Connection) -> dict[str, Any]:
    """Write one CSV into the archive; its manifest entry (rows, sums, SHA-256 of the bytes)."""
    sums = _Sums(spec.summed)
    digest = hashlib.sha256()
    with archive.open(spec.name, "w") as out:
        def write(text: str) -> None:
            data = text.encode("utf-8")
            digest.update(data)
            out.write(data)

        write(BOM + csv_line(list(spec.columns)))
        for row in spec.rows(conn):
            sums.add(row, group=row[spec.group] if spec.group else None)
            write(csv_line([row[c] for c in spec.columns]))
    return {**sums.manifest(), "sha256": digest.hexdigest()}


@dataclasses.dataclass(frozen=True, slots=True)
class ExportReport:
    path: Path
    size_bytes: int
    manifest: dict[str, Any]


def export_zip(engine: sa.Engine, path: Path, *, overwrite: bool = False) -> ExportReport:
    """Write every session, product, order and result of ``engine``'s database to the zip ``path``.

    Raises ``BackupError`` (one line for the user) if ``path`` exists and not ``overwrite``, or the
    database has no livesale schema.
    """
    path = Path(path).absolute()
    prepare_output(path, overwrite)
    files: dict[str, Any] = {}
    fd, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".part", dir=path.parent)
    os.close(fd)
    tmp = Path(name)
    try:
        with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_DEFLATED) as archive, \
                read_transaction(engine) as conn:
            revision = schema_revision(conn)
            if revision is None:
                raise BackupError("the database has no livesale schema (run livesale db upgrade)")
            exported_at = datetime.now(UTC)
            for spec in FILES:
                files[spec.name] = _write_csv(archive, spec, conn)
            manifest = {
                "livesale_version": livesale_version(),
                "schema_revision": revision,
                "database": engine.dialect.name,
                "exported_at": _iso(exported_at),
                "files": files,
                "notes": _NOTES,
            }
            archive.writestr(MANIFEST, json.dumps(manifest, ensure_ascii=False, indent=2) + "\n")
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return ExportReport(path=path, size_bytes=path.stat().st_size, manifest=manifest)


def describe(report: ExportReport) -> str:
    """One line: ``4 sessions, 12 products, 1,024 orders (¥12,345.60 paid), 3 results``."""
    files = report.manifest["files"]
    paid = files["orders.csv"].get("by_status", {}).get("paid", {}).get("amount_fen", 0)
    return (f"{files['sessions.csv']['rows']:,} sessions, {files['products.csv']['rows']:,} products, "
            f"{files['orders.csv']['rows']:,} orders ({yuan(paid):,} yuan paid), "
            f"{files['results.csv']['rows']:,} results")
