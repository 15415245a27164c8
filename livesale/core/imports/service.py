"""Importing a platform's order export into a session: the platform's record of it.

The file is read by ``parsing.parse_export`` into ``ExportLine``s; this module
decides what each line is to the session and stores the lines that belong:

1. a line id already seen in this file: ``duplicate_in_file`` (the first one counts);
2. never paid: ``not_paid``;
3. paid outside the session's window (its actual start − ``window_minutes`` to its end
   + ``window_minutes``; the planned start and duration for a session that has not run):
   ``outside_window`` — exports carry no live-room id, so the time is all there is;
4. already stored (``<platform>:<line id>``): ``repeated``, or marked refunded if it was
   stored as paid and is now refunded (``refunded``);
5. the product: the line's merchant code equal to one of the session's skus, else a
   saved name mapping (village + platform + product name + spec → sku; a mapping saved
   without a spec covers every spec of that name); else ``unmatched_product``, reported
   with its name, code and rows — never guessed;
6. else stored: ``added`` (paid) or ``refunded`` (paid and refunded before livesale
   first saw it: kept, so a later export repeats it, out of every amount).

Everything is one transaction: a dry run reads and stores nothing, a real import
stores every line and its ``ImportRecord`` (who, when, file names, SHA-256, the
report, the session's platform figures before and after) or nothing. Platform
lines never touch the running totals in Redis: the live count stays the live count.
"""

from __future__ import annotations

import dataclasses
import hashlib
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa

from livesale.models import utcnow

from .. import tables as t
from ..auth import Actor
from ..db import is_sqlite, read_transaction, write_transaction
from ..errors import Conflict, InvalidInput
from ..sessions import SessionInfo, Store, get_session, manageable
from ..validation import SKU_RE
from ..validation import text as valid_text
from .lines import IMPORT_PLATFORMS, NOT_PAID, PAID, REFUNDED, ExportLine

DEFAULT_WINDOW_MINUTES = 10
MAX_WINDOW_MINUTES = 1440
#: Files of one import (Taobao: the order report and the item report).
MAX_FILES = 2

#: Why a line was not imported.
NOT_PAID_REASON, OUTSIDE_WINDOW, UNMATCHED_PRODUCT, DUPLICATE_IN_FILE = (
    "not_paid", "outside_window", "unmatched_product", "duplicate_in_file",
)
SKIP_REASONS = (NOT_PAID_REASON, OUTSIDE_WINDOW, UNMATCHED_PRODUCT, DUPLICATE_IN_FILE)

# Statements are chunked below SQLite's limit of bound parameters (32,766 since 3.32).
_CHUNK = 5_000
# Two imports of one session at once would race on the same line ids: PostgreSQL takes
# this advisory lock (keyed by the session) for the transaction; SQLite's BEGIN IMMEDIATE
# already lets one writer in at a time. Order writers are not held up (no row lock).
_ADVISORY_CLASS = 0x1A4F


@dataclasses.dataclass(frozen=True, slots=True)
class UnmatchedProduct:
    """Lines whose product is neither a session sku nor mapped: what the mapping form offers."""

    name: str
    spec: str
    code: str
    rows: tuple[int, ...]

    def view(self) -> dict[str, Any]:
        """As the API answers it: the spec shown with the name (the mapping is by both)."""
        name = f"{self.name} ({self.spec})" if self.spec else self.name
        return {"name": name, "code": self.code, "rows": list(self.rows)}


