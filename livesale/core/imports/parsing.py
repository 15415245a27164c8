"""Reading the platforms' order exports (CSV or XLSX) into ``ExportLine``s.

Header-driven: the header row is found by its names (a title may sit above it), columns come in any
order, extra ones are ignored, known aliases are accepted (``columns.py``). Ids are read as text, amounts
as exact fen (``Decimal``, never floats), local times in the session's time zone. Anything that cannot
be read raises ``ExportUnreadable`` naming the row and the column, before anything is stored.

XLSX is read with the standard library (``zipfile`` and regular expressions over the sheet's XML),
not openpyxl: openpyxl's read-only mode takes tens of seconds for 100,000 rows of a 26-column export
on this machine, this reader about a second, and an export's sheets are plain data (no formulas to
evaluate, no styles needed: a time column holding a number is an Excel date serial).
"""

from __future__ import annotations

import csv
import html
import io
import re
import unicodedata
import zipfile
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal, InvalidOperation
from zoneinfo import ZoneInfo

from ..errors import InvalidInput
from ..validation import parse_yuan
from . import columns as C
from .lines import IMPORT_PLATFORMS, NOT_PAID, PAID, REFUNDED, ExportLine

#: Rows searched for the header (exports put a title or notes above it).
HEADER_SEARCH_ROWS = 30
MAX_QUANTITY = 1_000_000
MAX_ID_LENGTH = 100


class ExportUnreadable(InvalidInput):
    """An export that cannot be read (HTTP 422): ``row`` and ``column`` say where (``None`` when the
    whole file is at fault), ``file`` names the file."""

    code = "unreadable_export"

    def __init__(self, message: str, *, row: int | None = None, column: str | None = None, file: str = ""):
        where = []
        if row is not None:
            where.append(f"row {row}")
        if column is not None:
            where.append(f"column {column}")
        text = f"{', '.join(where)}: {message}" if where else message
        if file:
            text = f"{file}: {text}"
        super().__init__(" ".join(text.split()), field="file")
        #: The problem alone, without where it is (pages say the row and column in their own words).
        self.detail = " ".join(message.split())
        self.row = row
        self.column = column
        self.file = file


def parse_export(files: list[tuple[str, bytes]], *, platform: str, timezone: str) -> list[ExportLine]:
    """The lines of ``files`` (``(filename, content)``), one platform's export: one file, or for taobao the
    order report and the item report (in any order). Times are read in ``timezone``."""
    if platform not in IMPORT_PLATFORMS:
        raise InvalidInput(f"must be one of {', '.join(IMPORT_PLATFORMS)}", field="platform")
    if not files:
        raise ExportUnreadable("no file was sent")
    zone = ZoneInfo(timezone)
    named = len(files) > 1
    tables = [_open_table(name, content, C.LAYOUTS[platform], shown=name if named else "") for name, content in files]
    if platform == "taobao":
        return _taobao(tables, zone)
    lines: list[ExportLine] = []
    for table in tables:
        lines.extend(_single(platform, table, zone))
    return lines


# --- files into rows ----------------------------------------------------------------------------


class _Num(str):
    """A number cell of an XLSX sheet, as the text Excel stored (``46174.84375``, ``6.9201E+18``)."""

    __slots__ = ()


Rows = Iterator[tuple[int, list]]


class _Table:
    """A file's rows after its header: ``cols`` maps a field to (index, header text as written)."""

    def __init__(self, name: str, layout: C.Layout, header_row: int, cols: dict[str, tuple[int, str]], rows: Rows):
        self.name = name
        self.layout = layout
        self.header_row = header_row
        self.cols = cols
        self.rows = rows
        self.epoch = _EPOCH_1900  # of Excel date serials (a Mac workbook may count from 1904)

    def error(self, message: str, *, row: int | None = None, field: str | None = None) -> ExportUnreadable:
        column = self.cols[field][1] if field in self.cols else (self.layout.fields[field][0] if field else None)
        return ExportUnreadable(message, row=row, column=column, file=self.name)


