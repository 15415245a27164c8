"""``livesale import``: a platform's order export into a session, from the command line.

The work is in ``core.imports.service``, as for the API and the session page. The command acts
as an admin (the operator of the machine may import into any session); the import is recorded
without a user ("command line" on the session page). It prints the report as text and exits 0;
a file that cannot be read, an unknown session or a wrong option is one line on stderr, exit 1.

``livesale.cli`` attaches it with ``register(...)``.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import click
from flask import Flask

from .core.imports.lines import IMPORT_PLATFORMS

#: Runs a command with the app, passed to it as the keyword ``app`` (``livesale.cli.with_app(...)``).
AppDecorator = Callable[[Callable[..., Any]], Callable[..., Any]]

REASON_WORDS = {
    "not_paid": "never paid",
    "outside_window": "paid outside the session's window",
    "unmatched_product": "product not matched",
    "duplicate_in_file": "the same line id twice in the file",
}


def _yuan(fen: int) -> str:
    sign = "-" if fen < 0 else ""
    return f"{sign}¥{abs(fen) // 100:,}.{abs(fen) % 100:02d}"


def _rows(rows: list[int], shown: int = 20) -> str:
    text = ", ".join(map(str, rows[:shown]))
    return text + (f" and {len(rows) - shown} more" if len(rows) > shown else "")


def describe(report: dict[str, Any], *, reasons: dict[str, list[int]]) -> list[str]:
    """The report in plain lines."""
    head = "dry run, nothing stored" if report["dry_run"] else f"import {report['import_id']} recorded"
    out = [
        f"{head}: {report['rows']:,} rows of a {report['platform']} export",
        f"  added     {report['added']:,} lines, {_yuan(report['amount_added_fen'])}",
        f"  repeated  {report['repeated']:,} (imported before)",
        f"  refunded  {report['refunded']:,}",
        f"  skipped   {len(report['skipped']):,}",
    ]
    for reason, rows in reasons.items():
        out.append(f"    {REASON_WORDS.get(reason, reason)}: rows {_rows(rows)}")
    for product in report["unmatched_products"]:
        code = f" [code {product['code']}]" if product["code"] else ""
        out.append(f"  unmatched product {product['name']}{code}: rows {_rows(product['rows'])}")
    return out


def register(main: click.Group, *, existing_data: AppDecorator) -> None:
    """Add ``import`` to ``main`` (``existing_data``: the app, once livesale's tables are known to be there)."""

    @main.command("import")
    @click.argument("files", nargs=-1, required=True, type=click.Path(exists=True, dir_okay=False, path_type=Path))
    @click.option("--session", "session_id", type=click.IntRange(1, 2**31 - 1), required=True,
                  help="The session's id (livesale session list).")
    @click.option("--platform", type=click.Choice(IMPORT_PLATFORMS), required=True,
                  help="Whose export it is (generic: livesale's own column names).")
    @click.option("--dry-run", is_flag=True, help="Report what the import would do; store nothing.")
    @click.option("--window-minutes", type=click.IntRange(0, 1440), default=10, show_default=True,
                  help="Lines paid this long before the start or after the end still count.")
    @existing_data
    def import_command(files: tuple[Path, ...], session_id: int, platform: str, dry_run: bool, window_minutes: int,
                       app: Flask) -> None:
        """Import a platform's order export FILE into a session (Taobao: the order report and the item report).

        CSV (UTF-8, with or without BOM, or GB18030/GBK) or XLSX. Lines already imported are not added
        again; a line now refunded is marked refunded. Prints what was added, repeated, refunded and
        skipped, by row. Nothing is stored for a dry run or for a file that cannot be read.
        """
        from .core import auth
        from .core.errors import DomainError
        from .core.imports import service
        from .extensions import backend

        if len(files) > service.MAX_FILES:
            raise click.UsageError(f"at most {service.MAX_FILES} files (Taobao: the order report and the item report)")
        admin = auth.Actor(user_id=0, name="livesale", role="admin")
        contents = [(path.name, path.read_bytes()) for path in files]
        try:
            outcome = service.import_files(backend.store_of(app), actor=admin, session_id=session_id,
                                           platform=platform, files=contents, dry_run=dry_run,
                                           window_minutes=window_minutes)
        except DomainError as exc:
            where = f" ({exc.field})" if exc.field else ""
            raise click.ClickException(f"{exc.message}{where}") from None
        for line in describe(outcome.report(), reasons=outcome.skipped_by_reason()):
            click.echo(line)
