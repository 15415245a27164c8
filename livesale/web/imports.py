"""Importing a platform's order export: the API route and the session page's upload, confirm and mapping forms.

Two blueprints, guarded differently:

* ``imports_api`` — ``POST /api/v1/sessions/<id>/imports`` (multipart): a bearer token, or the login
  cookie with ``X-CSRFToken``, like the rest of the API.
* ``imports`` — the session page's forms (CSRF-protected). An upload is first a dry run: its report is
  shown on the session page and the host confirms it. The confirmation imports *the bytes that were
  checked*, not whatever the browser sends next: the upload is kept in the instance folder
  (``import-uploads/``, one file per upload, named by session, user and the content's SHA-256) for
  ``PENDING_TTL_S``. Picking the file again would risk importing another file than the one reviewed,
  and the signed cookie session holds 4 KB, far less than an export. Several workers and processes
  share the instance folder, so whichever serves the confirmation finds the upload.

The core does the work (``core.imports.service``); this module reads requests and renders.
"""

from __future__ import annotations

import json
import os
import re
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from flask import Blueprint, Flask, Response, current_app, flash, g, jsonify, redirect, request, url_for
from flask.typing import ResponseReturnValue
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_login import login_required

from livesale.core.errors import DomainError, InvalidInput
from livesale.core.imports import service
from livesale.core.imports.parsing import ExportUnreadable
from livesale.core.sessions import SessionInfo, get_manageable
from livesale.extensions import backend

from .api import _session_in_range
from .auth import api_auth
from .i18n import money
from .login import current_actor
from .names import PLATFORMS
from .pages import session_form_for

api_bp = Blueprint("imports_api", __name__, url_prefix="/api/v1")
bp = Blueprint("imports", __name__)

#: An upload larger than this is a 413 (exports of 100,000 lines are about 30 MB as CSV, 10 MB as XLSX).
DEFAULT_MAX_BYTES = 64 * 1024 * 1024
#: How long an upload waits for its confirmation on the session page.
PENDING_TTL_S = 3600
_TRUE, _FALSE = ("1", "true"), ("0", "false")
_SHA = re.compile(r"[0-9a-f]{64}")
#: The multipart fields of the API (``csrf_token``: sent by a page's form, ignored; the header is what counts).
_API_FIELDS = frozenset({"file", "platform", "dry_run", "window_minutes", "csrf_token"})

#: Why a line was skipped, for people.
REASONS = {
    service.NOT_PAID_REASON: _l("never paid"),
    service.OUTSIDE_WINDOW: _l("paid outside the session's time"),
    service.UNMATCHED_PRODUCT: _l("product not matched"),
    service.DUPLICATE_IN_FILE: _l("the same line twice in the file"),
}


def platform_choices() -> list[tuple[str, str]]:
    """The import's platforms by name, in the form's order (generic last)."""
    return [*((code, str(name)) for code, name in PLATFORMS.items()),
            ("generic", _("livesale's own columns (generic)"))]


# --- reading the request -----------------------------------------------------------------------------------


@api_bp.url_value_preprocessor
@bp.url_value_preprocessor
def _limit_upload(_endpoint: str | None, _values: dict[str, Any] | None) -> None:
    """Exports are larger than the API's JSON bodies (MAX_CONTENT_LENGTH): their own limit. Set in a URL
    value preprocessor because those run before every ``before_request`` hook, and one of those reads
    form bodies (web.observe's NUL check) with the default limit. The page blueprint checks its CSRF token
    in each view (``_owner_form``), not in CSRFProtect's app-wide hook, for the same reason."""
    if request.method == "POST":
        request.max_content_length = current_app.config.get("IMPORT_MAX_BYTES", DEFAULT_MAX_BYTES)


def _dry_run_arg(raw: str | None) -> bool:
    if raw is None or raw in _FALSE:
        return False
    if raw in _TRUE:
        return True
    raise InvalidInput("must be 1 (a dry run: nothing is stored) or 0", field="dry_run")


def _uploaded_files() -> list[tuple[str, bytes]]:
    files = []
    for upload in request.files.getlist("file"):
        name = os.path.basename((upload.filename or "").replace("\\", "/"))[:120] or "upload"
        files.append((name, upload.read()))
    return files


# --- the API -----------------------------------------------------------------------------------------------


