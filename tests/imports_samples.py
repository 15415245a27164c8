"""Sample order exports of the platforms, built from lines the test chooses (issue 14).

The files look like the platforms' own (``/work/shared/platform-exports.md``): Chinese headers in a
shuffled order with extra columns, ids made spreadsheet-safe with a leading tab or apostrophe,
amounts written as ``1,234.50``, ``¥69.80`` or with full-width digits, local times as the platform
writes them, each platform's status words. Every test that imports an export builds it here::

    from tests.imports_samples import SampleLine, export_files, expected_line_id

    lines = [SampleLine(line_id="6920000000000000001", order_ref="6920000000000000000", ...)]
    files = export_files("douyin", lines, fmt="csv-gb18030")      # [(filename, bytes)], two for taobao
    name, content = export_file("kuaishou", lines, fmt="xlsx")     # one file (not taobao)

What a line becomes once imported is ``expected_line_id(platform, line)`` (the id without the
``<platform>:`` prefix) and ``expected_export_lines(platform, lines)`` (what the parser returns).

Per platform, what the fields of a ``SampleLine`` are written as:

- douyin: ``line_id`` → 子订单编号, ``order_ref`` → 主订单编号; the merchant code goes to 商家编码 on
  even rows and to 货号 (商家编码 left empty) on odd rows.
- kuaishou: one order per row: ``line_id`` → 订单号 (``order_ref`` is not written; it reads back as
  the line id).
- channels: ``order_ref`` → 订单号, ``spec`` → 商品属性, ``platform_code`` (or a code made from the product
  name) → 商品编码(平台); the line id is those three (``expected_line_id``); ``line_id`` is not written.
- taobao: two files (order report, item report) joined on 订单编号 = ``order_ref``; the lines of one
  order must share ``paid_at``, ``province`` and ``city``; an order of several items must have
  amounts that are multiples of their quantities (the item report has unit prices only).
  ``line_id`` is not written: the id is 订单编号 (one item) or 订单编号-商家编码[-商品属性].
- generic: livesale's own columns; ``line_id`` → external_id, ``merchant_code`` → sku.

Statuses: ``paid`` (the platform's paid-or-later words, rotating), ``refunded`` (paid, then refunded
or cancelled: 售后状态/商品售后 words, 商品已退款金额, or a closed order that has a payment time),
``not_paid`` (unpaid or cancelled before payment; no payment time is written).
"""

from __future__ import annotations

import csv
import dataclasses
import io
import random
import zipfile
import zlib
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

from livesale.core.imports.lines import ExportLine

FORMATS = ("csv-utf8", "csv-bom", "csv-gb18030", "xlsx")
PLATFORMS = ("douyin", "kuaishou", "channels", "taobao", "generic")


@dataclasses.dataclass(frozen=True)
class SampleLine:
    """One order line as the test means it (money in fen, times aware)."""

    line_id: str
    order_ref: str
    product_name: str
    spec: str
    merchant_code: str
    quantity: int
    amount_fen: int
    paid_at: datetime | None
    province: str
    city: str
    status: str = "paid"  # "paid" | "refunded" | "not_paid"
    #: Channels' 商品编码(平台); empty: a stable code made from the product name.
    platform_code: str = ""


# --- how values are written ---------------------------------------------------------------------

_FULL_WIDTH = str.maketrans("0123456789.,", "０１２３４５６７８９．，")


def yuan_text(fen: int, variant: int = 0) -> str:
    """``fen`` as a platform writes yuan: ``1,234.50``, ``¥69.80``, ``６９．８０`` or ``69.8``."""
    whole, cents = divmod(fen, 100)
    plain = f"{whole}.{cents:02d}"
    grouped = f"{whole:,}.{cents:02d}"
    kind = variant % 4
    if kind == 0:
        return grouped
    if kind == 1:
        return "¥" + grouped
    if kind == 2:
        return plain.translate(_FULL_WIDTH)
    return str(Decimal(fen).scaleb(-2).normalize()) if fen else "0"


def _id_text(value: str, variant: int) -> str:
    """An id kept textual the way exports do it: as is, after a tab, or after an apostrophe."""
    return ("", "\t", "'")[variant % 3] + value


def _local(when: datetime | None, timezone: str) -> datetime | None:
    if when is None:
        return None
    return when.astimezone(ZoneInfo(timezone)).replace(tzinfo=None)