@dataclasses.dataclass(frozen=True, slots=True)
class ImportOutcome:
    """What an import did (or a dry run would do)."""

    dry_run: bool
    platform: str
    rows: int
    added: int
    repeated: int
    refunded: int
    amount_added_fen: int
    skipped: tuple[tuple[int, str], ...]
    unmatched: tuple[UnmatchedProduct, ...]
    import_id: int | None = None
    sha256: str = ""
    filename: str = ""

    def report(self) -> dict[str, Any]:
        """The answer of the API, exactly (plus ``import_id`` for a real import)."""
        out: dict[str, Any] = {
            "dry_run": self.dry_run, "platform": self.platform, "rows": self.rows, "added": self.added,
            "repeated": self.repeated, "refunded": self.refunded, "amount_added_fen": self.amount_added_fen,
            "skipped": [{"row": row, "reason": reason} for row, reason in self.skipped],
            "unmatched_products": [u.view() for u in self.unmatched],
        }
        if self.import_id is not None:
            out["import_id"] = self.import_id
        return out

    def skipped_by_reason(self) -> dict[str, list[int]]:
        """Skipped rows grouped by reason, in the order of ``SKIP_REASONS`` (for people)."""
        out: dict[str, list[int]] = {}
        for reason in SKIP_REASONS:
            rows = [row for row, r in self.skipped if r == reason]
            if rows:
                out[reason] = rows
        return out


# --- checking what was asked -----------------------------------------------------------------------


def parse_platform(value: Any) -> str:
    if not isinstance(value, str) or value not in IMPORT_PLATFORMS:
        raise InvalidInput(f"must be one of {', '.join(IMPORT_PLATFORMS)}", field="platform")
    return value


def parse_window(value: Any) -> int:
    """``window_minutes``: a whole number 0–1440, given as digits (a form field) or an int; ``None``: 10."""
    if value is None:
        return DEFAULT_WINDOW_MINUTES
    if isinstance(value, str):
        if not value.isascii() or not value.isdigit() or len(value) > 5:
            raise InvalidInput(f"must be a whole number from 0 to {MAX_WINDOW_MINUTES}", field="window_minutes")
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= MAX_WINDOW_MINUTES:
        raise InvalidInput(f"must be a whole number from 0 to {MAX_WINDOW_MINUTES}", field="window_minutes")
    return value


def content_sha256(files: Sequence[tuple[str, bytes]]) -> str:
    """The SHA-256 an import is recorded with: of the file's bytes (what ``sha256sum FILE`` prints);
    for two files (Taobao), of their two SHA-256s in hex, in the order given, one per line."""
    digests = [hashlib.sha256(content).hexdigest() for _name, content in files]
    if len(digests) == 1:
        return digests[0]
    return hashlib.sha256("".join(d + "\n" for d in digests).encode()).hexdigest()


def _check_files(files: Sequence[tuple[str, bytes]]) -> None:
    if not files:
        raise InvalidInput("send the export as a file (multipart field file)", field="file")
    if len(files) > MAX_FILES:
        raise InvalidInput(f"at most {MAX_FILES} files (Taobao: the order report and the item report)", field="file")
    for _name, content in files:
        if not content:
            raise InvalidInput("the file is empty", field="file")


def session_window(info: SessionInfo, *, window_minutes: int, now: datetime | None = None) -> tuple[datetime, datetime]:
    """When a line's payment must fall to be the session's: its run (a live session: until now, or its
    planned end if later), else its plan, widened by ``window_minutes`` on both sides."""
    margin = timedelta(minutes=window_minutes)
    planned = timedelta(minutes=info.planned_duration_min)
    if info.started_at is not None:
        start = info.started_at
        end = info.ended_at if info.ended_at is not None else max(now or datetime.now(UTC), start + planned)
    elif info.scheduled_start is not None:
        start, end = info.scheduled_start, info.scheduled_start + planned
    else:
        raise Conflict("the session has not run and has no planned start: its time window is unknown "
                       "(give it a planned start first)", code="no_window")
    return start - margin, end + margin


# --- reading what is stored ----------------------------------------------------------------------------


def platform_figures(conn: sa.Connection, *, session_id: int) -> dict[str, int]:
    """The session's platform figures: paid lines (each line counts as an order), items, amount."""
    p = t.platform_lines
    orders, items, amount = conn.execute(
        sa.select(sa.func.count(), sa.func.coalesce(sa.func.sum(p.c.quantity), 0),
                  sa.func.coalesce(sa.func.sum(p.c.amount_fen), 0))
        .where(p.c.session_id == session_id, p.c.status == PAID)
    ).one()
    return {"orders": int(orders), "items": int(items), "amount_fen": int(amount)}