def _open_table(name: str, content: bytes, layouts: tuple[C.Layout, ...], *, shown: str) -> _Table:
    """The file's sheet that has a header of one of ``layouts``, positioned after that header."""
    if content[:4] == b"PK\x03\x04":
        sheets = _xlsx_sheets(content, shown)
    elif content[:8] == b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1":
        raise ExportUnreadable("is an Excel 97-2003 (.xls) file: save it as .xlsx or CSV and import that", file=shown)
    else:
        sheets = _csv_sheets(content, shown)
    best: tuple[int, int, C.Layout, dict[str, tuple[int, str]]] | None = None
    for rows in sheets:
        head: list[tuple[int, list]] = []
        for item in rows:
            head.append(item)
            if len(head) >= HEADER_SEARCH_ROWS:
                break
        for index, (number, cells) in enumerate(head):
            for layout in layouts:
                cols = _match_header(cells, layout)
                if len(cols) < 2:
                    continue
                if all(any(f in cols for f in group) for group in layout.required):
                    table = _Table(shown, layout, number, cols, _chain(head[index + 1:], rows))
                    if isinstance(rows, _Sheet):
                        rows.wanted = {0} | {i for i, _ in cols.values()}
                        table.epoch = rows.epoch
                    return table
                if best is None or len(cols) > best[0]:
                    best = (len(cols), number, layout, cols)
    if best is not None:
        _, number, layout, cols = best
        for group in layout.required:
            if not any(f in cols for f in group):
                names = " or ".join(layout.fields[f][0] for f in group)
                raise ExportUnreadable(
                    f"the header has no column {names}", row=number, column=layout.fields[group[0]][0], file=shown
                )
    expected = ", ".join(layouts[0].fields[g[0]][0] for g in layouts[0].required)
    raise ExportUnreadable(
        f"no header row found: none of the first {HEADER_SEARCH_ROWS} rows names the columns of this "
        f"platform's export ({expected})",
        file=shown,
    )


def _chain(first: list[tuple[int, list]], rest: Rows) -> Rows:
    yield from first
    yield from rest


def _match_header(cells: list, layout: C.Layout) -> dict[str, tuple[int, str]]:
    aliases = _ALIASES.setdefault(layout.name, _alias_ranks(layout))
    found: dict[str, tuple[int, int, str]] = {}
    for index, cell in enumerate(cells):
        if not isinstance(cell, str) or not cell:
            continue
        hit = aliases.get(C.header_key(cell))
        if hit is None:
            continue
        field, rank = hit
        if field not in found or rank < found[field][0]:
            found[field] = (rank, index, cell.strip())
    return {field: (index, text) for field, (_, index, text) in found.items()}


_ALIASES: dict[str, dict[str, tuple[str, int]]] = {}


def _alias_ranks(layout: C.Layout) -> dict[str, tuple[str, int]]:
    out: dict[str, tuple[str, int]] = {}
    for field, names in layout.fields.items():
        for rank, name in enumerate(names):
            out.setdefault(C.header_key(name), (field, rank))
    return out


def _csv_sheets(content: bytes, shown: str) -> list[Rows]:
    text = _decode(content, shown)
    # Excel's "Unicode text" is tab-separated; a comma CSV whose header is not found is tried with tabs too.
    delimiters = ("\t", ",") if content[:2] in (b"\xff\xfe", b"\xfe\xff") else (",", "\t")
    return [_csv_rows(text, d) for d in delimiters]


def _csv_rows(text: str, delimiter: str) -> Rows:
    yield from enumerate(csv.reader(io.StringIO(text, newline=""), delimiter=delimiter), start=1)


def _decode(content: bytes, shown: str) -> str:
    if content[:3] == b"\xef\xbb\xbf":
        encodings = ("utf-8-sig",)
    elif content[:2] in (b"\xff\xfe", b"\xfe\xff"):
        encodings = ("utf-16",)
    else:
        encodings = ("utf-8", "gb18030")
    for encoding in encodings:
        try:
            text = content.decode(encoding)
        except UnicodeDecodeError:
            continue
        if "\x00" not in text:
            return text
    raise ExportUnreadable("is not a CSV (UTF-8 or GB18030 text) or XLSX file", file=shown)