def _time_cell(when: datetime | None, timezone: str, variant: int, typed: bool) -> object:
    """A payment time: ``2026-06-01 20:15:03`` (or ``2026/06/01 20:15:03``); a date cell in XLSX on odd rows."""
    local = _local(when, timezone)
    if local is None:
        return ""
    if typed and variant % 2:
        return local.replace(microsecond=0)
    sep = "/" if variant % 5 == 3 else "-"
    return local.strftime(f"%Y{sep}%m{sep}%d %H:%M:%S")


def _amount_cell(fen: int, variant: int, typed: bool) -> object:
    """An amount: text in the variants of ``yuan_text``, or (XLSX, some rows) a number cell."""
    if typed and variant % 4 == 3:
        return float(Decimal(fen).scaleb(-2))
    return yuan_text(fen, variant)


def platform_code(line: SampleLine) -> str:
    """Channels' 商品编码(平台) of a sample line."""
    return line.platform_code or f"10000{zlib.crc32(line.product_name.encode()) % 10**8:08d}"


def _taobao_orders(lines: list[SampleLine]) -> dict[str, list[SampleLine]]:
    orders: dict[str, list[SampleLine]] = {}
    for line in lines:
        orders.setdefault(line.order_ref, []).append(line)
    return orders


def expected_line_id(platform: str, line: SampleLine, lines: list[SampleLine] | None = None) -> str:
    """The platform line id livesale reads for ``line`` (taobao needs all ``lines``: is the order of several?)."""
    if platform == "channels":
        return "-".join(p for p in (line.order_ref, platform_code(line), line.spec) if p)
    if platform == "taobao":
        siblings = [x for x in (lines or [line]) if x.order_ref == line.order_ref]
        if len(siblings) <= 1:
            return line.order_ref
        return "-".join(p for p in (line.order_ref, line.merchant_code or line.product_name, line.spec) if p)
    return line.line_id


def expected_export_lines(platform: str, lines: list[SampleLine], *, title_row: bool = False) -> list[ExportLine]:
    """What ``parse_export`` reads from ``export_files(platform, lines, title_row=...)``, row numbers included."""
    first = 3 if title_row else 2
    out = []
    for i, line in enumerate(lines):
        order_ref = line.line_id if platform in ("kuaishou", "generic") else line.order_ref
        out.append(
            ExportLine(
                row=first + i,
                line_id=expected_line_id(platform, line, lines),
                order_ref=order_ref,
                product_name=line.product_name,
                spec="" if platform == "generic" else line.spec,
                merchant_code=line.merchant_code,
                quantity=line.quantity,
                amount_fen=line.amount_fen,
                paid_at=None
                if line.status == "not_paid" or line.paid_at is None
                else line.paid_at.astimezone(UTC).replace(microsecond=0),
                province=line.province,
                city=line.city,
                status=line.status,
            )
        )
    return out


# --- the platforms' rows --------------------------------------------------------------------------

Row = dict[str, object]

_DOUYIN_PAID = ("已支付", "备货中", "已发货", "已完成")
_KUAISHOU_PAID = ("已付款", "已发货", "已签收", "交易成功")
_CHANNELS_PAID = ("待发货", "已发货", "已完成")
_TAOBAO_PAID = ("买家已付款，等待卖家发货", "卖家已发货，等待买家确认", "交易成功")