def _mappings(conn: sa.Connection, *, village: str, platform: str) -> dict[tuple[str, str], str]:
    m = t.product_mappings
    rows = conn.execute(
        sa.select(m.c.platform_name, m.c.spec, m.c.sku).where(m.c.village == village, m.c.platform == platform)
    )
    return {(name, spec): sku for name, spec, sku in rows}


def _stored(conn: sa.Connection, *, session_id: int) -> dict[str, str]:
    """line_id → status of the session's platform lines."""
    p = t.platform_lines
    return {line_id: status for line_id, status in conn.execute(
        sa.select(p.c.line_id, p.c.status).where(p.c.session_id == session_id))}


# --- the import ------------------------------------------------------------------------------------


@dataclasses.dataclass(slots=True)
class _Plan:
    new_rows: list[dict[str, Any]] = dataclasses.field(default_factory=list)
    refund_ids: list[str] = dataclasses.field(default_factory=list)
    added: int = 0
    repeated: int = 0
    refunded: int = 0
    amount_added_fen: int = 0
    skipped: list[tuple[int, str]] = dataclasses.field(default_factory=list)
    unmatched: dict[tuple[str, str, str], list[int]] = dataclasses.field(default_factory=dict)


def _plan(lines: Iterable[ExportLine], *, info: SessionInfo, platform: str, window: tuple[datetime, datetime],
          stored: dict[str, str], mappings: dict[tuple[str, str], str], now: datetime) -> _Plan:
    plan = _Plan()
    skus = {p.sku for p in info.products}
    seen: set[str] = set()
    start, end = window
    for line in lines:
        line_id = f"{platform}:{line.line_id}"
        if line_id in seen:
            plan.skipped.append((line.row, DUPLICATE_IN_FILE))
            continue
        seen.add(line_id)
        if line.status == NOT_PAID or line.paid_at is None:
            plan.skipped.append((line.row, NOT_PAID_REASON))
            continue
        if not start <= line.paid_at <= end:
            plan.skipped.append((line.row, OUTSIDE_WINDOW))
            continue
        known = stored.get(line_id)
        if known is not None:
            if known == PAID and line.status == REFUNDED:
                plan.refund_ids.append(line_id)
                plan.refunded += 1
            else:
                plan.repeated += 1
            continue
        sku = line.merchant_code if line.merchant_code in skus else None
        if sku is None:
            mapped = mappings.get((line.product_name, line.spec)) or mappings.get((line.product_name, ""))
            sku = mapped if mapped in skus else None
        if sku is None:
            plan.skipped.append((line.row, UNMATCHED_PRODUCT))
            plan.unmatched.setdefault((line.product_name, line.spec, line.merchant_code), []).append(line.row)
            continue
        refunded = line.status == REFUNDED
        plan.new_rows.append({
            "line_id": line_id, "order_ref": line.order_ref[:128], "sku": sku, "quantity": line.quantity,
            "amount_fen": line.amount_fen, "paid_at": line.paid_at, "province": line.province[:64],
            "city": line.city[:64], "status": REFUNDED if refunded else PAID, "refunded_at": now if refunded else None,
        })
        if refunded:
            plan.refunded += 1
        else:
            plan.added += 1
            plan.amount_added_fen += line.amount_fen
    return plan


def _lock_imports(conn: sa.Connection, session_id: int) -> None:
    if not is_sqlite(conn):
        conn.execute(sa.select(sa.func.pg_advisory_xact_lock(_ADVISORY_CLASS, session_id)))


_COPY_COLUMNS = ("session_id", "platform", "import_id", "created_at", "line_id", "order_ref", "sku", "quantity",
                 "amount_fen", "paid_at", "province", "city", "status", "refunded_at")