# XLSX: the parts an export uses. Cells come as text; numbers as ``_Num`` (the stored text).
_ROW_RE = re.compile(r"<(?:\w+:)?row\b([^>]*?)(?:/>|>(.*?)</(?:\w+:)?row>)", re.S)
_CELL_RE = re.compile(r"<(?:\w+:)?c\b([^>]*?)(?:/>|>(.*?)</(?:\w+:)?c>)", re.S)
_ATTR_RE = re.compile(r'\b(r|t)="([^"]*)"')
_V_RE = re.compile(r"<(?:\w+:)?v>(.*?)</(?:\w+:)?v>", re.S)
_T_RE = re.compile(r"<(?:\w+:)?t\b[^>]*?(?:/>|>(.*?)</(?:\w+:)?t>)", re.S)
_RPH_RE = re.compile(r"<(?:\w+:)?rPh\b.*?</(?:\w+:)?rPh>", re.S)
_SI_RE = re.compile(r"<(?:\w+:)?si\b[^>]*?(?:/>|>(.*?)</(?:\w+:)?si>)", re.S)
_ESCAPED_RE = re.compile(r"_x([0-9A-Fa-f]{4})_")
_SHEET_RE = re.compile(r"<(?:\w+:)?sheet\b([^>]*)/?>")
_REL_RE = re.compile(r"<(?:\w+:)?Relationship\b([^>]*)/?>")
_ANY_ATTR_RE = re.compile(r'([\w:]+)="([^"]*)"')


def _xml_text(raw: str) -> str:
    if "&" in raw:
        raw = html.unescape(raw)
    if "_x" in raw:
        raw = _ESCAPED_RE.sub(lambda m: chr(int(m.group(1), 16)), raw)
    return raw


def _xlsx_sheets(content: bytes, shown: str) -> list[Rows]:
    try:
        book = zipfile.ZipFile(io.BytesIO(content))
        names = set(book.namelist())
        workbook = book.read("xl/workbook.xml").decode("utf-8")
    except (zipfile.BadZipFile, KeyError, UnicodeDecodeError, OSError) as exc:
        raise ExportUnreadable("is not a CSV or XLSX file (a ZIP without an Excel workbook)", file=shown) from exc
    targets: dict[str, str] = {}
    if "xl/_rels/workbook.xml.rels" in names:
        for attrs in _REL_RE.findall(book.read("xl/_rels/workbook.xml.rels").decode("utf-8")):
            a = dict(_ANY_ATTR_RE.findall(attrs))
            target = a.get("Target", "")
            target = target.lstrip("/") if target.startswith("/") else "xl/" + target
            targets[a.get("Id", "")] = target
    sheets = []
    for attrs in _SHEET_RE.findall(workbook):
        a = dict(_ANY_ATTR_RE.findall(attrs))
        rid = next((v for k, v in a.items() if k.endswith(":id")), "")
        if targets.get(rid) in names:
            sheets.append(targets[rid])
    if not sheets:
        sheets = sorted(n for n in names if n.startswith("xl/worksheets/sheet"))
    strings: list[str] = []
    if "xl/sharedStrings.xml" in names:
        shared = book.read("xl/sharedStrings.xml").decode("utf-8")
        for body in _SI_RE.findall(shared):
            body = _RPH_RE.sub("", body) if "rPh" in body else body
            strings.append(_xml_text("".join(_T_RE.findall(body))))
    date1904 = bool(re.search(r'date1904="(?:1|true)"', workbook))
    return [_Sheet(book, sheet, strings, date1904) for sheet in sheets]