def _douyin(lines: list[SampleLine], tz: str, typed: bool) -> list[Row]:
    rows = []
    for i, line in enumerate(lines):
        paid = line.status != "not_paid"
        status, aftersale = _DOUYIN_PAID[i % 4], ""
        if line.status == "refunded":
            status, aftersale = (("已完成", "退款成功"), ("已取消", ""), ("已发货", "售后完成"))[i % 3]
        elif not paid:
            status = ("待支付", "已取消")[i % 2]
        rows.append({
            "主订单编号": _id_text(line.order_ref, i),
            "子订单编号": _id_text(line.line_id, i + 1),
            "支付方式": "抖音支付",
            "选购商品": line.product_name,
            "商品规格": line.spec,
            "货号": "" if i % 2 == 0 else line.merchant_code,
            "商品ID": _id_text("3" + str(zlib.crc32(line.product_name.encode())).zfill(18), i),
            "商家编码": line.merchant_code if i % 2 == 0 else "",
            "商品数量": line.quantity if typed else str(line.quantity),
            "商品单价": yuan_text(line.amount_fen // max(line.quantity, 1), i),
            "商品金额": yuan_text(line.amount_fen + 500, i),  # before discounts: not the amount
            "订单应付金额": _amount_cell(line.amount_fen, i, typed),
            "运费": "0.00",
            "优惠总金额": "5.00",
            "订单提交时间": _time_cell(line.paid_at, tz, i, typed),
            "支付完成时间": _time_cell(line.paid_at if paid else None, tz, i, typed),
            "订单状态": status,
            "取消原因": "",
            "售后状态": aftersale or ("", "-", "无售后")[i % 3],
            "收件人": "张**",
            "省": line.province,
            "市": line.city,
            "区": "某区",
            "街道": "某街道",
            "达人昵称": "村播小王",
            "流量体裁": "直播",
        })
    return rows


def _kuaishou(lines: list[SampleLine], tz: str, typed: bool) -> list[Row]:
    rows = []
    for i, line in enumerate(lines):
        paid = line.status != "not_paid"
        status, aftersale = _KUAISHOU_PAID[i % 4], ""
        if line.status == "refunded":
            status, aftersale = (("交易关闭", "退款成功"), ("已发货", "退款成功"), ("订单关闭", ""))[i % 3]
        elif not paid:
            status = ("待付款", "交易关闭")[i % 2]
        rows.append({
            "订单号": _id_text(line.line_id, i),
            "订单创建时间": _time_cell(line.paid_at, tz, i, typed),
            "订单支付时间": _time_cell(line.paid_at if paid else None, tz, i, typed),
            "订单状态": status,
            "实付款": _amount_cell(line.amount_fen, i, typed),
            "快递费": "0",
            "成交数量": line.quantity if typed else str(line.quantity),
            "账号类型": "快手号",
            "售后状态": aftersale,
            "订单载体": "直播",
            "商品名称": line.product_name,
            "商品ID": _id_text(str(20000000000 + zlib.crc32(line.product_name.encode())), i),
            "商品规格": line.spec,
            "SKU编码": line.merchant_code,
            "商品单价": yuan_text(line.amount_fen // max(line.quantity, 1), i + 1),
            "渠道": "直播间",
            "收货地址-省": line.province,
            "收货地址-市": line.city,
            "收货地址-区": "某区",
        })
    return rows


def _channels(lines: list[SampleLine], tz: str, typed: bool) -> list[Row]:
    order_totals: dict[str, int] = {}
    for line in lines:
        order_totals[line.order_ref] = order_totals.get(line.order_ref, 0) + line.amount_fen
    rows = []
    for i, line in enumerate(lines):
        paid = line.status != "not_paid"
        status, aftersale, refunded = _CHANNELS_PAID[i % 3], "", 0
        if line.status == "refunded":
            status, aftersale, refunded = (
                ("已完成", "退款成功", line.amount_fen),
                ("已发货", "", max(line.amount_fen, 1)),  # only the refunded amount says so
                ("已取消", "", 0),  # cancelled after payment
            )[i % 3]
        elif not paid:
            status = ("待付款", "已取消")[i % 2]
        rows.append({
            "订单号": _id_text(line.order_ref, i),
            "订单下单时间": _time_cell(line.paid_at, tz, i, typed),
            "订单状态": status,
            "省": line.province,
            "市": line.city,
            "区": "某区",
            "商品总价": yuan_text(order_totals[line.order_ref], i),
            "订单实际支付金额": yuan_text(order_totals[line.order_ref], i),  # repeats per line: not the amount
            "支付时间": _time_cell(line.paid_at if paid else None, tz, i, typed),
            "带货方式": "直播",
            "带货账号昵称": "村播小王",
            "商品名称": line.product_name,
            "商品编码(平台)": _id_text(platform_code(line), i + 1),
            "SKU编码(自定义)": line.merchant_code,
            "商品属性": line.spec,
            "商品价格(单件)": yuan_text(line.amount_fen // max(line.quantity, 1), i),
            "商品实际价格(总共)": _amount_cell(line.amount_fen, i, typed),
            "商品数量": line.quantity if typed else str(line.quantity),
            "商品售后": aftersale,
            "商品已退款金额": yuan_text(refunded, i) if refunded else ("", "0.00")[i % 2],
        })
    return rows


def _generic(lines: list[SampleLine], tz: str, typed: bool) -> list[Row]:
    rows = []
    for i, line in enumerate(lines):
        rows.append({
            "external_id": _id_text(line.line_id, i),
            "sku": line.merchant_code,
            "name": line.product_name,
            "quantity": line.quantity if typed else str(line.quantity),
            "amount_yuan": _amount_cell(line.amount_fen, i, typed),
            "paid_at": _time_cell(line.paid_at if line.status != "not_paid" else None, tz, i, typed),
            "province": line.province,
            "city": line.city,
            "status": line.status,
            "note": "备注",
        })
    return rows


def _taobao(lines: list[SampleLine], tz: str, typed: bool) -> tuple[list[Row], list[Row]]:
    """The order report and the item report."""
    orders = _taobao_orders(lines)
    order_rows = []
    for i, (ref, items) in enumerate(orders.items()):
        head = items[0]
        for item in items:
            if (item.paid_at, item.province, item.city) != (head.paid_at, head.province, head.city):
                raise ValueError(f"taobao order {ref}: its lines must share paid_at, province and city")
            if len(items) > 1 and item.amount_fen % item.quantity:
                raise ValueError(f"taobao order {ref}: several items, so amounts must be multiples of quantities")
        states = {item.status for item in items}
        if states == {"not_paid"}:
            status = ("等待买家付款", "交易关闭")[i % 2]
        elif states == {"refunded"}:
            status = "交易关闭"
        elif "not_paid" in states:
            raise ValueError(f"taobao order {ref}: an order is paid or not as a whole")
        else:
            status = _TAOBAO_PAID[i % 3]
        paid = states != {"not_paid"}
        order_rows.append({
            "订单编号": _id_text(ref, i),
            "买家会员名": "tb_buyer",
            "买家应付货款": yuan_text(sum(x.amount_fen for x in items), i),
            "买家实际支付金额": _amount_cell(sum(x.amount_fen for x in items), i, typed),
            "订单状态": status,
            "收货地址": f"{head.province} {head.city} 某区 某街道 1号",
            "订单创建时间": _time_cell(head.paid_at, tz, i, typed),
            "订单付款时间": _time_cell(head.paid_at if paid else None, tz, i, typed),
            "宝贝标题": "，".join(x.product_name for x in items),
            "宝贝总数量": str(sum(x.quantity for x in items)),
            "订单关闭原因": "",
        })
    item_rows = []
    for i, line in enumerate(lines):
        status = {"paid": "交易成功", "refunded": "交易关闭", "not_paid": "等待买家付款"}[line.status]
        refund = "退款成功" if line.status == "refunded" and i % 2 else ""
        unit_fen = int((Decimal(line.amount_fen) / line.quantity).quantize(Decimal(1)))
        item_rows.append({
            "订单编号": _id_text(line.order_ref, i + 1),
            "标题": line.product_name,
            "价格": yuan_text(unit_fen, i),
            "购买数量": line.quantity if typed else str(line.quantity),
            "外部系统编号": "",
            "商品属性": line.spec,
            "套餐信息": "",
            "备注": "",
            "订单状态": status,
            "商家编码": line.merchant_code,
            "退款状态": refund,
        })
    return order_rows, item_rows


_BUILDERS: dict[str, Callable[[list[SampleLine], str, bool], list[Row]]] = {
    "douyin": _douyin,
    "kuaishou": _kuaishou,
    "channels": _channels,
    "generic": _generic,
}

_NAMES = {
    "douyin": "抖店订单导出_20260602",
    "kuaishou": "快手小店订单_20260602",
    "channels": "视频号小店订单_20260602",
    "generic": "orders",
    "taobao-orders": "ExportOrderList20260602",
    "taobao-items": "ExportOrderDetailList20260602",
}


# --- files ----------------------------------------------------------------------------------------


def _columns(rows: list[Row], seed: str) -> list[str]:
    columns = list(rows[0]) if rows else []
    random.Random(seed).shuffle(columns)
    return columns


def _serialise(
    kind: str, rows: list[Row], header: list[str], *, fmt: str, title_row: bool, seed: int
) -> tuple[str, bytes]:
    columns = _columns(rows, f"{kind}-{seed}") if rows else header
    title = f"{kind} 订单导出 2026-06-02（共{len(rows)}条）"
    if fmt == "xlsx":
        return f"{_NAMES[kind]}.xlsx", _xlsx(columns, rows, title if title_row else None, notes_sheet=seed % 2 == 1)
    if fmt not in FORMATS:
        raise ValueError(f"unknown format {fmt!r}: one of {FORMATS}")
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    if title_row:
        writer.writerow([title])
    writer.writerow(columns)
    for row in rows:
        writer.writerow([row[c] for c in columns])
    encoding = {"csv-utf8": "utf-8", "csv-bom": "utf-8-sig", "csv-gb18030": "gb18030"}[fmt]
    return f"{_NAMES[kind]}.csv", buffer.getvalue().encode(encoding)


def _xlsx(columns: list[str], rows: list[Row], title: str | None, *, notes_sheet: bool) -> bytes:
    if len(rows) > 2000:  # openpyxl takes ~40 s for 100k rows: benchmarks get the same cells written directly
        return _xlsx_direct(columns, rows, title)
    from openpyxl import Workbook

    book = Workbook(write_only=True)
    if notes_sheet:  # some exports open on a sheet of notes; the orders are on the next one
        notes = book.create_sheet("说明")
        notes.append(["本文件由平台导出，金额单位：元"])
    sheet = book.create_sheet("订单")
    if title:
        sheet.append([title])
    sheet.append(columns)
    for row in rows:
        sheet.append([row[c] for c in columns])
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()


def export_files(
    platform: str,
    lines: list[SampleLine],
    *,
    fmt: str = "csv-utf8",
    timezone: str = "Asia/Shanghai",
    title_row: bool = False,
    seed: int = 0,
) -> list[tuple[str, bytes]]:
    """The platform's export of ``lines`` as ``[(filename, content)]``: one file, or two for taobao
    (the order report, then the item report). ``seed`` picks the column order (and, in XLSX, whether
    a sheet of notes comes first); ``title_row`` puts a title above the header."""
    typed = fmt == "xlsx"
    if platform == "taobao":
        order_rows, item_rows = _taobao(lines, timezone, typed)
        return [
            _serialise("taobao-orders", order_rows, [], fmt=fmt, title_row=title_row, seed=seed),
            _serialise("taobao-items", item_rows, [], fmt=fmt, title_row=title_row, seed=seed),
        ]
    if platform not in _BUILDERS:
        raise ValueError(f"unknown platform {platform!r}: one of {PLATFORMS}")
    rows = _BUILDERS[platform](lines, timezone, typed)
    return [_serialise(platform, rows, [], fmt=fmt, title_row=title_row, seed=seed)]


def export_file(
    platform: str,
    lines: list[SampleLine],
    *,
    fmt: str = "csv-utf8",
    timezone: str = "Asia/Shanghai",
    title_row: bool = False,
    seed: int = 0,
) -> tuple[str, bytes]:
    """The platform's export of ``lines`` as one ``(filename, content)`` (taobao: use ``export_files``)."""
    if platform == "taobao":
        raise ValueError("taobao exports two reports: use export_files")
    return export_files(platform, lines, fmt=fmt, timezone=timezone, title_row=title_row, seed=seed)[0]


# --- ready-made lines -----------------------------------------------------------------------------

_PRODUCTS = (
    ("APPLE-5", "红富士苹果", "5斤装", 6980),
    ("HONEY-1", "土蜂蜜", "500g", 4800),
    ("RICE-10", "稻花香大米", "10kg", 123450),
    ("TEA-2", "高山绿茶", "礼盒", 19900),
)
_PLACES = (("浙江省", "杭州市"), ("广东省", "深圳市"), ("四川省", "成都市"), ("北京市", "北京市"))


def sample_lines(
    n: int,
    *,
    start: datetime,
    minutes: int = 60,
    statuses: tuple[str, ...] = ("paid",),
    products: tuple[tuple[str, str, str, int], ...] = _PRODUCTS,
    prefix: str = "69201",
    items_per_order: int = 1,
) -> list[SampleLine]:
    """``n`` varied lines paid from ``start`` over ``minutes`` (cycling ``statuses``, ``products`` as
    ``(sku, name, spec, unit price fen)``); ``items_per_order`` lines share an order (taobao: paid
    together, same address). Amounts are unit price × quantity; quantities 1-3; ids 19 digits."""
    out = []
    for i in range(n):
        sku, name, spec, price = products[i % len(products)]
        order = i // items_per_order
        quantity = 1 + (order + i) % 3
        province, city = _PLACES[order % len(_PLACES)]
        offset = (order * 37) % (minutes * 60) if minutes else 0
        status = statuses[order % len(statuses)] if items_per_order > 1 else statuses[i % len(statuses)]
        out.append(
            SampleLine(
                line_id=f"{prefix}{i:014d}",
                order_ref=f"{prefix}{order:013d}0" if items_per_order > 1 else f"{prefix}{i:014d}",
                product_name=name,
                spec=spec,
                merchant_code=sku,
                quantity=quantity,
                amount_fen=price * quantity,
                paid_at=(start.astimezone(UTC) + timedelta(seconds=offset)).replace(microsecond=0),
                province=province,
                city=city,
                status=status,
            )
        )
    return out


def _xlsx_direct(columns: list[str], rows: list[Row], title: str | None) -> bytes:
    """A minimal XLSX (inline strings, numbers, dates as serials with a date style), as Excel reads it."""
    from xml.sax.saxutils import escape

    def ref(index: int, number: int) -> str:
        letters, n = "", index + 1
        while n:
            n, rem = divmod(n - 1, 26)
            letters = chr(65 + rem) + letters
        return f"{letters}{number}"

    def cell(value: object, index: int, number: int) -> str:
        if isinstance(value, datetime):
            serial = (value - datetime(1899, 12, 30)).total_seconds() / 86400
            return f'<c r="{ref(index, number)}" s="1"><v>{serial!r}</v></c>'
        if isinstance(value, (int, float)):
            return f'<c r="{ref(index, number)}"><v>{value!r}</v></c>'
        text = escape(str(value))
        return f'<c r="{ref(index, number)}" t="inlineStr"><is><t xml:space="preserve">{text}</t></is></c>'

    table = ([[title]] if title else []) + [columns] + [[row[c] for c in columns] for row in rows]
    body = "".join(
        f'<row r="{n}">' + "".join(cell(v, i, n) for i, v in enumerate(values)) + "</row>"
        for n, values in enumerate(table, start=1)
    )
    main = "http://schemas.openxmlformats.org/spreadsheetml/2006/main"
    rel = "http://schemas.openxmlformats.org/officeDocument/2006/relationships"
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("[Content_Types].xml", (
            '<?xml version="1.0" encoding="UTF-8"?><Types xmlns="http://schemas.openxmlformats.org/package/2006/'
            'content-types"><Default Extension="rels" ContentType="application/vnd.openxmlformats-package.'
            'relationships+xml"/><Default Extension="xml" ContentType="application/xml"/><Override PartName='
            '"/xl/workbook.xml" ContentType="application/vnd.openxmlformats-officedocument.spreadsheetml.sheet.'
            'main+xml"/><Override PartName="/xl/worksheets/sheet1.xml" ContentType="application/vnd.openxml'
            'formats-officedocument.spreadsheetml.worksheet+xml"/><Override PartName="/xl/styles.xml" Content'
            'Type="application/vnd.openxmlformats-officedocument.spreadsheetml.styles+xml"/></Types>'))
        archive.writestr("_rels/.rels", (
            f'<?xml version="1.0" encoding="UTF-8"?><Relationships xmlns="http://schemas.openxmlformats.org/'
            f'package/2006/relationships"><Relationship Id="rId1" Type="{rel}/officeDocument" '
            'Target="xl/workbook.xml"/></Relationships>'))
        archive.writestr("xl/workbook.xml", (
            f'<?xml version="1.0" encoding="UTF-8"?><workbook xmlns="{main}" xmlns:r="{rel}"><sheets>'
            '<sheet name="订单" sheetId="1" r:id="rId1"/></sheets></workbook>'))
        archive.writestr("xl/_rels/workbook.xml.rels", (
            '<?xml version="1.0" encoding="UTF-8"?><Relationships xmlns="http://schemas.openxmlformats.org/'
            f'package/2006/relationships"><Relationship Id="rId1" Type="{rel}/worksheet" '
            f'Target="worksheets/sheet1.xml"/><Relationship Id="rId2" Type="{rel}/styles" Target="styles.xml"/>'
            '</Relationships>'))
        archive.writestr("xl/styles.xml", (
            f'<?xml version="1.0" encoding="UTF-8"?><styleSheet xmlns="{main}"><numFmts count="1"><numFmt '
            'numFmtId="164" formatCode="yyyy-mm-dd hh:mm:ss"/></numFmts><fonts count="1"><font/></fonts>'
            '<fills count="1"><fill><patternFill patternType="none"/></fill></fills><borders count="1"><border/></borders><cellXfs count="2"><xf/>'
            '<xf numFmtId="164" applyNumberFormat="1"/></cellXfs></styleSheet>'))
        archive.writestr("xl/worksheets/sheet1.xml", (
            f'<?xml version="1.0" encoding="UTF-8"?><worksheet xmlns="{main}"><sheetData>{body}</sheetData>'
            "</worksheet>"))
    return out.getvalue()