def _insert_lines(conn: sa.Connection, rows: list[dict[str, Any]], base: dict[str, Any]) -> None:
    """Store the new lines. PostgreSQL: COPY (psycopg's executemany sends one INSERT per row, 3 s for
    100,000 lines; COPY takes a fraction of that) in the transaction's own connection. SQLite: executemany."""
    if is_sqlite(conn):
        p = t.platform_lines
        for i in range(0, len(rows), _CHUNK):
            conn.execute(sa.insert(p), [{**base, **row} for row in rows[i:i + _CHUNK]])
        return
    head = tuple(base[c] for c in _COPY_COLUMNS[:4])
    tail = _COPY_COLUMNS[4:]
    driver = conn.connection.driver_connection
    assert driver is not None
    with driver.cursor() as cursor, cursor.copy(
            f"COPY platform_lines ({', '.join(_COPY_COLUMNS)}) FROM STDIN") as copy:
        for row in rows:
            copy.write_row(head + tuple(row[c] for c in tail))


def _write(conn: sa.Connection, *, plan: _Plan, session_id: int, platform: str, import_id: int, now: datetime) -> None:
    p = t.platform_lines
    base = {"session_id": session_id, "platform": platform, "import_id": import_id, "created_at": now}
    _insert_lines(conn, plan.new_rows, base)
    for i in range(0, len(plan.refund_ids), _CHUNK):
        conn.execute(
            sa.update(p)
            .where(p.c.session_id == session_id, p.c.status == PAID, p.c.line_id.in_(plan.refund_ids[i:i + _CHUNK]))
            .values(status=REFUNDED, refunded_at=now)
        )


def import_lines(store: Store, *, actor: Actor, session_id: int, platform: str, lines: Sequence[ExportLine],
                 filename: str = "", sha256: str = "", dry_run: bool = False,
                 window_minutes: int = DEFAULT_WINDOW_MINUTES) -> ImportOutcome:
    """Import lines already read from an export (see the module's docstring for what happens to each)."""
    platform = parse_platform(platform)
    window_minutes = parse_window(window_minutes)
    now = utcnow()
    transaction = read_transaction if dry_run else write_transaction
    with transaction(store.db) as conn:
        info = manageable(conn, actor, session_id)
        window = session_window(info, window_minutes=window_minutes, now=now)
        if not dry_run:
            _lock_imports(conn, session_id)
        plan = _plan(lines, info=info, platform=platform, window=window, stored=_stored(conn, session_id=session_id),
                     mappings=_mappings(conn, village=info.village, platform=platform), now=now)
        outcome = ImportOutcome(
            dry_run=dry_run, platform=platform, rows=len(lines), added=plan.added, repeated=plan.repeated,
            refunded=plan.refunded, amount_added_fen=plan.amount_added_fen, skipped=tuple(sorted(plan.skipped)),
            unmatched=tuple(UnmatchedProduct(name, spec, code, tuple(rows))
                            for (name, spec, code), rows in plan.unmatched.items()),
            sha256=sha256, filename=filename,
        )
        if dry_run:
            return outcome
        before = platform_figures(conn, session_id=session_id)
        import_id = conn.execute(
            sa.insert(t.imports).values(
                session_id=session_id, user_id=actor.user_id if actor.user_id > 0 else None, created_at=now,
                platform=platform, filename=filename[:255], sha256=sha256, report={}, before=before, after=before,
            ).returning(t.imports.c.id)
        ).scalar_one()
        _write(conn, plan=plan, session_id=session_id, platform=platform, import_id=import_id, now=now)
        after = platform_figures(conn, session_id=session_id)
        outcome = dataclasses.replace(outcome, import_id=import_id)
        report = outcome.report()
        del report["import_id"]  # the record's own id
        conn.execute(sa.update(t.imports).where(t.imports.c.id == import_id).values(report=report, after=after))
        return outcome