class _Sheet:
    """An XLSX sheet's rows, streamed from its XML in chunks (a big export's XML is ~100 MB).

    Once the header is known, ``wanted`` (column index → position) limits the rows to the columns
    that are read: one regular expression then walks all the cells of a chunk in C and only those
    cells are decoded (decoding every cell of a 26-column export was most of the time).
    """

    def __init__(self, book: zipfile.ZipFile, name: str, strings: list[str], date1904: bool):
        self.book = book
        self.name = name
        self.strings = strings
        self.epoch = _EPOCH_1904 if date1904 else _EPOCH_1900
        self.wanted: set[int] | None = None
        self.pattern: re.Pattern[str] | None = None
        self.columns: dict[str, int] = {}
        self.width = 0
        self.iterator = self._rows()

    def __iter__(self) -> Rows:
        return self.iterator

    def __next__(self) -> tuple[int, list]:
        return next(self.iterator)

    def _rows(self) -> Rows:
        next_number = 1
        buffer = ""
        fast: bool | None = None
        with self.book.open(self.name) as raw:
            reader = io.TextIOWrapper(raw, encoding="utf-8")
            while True:
                chunk = reader.read(1 << 20)
                buffer += chunk
                end = buffer.rfind("</row>") if chunk else len(buffer)
                if end < 0:
                    continue
                end = end + len("</row>") if chunk else end
                part, buffer = buffer[:end], buffer[end:]
                if fast is None:  # cells without an r="B5" reference need the slow path
                    fast = _CELL_NO_REF_RE.search(part) is None
                if fast and self.wanted is not None:
                    yield from self._wanted_rows(part)
                else:
                    for row_attrs, body in _ROW_RE.findall(part):
                        r = _ATTR_RE.findall(row_attrs)
                        number = next((int(v) for k, v in r if k == "r"), next_number)
                        next_number = number + 1
                        yield number, _xlsx_cells(body, self.strings)
                if not chunk:
                    return

    def _wanted_rows(self, part: str) -> Rows:
        if self.pattern is None:
            letters = _letters_of(self.wanted or set())
            self.columns = dict(letters)
            self.width = max(self.wanted or {0}) + 1
            alternatives = "|".join(sorted((name for name, _ in letters), key=len, reverse=True))
            self.pattern = re.compile(rf'<c r="({alternatives})([0-9]+)"([^>]*?)(?:/>|>(.*?)</c>)', re.S)
        columns, width, strings = self.columns, self.width, self.strings
        number = ""
        cells: list = []
        for letters, row, attrs, inner in self.pattern.findall(part):
            if row != number:
                if number:
                    yield int(number), cells
                number = row
                cells = [""] * width
            if not inner:
                continue
            if 't="' not in attrs:
                value: object = _Num(inner[3:-4] if inner.startswith("<v>") and inner.endswith("</v>") else _v(inner))
            elif 't="s"' in attrs:
                raw = inner[3:-4] if inner.startswith("<v>") and inner.endswith("</v>") else _v(inner)
                value = strings[int(raw)] if raw else ""
            elif 't="inlineStr"' in attrs:
                if inner.startswith("<is><t>") and inner.endswith("</t></is>") and "<" not in inner[7:-9]:
                    value = _xml_text(inner[7:-9])
                else:
                    value = _xml_text("".join(_T_RE.findall(inner)))
            elif 't="n"' in attrs:
                value = _Num(_v(inner))
            else:
                value = _xml_text(_v(inner))
            cells[columns[letters]] = value
        if number:
            yield int(number), cells


def _v(inner: str) -> str:
    m = _V_RE.search(inner)
    return m.group(1) if m else ""


#: A sheet whose cells do not all start ``<c r="…"`` (prefixed tags, no references) takes the slow path.
_CELL_NO_REF_RE = re.compile(r'<\w+:c\b|<c(?!\s+r=")[\s/>]')


def _letters_of(indices: set[int]) -> list[tuple[str, int]]:
    out = []
    for index in indices:
        n, letters = index + 1, ""
        while n:
            n, rem = divmod(n - 1, 26)
            letters = chr(65 + rem) + letters
        out.append((letters, index))
    return out