@api_bp.post("/sessions/<int:session_id>/imports")
@api_auth
@_session_in_range
def import_export(session_id: int) -> Response:
    """Import a platform's order export (multipart: ``file``, ``platform``, ``dry_run``, ``window_minutes``).

    201 with the report for an import (its ``import_id``), 200 for a dry run (nothing stored).
    """
    # Who and which session first (403, 404), then the request (422).
    get_manageable(backend.store, actor=g.actor, session_id=session_id)
    if request.mimetype != "multipart/form-data":
        raise InvalidInput("send the export as multipart/form-data: the file as file, with platform", field="file")
    for name in [*request.form.keys(), *request.files.keys()]:
        if name not in _API_FIELDS:  # as the JSON API refuses unknown fields: a misspelt one is not ignored
            raise InvalidInput("unknown field", field=name.replace("\x00", "\\u0000") or "(unnamed)")
    dry_run = _dry_run_arg(request.form.get("dry_run"))
    outcome = service.import_files(
        backend.store, actor=g.actor, session_id=session_id, platform=request.form.get("platform", ""),
        files=_uploaded_files(), dry_run=dry_run, window_minutes=request.form.get("window_minutes"),
    )
    response = jsonify(outcome.report())
    response.status_code = 200 if dry_run else 201
    return response


# --- uploads waiting for their confirmation ------------------------------------------------------------


class PendingUploads:
    """Uploads kept between their dry run and its confirmation: ``<key>.json`` (what was asked, the
    dry run's report) and ``<key>.<n>`` (the files' bytes), under ``folder``. A key is
    ``<session>-<user>-<sha256>``: only the person who uploaded can confirm, on that session."""

    def __init__(self, folder: Path, ttl_s: int = PENDING_TTL_S):
        self.folder = folder
        self.ttl_s = ttl_s

    @staticmethod
    def key(session_id: int, user_id: int, sha256: str) -> str:
        return f"{session_id}-{user_id}-{sha256}"

    def _write(self, path: Path, data: bytes) -> None:
        # Whole or not at all: a worker reading at the same moment never sees half a file.
        fd, tmp = tempfile.mkstemp(dir=self.folder, prefix=".tmp-")
        try:
            with os.fdopen(fd, "wb") as out:
                out.write(data)
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise

    def put(self, key: str, files: list[tuple[str, bytes]], meta: dict[str, Any]) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        self.expire()
        for n, (_name, content) in enumerate(files):
            self._write(self.folder / f"{key}.{n}", content)
        meta = {**meta, "names": [name for name, _content in files], "stored_at": time.time()}
        self._write(self.folder / f"{key}.json", json.dumps(meta, ensure_ascii=False).encode())

    def meta(self, key: str) -> dict[str, Any] | None:
        path = self.folder / f"{key}.json"
        try:
            meta: dict[str, Any] = json.loads(path.read_bytes())
        except (OSError, ValueError):
            return None
        if time.time() - meta.get("stored_at", 0) > self.ttl_s:
            return None
        return meta

    def update(self, key: str, meta: dict[str, Any]) -> None:
        self._write(self.folder / f"{key}.json", json.dumps(meta, ensure_ascii=False).encode())

    def files(self, key: str, meta: dict[str, Any]) -> list[tuple[str, bytes]] | None:
        try:
            return [(name, (self.folder / f"{key}.{n}").read_bytes()) for n, name in enumerate(meta["names"])]
        except OSError:
            return None

    def drop(self, key: str) -> None:
        for path in self.folder.glob(f"{key}.*"):
            path.unlink(missing_ok=True)

    def expire(self) -> None:
        """Forget uploads older than the time to live (their files too)."""
        cutoff = time.time() - self.ttl_s
        for path in self.folder.glob("*"):
            try:
                if path.stat().st_mtime < cutoff:
                    path.unlink(missing_ok=True)
            except OSError:
                continue


def pending_uploads() -> PendingUploads:
    return PendingUploads(Path(current_app.instance_path) / "import-uploads")


def _unmatched(outcome: service.ImportOutcome) -> list[dict[str, Any]]:
    return [{"name": u.name, "spec": u.spec, "code": u.code, "rows": list(u.rows)} for u in outcome.unmatched]


def _check_meta(outcome: service.ImportOutcome, *, platform: str, window: int) -> dict[str, Any]:
    return {"platform": platform, "window_minutes": window, "report": outcome.report(),
            "skipped_by_reason": outcome.skipped_by_reason(), "unmatched": _unmatched(outcome),
            "sha256": outcome.sha256}


# --- the session page's forms -----------------------------------------------------------------------------


def _owner_form(session_id: int) -> tuple[SessionInfo, Any]:
    """A form posted by the session's host (or an admin), with a valid CSRF token, and who posted it."""
    info = session_form_for(session_id)
    actor = current_actor()
    assert actor is not None
    return info, actor