def import_files(store: Store, *, actor: Actor, session_id: int, platform: str, files: Sequence[tuple[str, bytes]],
                 dry_run: bool = False, window_minutes: int = DEFAULT_WINDOW_MINUTES) -> ImportOutcome:
    """Read the export (``files``: (name, bytes); Taobao's two reports may come as two files) and import it.

    Who may is checked before the file is read (officials, another host's session: 403; no session: 404).
    A file that cannot be read is an ``ExportUnreadable`` (422 naming the row and column): nothing is stored.
    """
    from .parsing import parse_export

    platform = parse_platform(platform)
    window_minutes = parse_window(window_minutes)
    with store.db.connect() as conn:
        info = manageable(conn, actor, session_id)
    _check_files(files)
    lines = parse_export(list(files), platform=platform, timezone=info.timezone)
    return import_lines(
        store, actor=actor, session_id=session_id, platform=platform, lines=lines,
        filename=", ".join(name for name, _content in files), sha256=content_sha256(files),
        dry_run=dry_run, window_minutes=window_minutes,
    )


# --- name mappings ---------------------------------------------------------------------------------------


def save_mapping(store: Store, *, actor: Actor, session_id: int, platform: str, platform_name: Any, spec: Any,
                 sku: Any) -> dict[str, Any]:
    """Map a platform's product name (+ spec) to one of the session's skus, for the session's village
    (its next sessions reuse it). Saving the same name and spec again changes its sku."""
    platform = parse_platform(platform)
    name = valid_text(platform_name, "platform_name", max_length=200, required=True)
    spec = valid_text(spec, "spec", max_length=200)
    if not isinstance(sku, str) or not SKU_RE.match(sku):
        raise InvalidInput("must be one of the session's skus", field="sku")
    m = t.product_mappings
    with write_transaction(store.db) as conn:
        info = manageable(conn, actor, session_id)
        if sku not in {p.sku for p in info.products}:
            raise InvalidInput("must be one of the session's skus", field="sku")
        key = (m.c.village == info.village, m.c.platform == platform, m.c.platform_name == name, m.c.spec == spec)
        updated = conn.execute(sa.update(m).where(*key).values(sku=sku, created_by=actor.user_id or None,
                                                               created_at=utcnow()))
        if not updated.rowcount:
            conn.execute(sa.insert(m).values(village=info.village, platform=platform, platform_name=name, spec=spec,
                                             sku=sku, created_by=actor.user_id or None, created_at=utcnow()))
    return {"village": info.village, "platform": platform, "platform_name": name, "spec": spec, "sku": sku}


def list_mappings(store: Store, *, info: SessionInfo) -> list[dict[str, Any]]:
    """The name mappings of the session's village, every platform."""
    m = t.product_mappings
    with store.db.connect() as conn:
        rows = conn.execute(
            sa.select(m.c.platform, m.c.platform_name, m.c.spec, m.c.sku)
            .where(m.c.village == info.village).order_by(m.c.platform, m.c.platform_name, m.c.spec)
        ).all()
    return [{"platform": r[0], "platform_name": r[1], "spec": r[2], "sku": r[3]} for r in rows]


# --- past imports ---------------------------------------------------------------------------------------


def list_imports(store: Store, *, actor: Actor, session_id: int, limit: int = 50) -> list[dict[str, Any]]:
    """The session's imports, newest first: who, when, which file, what they did (readers of the session)."""
    get_session(store, actor=actor, session_id=session_id)
    i, u = t.imports, t.users
    with store.db.connect() as conn:
        rows = conn.execute(
            sa.select(i.c.id, i.c.created_at, i.c.platform, i.c.filename, i.c.sha256, i.c.report, i.c.before,
                      i.c.after, u.c.name)
            .select_from(i.outerjoin(u, u.c.id == i.c.user_id))
            .where(i.c.session_id == session_id).order_by(i.c.id.desc()).limit(limit)
        ).all()
    return [
        {"id": r[0], "created_at": r[1], "platform": r[2], "filename": r[3], "sha256": r[4], "report": r[5],
         "before": r[6], "after": r[7], "user": r[8]}
        for r in rows
    ]