_EPOCH_1900 = datetime(1899, 12, 30)
_EPOCH_1904 = datetime(1904, 1, 1)
_COLUMN_CACHE: dict[str, int] = {}


def _column_index(ref: str) -> int:
    letters = ref.rstrip("0123456789")
    index = _COLUMN_CACHE.get(letters)
    if index is None:
        index = 0
        for ch in letters:
            index = index * 26 + (ord(ch) - 64)
        index -= 1
        _COLUMN_CACHE[letters] = index
    return index


def _xlsx_cells(body: str, strings: list[str]) -> list:
    cells: list = []
    for attrs, inner in _CELL_RE.findall(body):
        ref = kind = ""
        for k, v in _ATTR_RE.findall(attrs):
            if k == "r":
                ref = v
            else:
                kind = v
        index = _column_index(ref) if ref else len(cells)
        if kind == "inlineStr":
            value: object = _xml_text("".join(_T_RE.findall(inner)))
        else:
            m = _V_RE.search(inner) if inner else None
            raw = m.group(1) if m else ""
            if kind == "s":
                value = strings[int(raw)] if raw else ""
            elif kind in ("str", "e", "b", "d"):
                value = _xml_text(raw)
            else:
                value = _Num(raw) if raw else ""
        if index >= len(cells):
            cells.extend([""] * (index - len(cells)))
            cells.append(value)
        else:
            cells[index] = value
    return cells


# --- values -----------------------------------------------------------------------------------------


def _shown(value: object) -> str:
    text = str(value)
    text = text if len(text) <= 40 else text[:40] + "…"
    return "'" + text.encode("unicode_escape").decode("ascii") + "'" if not text.isprintable() else f"'{text}'"


_MANGLED_RE = re.compile(r"[0-9](?:\.[0-9]*)?[eE]\+?[0-9]+\Z")


def _text(cells: list, index: int | None) -> str:
    if index is None or index >= len(cells):
        return ""
    value = cells[index]
    return value.strip() if isinstance(value, str) else str(value)


def _read_id(table: _Table, cells: list, field: str, number: int) -> str:
    """An id as text: a ``'``, tab or ``="…"`` that kept it textual is stripped; a spreadsheet-mangled
    number (``1.23457E+18``, or an XLSX number too long to be exact) is refused."""
    col = table.cols.get(field)
    if col is None or col[0] >= len(cells):
        return ""
    value = cells[col[0]]
    text = value.strip().lstrip("'\t").strip() if isinstance(value, str) else str(value)
    if text.startswith('="') and text.endswith('"'):
        text = text[2:-1].strip()
    if not text:
        return ""
    if not text.isascii() or not text.isalnum():
        text = unicodedata.normalize("NFKC", text).strip()
    if _MANGLED_RE.match(text) or (isinstance(value, _Num) and (len(text) > 15 or not text.isdigit())):
        raise table.error(
            f"{_shown(text)} is an id a spreadsheet turned into a number and it cannot be recovered: "
            "export the file again and import it without opening it in Excel (or open that column as text)",
            row=number,
            field=field,
        )
    if len(text) > MAX_ID_LENGTH:
        raise table.error(f"the id is longer than {MAX_ID_LENGTH} characters", row=number, field=field)
    return text


_PLAIN_YUAN_RE = re.compile(r"([0-9]{1,12})(?:\.([0-9]{1,2}))?\Z")


def _read_amount(table: _Table, cells: list, field: str, number: int, *, empty_ok: bool = False) -> int:
    index = table.cols[field][0] if field in table.cols else None
    text = _text(cells, index)
    if not text:
        if empty_ok:
            return 0
        raise table.error("the amount is empty", row=number, field=field)
    m = _PLAIN_YUAN_RE.match(text)
    if m is not None:  # the common case, without Decimal
        cents = m.group(2) or "0"
        return int(m.group(1)) * 100 + int(cents.ljust(2, "0"))
    value = cells[index]
    if isinstance(value, _Num):  # an XLSX number: 69.8, 69.80000000000001, 1.2345E+3
        try:
            fen = Decimal(text) * 100
        except InvalidOperation:
            fen = Decimal("NaN")
        if fen.is_finite() and fen >= 0 and abs(fen - fen.to_integral_value()) < Decimal("0.000001"):
            return int(fen.to_integral_value())
    else:
        try:
            return parse_yuan(text, field)
        except InvalidInput:
            pass
    raise table.error(f"{_shown(text)} is not an amount in yuan", row=number, field=field)