def _back(info: SessionInfo, key: str | None = None) -> ResponseReturnValue:
    args = {"import": key} if key else {}
    return redirect(url_for("review.report", session_id=info.id, **args) + "#imports")


# The parser's problems are English (the API's words); the page says them in its own language.
_UNREADABLE: list[tuple[re.Pattern[str], Callable[..., str]]] = [(re.compile(p), f) for p, f in [
    (r"^(?P<value>'.*') is not an amount in yuan$", lambda value: _("%(value)s is not an amount in yuan", value=value)),
    (r"^the amount is empty$", lambda: _("The amount is empty")),
    (r"^(?P<value>'.*') is not a quantity", lambda value: _("%(value)s is not a quantity (a whole number from 1)",
                                                             value=value)),
    (r"^(?P<value>'.*') is not a date and time$", lambda value: _("%(value)s is not a date and time", value=value)),
    (r"^the id is empty$", lambda: _("The id is empty")),
    (r"^the id is longer than (?P<n>[0-9]+) characters$", lambda n: _("The id is longer than %(n)s characters", n=n)),
    (r"^(?P<value>'.*') is an id a spreadsheet turned into a number",
     lambda value: _("%(value)s is an id that a spreadsheet turned into a number; it cannot be recovered: export "
                     "the file again and import it without opening it in Excel", value=value)),
    (r"^the header has no column (?P<names>.*)$", lambda names: _("The header has no column %(names)s", names=names)),
    (r"^no header row found.*\((?P<names>.*)\)$",
     lambda names: _("No header row names this platform's columns (%(names)s): check the platform chosen",
                     names=names)),
    (r"is an Excel 97-2003", lambda: _("An Excel 97-2003 (.xls) file: save it as .xlsx or CSV and import that")),
    (r"is not a CSV", lambda: _("Not a CSV (UTF-8 or GB18030) or XLSX file")),
    (r"^a Taobao import needs the order report",
     lambda: _("A Taobao import needs the order report (订单报表) as well as the item report")),
    (r"^the line is (?P<status>.*) but has no payment time$",
     lambda status: _("The line is “%(status)s” but has no payment time", status=status)),
    (r"^order (?P<ref>.*) is not in the order report$",
     lambda ref: _("Order %(ref)s is not in the order report", ref=ref)),
    (r"^no file was sent$", lambda: _("No file was sent")),
]]


def unreadable_in_words(exc: ExportUnreadable) -> str:
    """Where and what, in the page's language: ``file.csv：第 3 行，“订单应付金额”列：'12,3x' 不是以元计的金额``."""
    detail = next((f(**m.groupdict()) for p, f in _UNREADABLE if (m := p.search(exc.detail))), exc.detail)
    if exc.row is not None and exc.column is not None:
        detail = _("row %(row)s, column “%(column)s”: %(problem)s", row=exc.row, column=exc.column, problem=detail)
    elif exc.row is not None:
        detail = _("row %(row)s: %(problem)s", row=exc.row, problem=detail)
    return f"{exc.file}: {detail}" if exc.file else detail


def _refusal(exc: DomainError) -> str:
    """A refusal in words for the page (an unreadable file's message names its row and column)."""
    if isinstance(exc, ExportUnreadable):
        return _("The file cannot be read: %(problem)s", problem=unreadable_in_words(exc))
    names = {"file": _("File"), "platform": _("Platform"), "window_minutes": _("Window (minutes)"),
             "sku": _("Product")}
    where = names.get(exc.field or "", exc.field or "")
    return f"{where}: {exc.message}" if where else exc.message


@bp.post("/sessions/<int:session_id>/imports")
@login_required
def upload(session_id: int) -> ResponseReturnValue:
    """The host uploads an export: a dry run, whose report the session page shows with a confirm button."""
    info, actor = _owner_form(session_id)
    files = _uploaded_files()
    platform, window = request.form.get("platform", ""), request.form.get("window_minutes") or None
    try:
        platform, window_minutes = service.parse_platform(platform), service.parse_window(window)
        outcome = service.import_files(backend.store, actor=actor, session_id=info.id, platform=platform,
                                       files=files, dry_run=True, window_minutes=window_minutes)
    except DomainError as exc:
        flash(_refusal(exc), "error")
        return _back(info)
    key = PendingUploads.key(info.id, actor.user_id, outcome.sha256)
    pending_uploads().put(key, files, _check_meta(outcome, platform=platform, window=window_minutes))
    return _back(info, outcome.sha256)