def _read_quantity(table: _Table, cells: list, number: int) -> int:
    text = _text(cells, table.cols["quantity"][0])
    if not text.isdigit() or not text.isascii():
        text = unicodedata.normalize("NFKC", text).strip().removesuffix("件").strip()
        if text.endswith(".0"):  # an XLSX number cell
            text = text[:-2]
    if text.isdigit() and text.isascii() and 1 <= int(text) <= MAX_QUANTITY:
        return int(text)
    raise table.error(f"{_shown(text)} is not a quantity (a whole number from 1)", row=number, field="quantity")


_TIME_RE = re.compile(
    r"([0-9]{4})[-/.年]([0-9]{1,2})[-/.月]([0-9]{1,2})日?"
    r"(?:[ T]+([0-9]{1,2}):([0-9]{2})(?::([0-9]{2})(?:\.([0-9]{1,6}))?)?)?"
    r"\s*(Z|[+-][0-9]{2}:?[0-9]{2})?\Z"
)


class _Times:
    """Local time text → aware UTC datetime in one zone; exports repeat times, so results are cached."""

    def __init__(self, zone: ZoneInfo):
        self.zone = zone
        self.cache: dict[str, datetime] = {}

    def read(self, table: _Table, cells: list, field: str, number: int) -> datetime | None:
        col = table.cols.get(field)
        if col is None or col[0] >= len(cells):
            return None
        value = cells[col[0]]
        text = value.strip() if isinstance(value, str) else str(value)
        if not text or text in ("-", "--", "/"):
            return None
        found = self.cache.get(text)
        if found is None:
            found = self._parse(text, isinstance(value, _Num), table.epoch)
            if found is None:
                raise table.error(f"{_shown(text)} is not a date and time", row=number, field=field)
            if len(self.cache) < 100_000:
                self.cache[text] = found
        return found

    def _parse(self, text: str, number: bool, epoch: datetime) -> datetime | None:
        if number or _SERIAL_RE.match(text):
            try:
                days = float(text)
            except ValueError:
                return None
            if not 1 <= days < 2958466:  # 1900-01-01 … 9999-12-31
                return None
            local = epoch + timedelta(seconds=round(days * 86400))
            return local.replace(tzinfo=self.zone).astimezone(UTC)
        m = _TIME_RE.match(unicodedata.normalize("NFKC", text))
        if m is None:
            return None
        y, mo, d, h, mi, s, frac, offset = m.groups()
        try:
            local = datetime(int(y), int(mo), int(d), int(h or 0), int(mi or 0), int(s or 0),
                             int((frac or "0").ljust(6, "0")))
        except ValueError:
            return None
        if offset:
            return datetime.fromisoformat(local.isoformat() + ("+00:00" if offset == "Z" else offset)).astimezone(UTC)
        return local.replace(tzinfo=self.zone).astimezone(UTC)


_SERIAL_RE = re.compile(r"[0-9]{5}(?:\.[0-9]+)?\Z")


def _word(text: str, words: tuple[str, ...]) -> bool:
    return any(w in text for w in words)


def _status(status: str, aftersale: str, refunded_fen: int, paid: bool) -> str:
    """paid / refunded / not_paid from the platform's words (``columns.py``) and a refunded amount."""
    status = status.lower()
    if status and _word(status, C.NOT_PAID_WORDS) and not _word(status, C.REFUND_WORDS):
        return NOT_PAID
    refunded = refunded_fen > 0 or _word(aftersale.lower(), C.REFUND_WORDS) or _word(status, C.REFUND_WORDS)
    if refunded or _word(status, C.CLOSED_WORDS):
        return REFUNDED if paid else NOT_PAID
    return PAID if paid else NOT_PAID


# --- the platforms ----------------------------------------------------------------------------------


def _is_blank(cells: list) -> bool:
    return all((c.strip() == "") if isinstance(c, str) else c is None for c in cells)


def _single(platform: str, table: _Table, zone: ZoneInfo) -> Iterable[ExportLine]:
    times = _Times(zone)
    cols = table.cols
    idx = {field: cols[field][0] if field in cols else None for field in table.layout.fields}
    out = []
    for number, cells in table.rows:
        if _is_blank(cells) or _text(cells, 0) in ("合计", "总计"):
            continue
        line_id = _read_id(table, cells, "line_id", number) if idx.get("line_id") is not None else ""
        order_ref = _read_id(table, cells, "order_ref", number) if idx.get("order_ref") is not None else ""
        if platform == "channels":
            code = _read_id(table, cells, "platform_code", number) if idx.get("platform_code") is not None else ""
            line_id = "-".join(p for p in (order_ref, code, _text(cells, idx["spec"])) if p) if order_ref else ""
        line_id = line_id or order_ref
        order_ref = order_ref or line_id
        if not line_id:
            field = "line_id" if "line_id" in cols else "order_ref"
            raise table.error("the id is empty", row=number, field=field)
        merchant_code = _text(cells, idx.get("merchant_code")) or _text(cells, idx.get("article_no"))
        quantity = _read_quantity(table, cells, number)
        amount = _read_amount(table, cells, "amount", number)
        paid_at = times.read(table, cells, "paid_at", number)
        refunded_fen = _read_amount(table, cells, "refunded", number, empty_ok=True) if idx.get("refunded") is not None else 0
        status_text = _text(cells, idx.get("status"))
        if platform == "generic" and not status_text:
            status_text = "paid" if paid_at else "not_paid"
        aftersale = _text(cells, idx.get("aftersale"))
        if paid_at is None and _status(status_text, aftersale, refunded_fen, True) == PAID and _word(
            status_text.lower(), C.PAID_WORDS
        ):
            # Paid, but no payment time (cash on delivery): the order's time stands in for it.
            paid_at = times.read(table, cells, "created_at", number)
            if paid_at is None:
                raise table.error(f"the line is {status_text} but has no payment time", row=number, field="paid_at")
        status = _status(status_text, aftersale, refunded_fen, paid_at is not None)
        out.append(
            ExportLine(
                row=number,
                line_id=line_id,
                order_ref=order_ref,
                product_name=_text(cells, idx.get("product_name")),
                spec=_text(cells, idx.get("spec")),
                merchant_code=merchant_code,
                quantity=quantity,
                amount_fen=amount,
                paid_at=paid_at if status != NOT_PAID else None,
                province=_text(cells, idx.get("province")),
                city=_text(cells, idx.get("city")),
                status=status,
            )
        )
    return out


_PROVINCE_RE = re.compile(r"(.+?(?:特别行政区|自治区|省|市))(.+?(?:自治州|地区|盟|市|县|区))?")


def _address_region(address: str) -> tuple[str, str]:
    """Province and city from Taobao's 收货地址 (``浙江省 杭州市 西湖区 …``)."""
    parts = address.split()
    if len(parts) >= 2:
        return parts[0], parts[1]
    m = _PROVINCE_RE.match(address)
    if m is None:
        return (parts[0] if parts else ""), ""
    return m.group(1), m.group(2) or ""