def _pending(info: SessionInfo, actor: Any, sha256: str) -> tuple[PendingUploads, str, dict[str, Any]] | None:
    if not _SHA.fullmatch(sha256):
        return None
    uploads = pending_uploads()
    key = PendingUploads.key(info.id, actor.user_id, sha256)
    meta = uploads.meta(key)
    return None if meta is None else (uploads, key, meta)


@bp.post("/sessions/<int:session_id>/imports/confirm")
@login_required
def confirm(session_id: int) -> ResponseReturnValue:
    """The host confirms a dry run: the same bytes are imported for real."""
    info, actor = _owner_form(session_id)
    found = _pending(info, actor, request.form.get("sha256", ""))
    files = found[0].files(found[1], found[2]) if found else None
    if found is None or files is None:
        flash(_("That upload is no longer kept (after an hour, or once imported): choose the file again."), "error")
        return _back(info)
    uploads, key, meta = found
    try:
        outcome = service.import_files(backend.store, actor=actor, session_id=info.id, platform=meta["platform"],
                                       files=files, dry_run=False, window_minutes=meta["window_minutes"])
    except DomainError as exc:
        flash(_refusal(exc), "error")
        return _back(info)
    uploads.drop(key)
    flash(_("Imported: %(added)s new lines (%(amount)s), %(repeated)s already imported, %(refunded)s refunded, "
            "%(skipped)s skipped.", added=outcome.added, amount=money(outcome.amount_added_fen),
            repeated=outcome.repeated, refunded=outcome.refunded, skipped=len(outcome.skipped)), "ok")
    return _back(info)


@bp.post("/sessions/<int:session_id>/imports/mappings")
@login_required
def save_mapping(session_id: int) -> ResponseReturnValue:
    """The host maps a platform's product name (+ spec) to one of the session's products; the upload
    being checked, if any, is checked again with it."""
    info, actor = _owner_form(session_id)
    sha256 = request.form.get("sha256", "")
    try:
        service.save_mapping(backend.store, actor=actor, session_id=info.id,
                             platform=request.form.get("platform", ""),
                             platform_name=request.form.get("platform_name", ""),
                             spec=request.form.get("spec", ""), sku=request.form.get("sku", ""))
    except DomainError as exc:
        flash(_refusal(exc), "error")
        return _back(info, sha256 if _SHA.fullmatch(sha256) else None)
    flash(_("Saved: %(name)s is %(product)s from now on, in this village's sessions.",
            name=request.form.get("platform_name", ""),
            product=next((p.name for p in info.products if p.sku == request.form.get("sku")), "")), "ok")
    found = _pending(info, actor, sha256)
    if found is None:
        return _back(info)
    uploads, key, meta = found
    files = uploads.files(key, meta)
    if files is not None:
        try:
            outcome = service.import_files(backend.store, actor=actor, session_id=info.id, platform=meta["platform"],
                                           files=files, dry_run=True, window_minutes=meta["window_minutes"])
        except DomainError as exc:
            flash(_refusal(exc), "error")
            return _back(info)
        uploads.update(key, {**meta, **_check_meta(outcome, platform=meta["platform"],
                                                   window=meta["window_minutes"])})
    return _back(info, sha256)


# --- what the session page shows -------------------------------------------------------------------------


def imports_panel(info: SessionInfo) -> dict[str, Any] | None:
    """The session page's imports section: past imports for every reader; the forms and the upload
    being checked (``?import=<sha256>``) for its host and admins."""
    actor = current_actor()
    if actor is None or not actor.can_read(info.owner_id):
        return None
    can_import = actor.can_manage(info.owner_id)
    check = None
    if can_import:
        found = _pending(info, actor, request.args.get("import", ""))
        if found is not None:
            check = found[2]
    return {
        "can_import": can_import,
        "imports": service.list_imports(backend.store, actor=actor, session_id=info.id, limit=20),
        "platforms": platform_choices(),
        "default_platform": info.platform.strip().lower() if info.platform.strip().lower() in PLATFORMS else "",
        "window_minutes": service.DEFAULT_WINDOW_MINUTES,
        "max_window": service.MAX_WINDOW_MINUTES,
        "check": check,
        "reasons": {k: str(v) for k, v in REASONS.items()},
        "products": [(p.sku, p.name) for p in info.products],
    }


def init_app(app: Flask) -> None:
    """Register both blueprints. The API one is exempt from form CSRF (web.auth checks X-CSRFToken); the
    page one checks the form's token in each view (``_owner_form``), after ``_limit_upload``."""
    from .login import csrf

    csrf.exempt(api_bp)
    csrf.exempt(bp)
    app.register_blueprint(api_bp)
    app.register_blueprint(bp)
    app.jinja_env.globals["imports_panel"] = imports_panel