def _taobao(tables: list[_Table], zone: ZoneInfo) -> list[ExportLine]:
    orders_tables = [t for t in tables if t.layout is C.TAOBAO_ORDERS]
    items_tables = [t for t in tables if t.layout is C.TAOBAO_ITEMS]
    if not orders_tables:
        raise ExportUnreadable(
            "a Taobao import needs the order report (订单报表: 订单编号, 买家实际支付金额, 订单付款时间) "
            "besides the item report (宝贝报表)"
        )
    times = _Times(zone)
    orders: dict[str, dict] = {}
    for table in orders_tables:
        idx = {field: table.cols[field][0] if field in table.cols else None for field in table.layout.fields}
        for number, cells in table.rows:
            if _is_blank(cells) or _text(cells, 0) in ("合计", "总计"):
                continue
            ref = _read_id(table, cells, "order_ref", number)
            if not ref:
                raise table.error("the id is empty", row=number, field="order_ref")
            paid_at = times.read(table, cells, "paid_at", number)
            province, city = _address_region(_text(cells, idx["address"]))
            orders[ref] = {
                "row": number,
                "table": table,
                "amount": _read_amount(table, cells, "amount", number),
                "paid_at": paid_at,
                "status": _text(cells, idx["status"]),
                "province": province,
                "city": city,
                "title": _text(cells, idx["product_name"]),
                "quantity": _read_quantity(table, cells, number) if idx["quantity"] is not None else 1,
            }
    if not items_tables:  # the order report alone: one line per order, no merchant codes
        return [
            ExportLine(
                row=o["row"], line_id=ref, order_ref=ref, product_name=o["title"], spec="", merchant_code="",
                quantity=o["quantity"], amount_fen=o["amount"],
                paid_at=o["paid_at"] if (s := _status(o["status"], "", 0, o["paid_at"] is not None)) != NOT_PAID else None,
                province=o["province"], city=o["city"], status=s,
            )
            for ref, o in orders.items()
        ]
    items: dict[str, list[dict]] = {}
    for table in items_tables:
        idx = {field: table.cols[field][0] if field in table.cols else None for field in table.layout.fields}
        for number, cells in table.rows:
            if _is_blank(cells) or _text(cells, 0) in ("合计", "总计"):
                continue
            ref = _read_id(table, cells, "order_ref", number)
            if not ref:
                raise table.error("the id is empty", row=number, field="order_ref")
            if ref not in orders:
                raise table.error(f"order {ref} is not in the order report", row=number, field="order_ref")
            items.setdefault(ref, []).append({
                "row": number,
                "name": _text(cells, idx["product_name"]),
                "spec": _text(cells, idx["spec"]),
                "code": _text(cells, idx["merchant_code"]),
                "quantity": _read_quantity(table, cells, number),
                "price": _read_amount(table, cells, "price", number),
                "status": _text(cells, idx["status"]),
                "aftersale": _text(cells, idx["aftersale"]),
            })
    out = []
    for ref, lines in items.items():
        order = orders[ref]
        amounts = _share(order["amount"], [x["price"] * x["quantity"] for x in lines], [x["quantity"] for x in lines])
        for item, amount in zip(lines, amounts, strict=True):
            if len(lines) == 1:
                line_id = ref
            else:
                line_id = "-".join(p for p in (ref, item["code"] or item["name"], item["spec"]) if p)
            paid_at = order["paid_at"]
            status = _status(item["status"] or order["status"], item["aftersale"], 0, paid_at is not None)
            out.append(
                ExportLine(
                    row=item["row"], line_id=line_id, order_ref=ref, product_name=item["name"], spec=item["spec"],
                    merchant_code=item["code"], quantity=item["quantity"], amount_fen=amount,
                    paid_at=paid_at if status != NOT_PAID else None,
                    province=order["province"], city=order["city"], status=status,
                )
            )
    out.sort(key=lambda line: line.row)
    return out


def _share(total: int, weights: list[int], fallback: list[int]) -> list[int]:
    """``total`` fen split in proportion to ``weights`` (the items' list prices), exactly: the last
    item takes the rounding. An order's payment covers its items after discounts."""
    if len(weights) == 1:
        return [total]
    if sum(weights) <= 0:
        weights = fallback
    whole = sum(weights)
    shares = [total * w // whole for w in weights[:-1]]
    return [*shares, total - sum(shares)]
