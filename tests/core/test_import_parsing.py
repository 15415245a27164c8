"""Reading the platforms' order exports (issue 14 item 1): every platform in every format, and the
files that cannot be read. The sample files come from tests/imports_samples.py."""

from __future__ import annotations

import csv
import io
import zipfile
from datetime import UTC, datetime

import pytest

from livesale.core.errors import InvalidInput
from livesale.core.imports.lines import ExportLine
from livesale.core.imports.parsing import ExportUnreadable, parse_export
from tests.imports_samples import (
    FORMATS,
    PLATFORMS,
    SampleLine,
    expected_export_lines,
    export_file,
    export_files,
    sample_lines,
)

START = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)  # 20:00 in Shanghai
ZONE = "Asia/Shanghai"


def _lines(platform: str) -> list[SampleLine]:
    if platform == "taobao":  # orders of two items; refunds per item, unpaid per order
        return sample_lines(16, start=START, items_per_order=2, statuses=("paid", "refunded", "paid", "not_paid"))
    return sample_lines(17, start=START, statuses=("paid", "paid", "refunded", "not_paid", "paid", "refunded"))


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("platform", PLATFORMS)
def test_every_platform_in_every_format_reads_back_the_lines(platform, fmt):
    lines = _lines(platform)
    for title_row, seed in ((False, 0), (True, 1)):  # seed: another column order (and a notes sheet in XLSX)
        files = export_files(platform, lines, fmt=fmt, title_row=title_row, seed=seed)
        parsed = parse_export(files, platform=platform, timezone=ZONE)
        assert parsed == expected_export_lines(platform, lines, title_row=title_row)
    assert {line.status for line in parsed} == {"paid", "refunded", "not_paid"}


def test_what_a_douyin_file_says_is_read_exactly():
    """The samples' expectations spelled out once, for one file: ids without their tab or
    apostrophe, 1,234.50 / ¥ / full-width amounts in fen, Shanghai times in UTC, status words."""
    lines = sample_lines(8, start=START, statuses=("paid", "paid", "refunded", "not_paid"))
    name, content = export_file("douyin", lines, fmt="csv-gb18030", title_row=True)
    text = content.decode("gb18030")
    assert "\t6920100000000000001" in text and "'6920100000000000002" in text
    assert "２４６９．００" in text and "¥144.00" in text  # full-width 2,469.00 and ¥
    parsed = parse_export([(name, content)], platform="douyin", timezone=ZONE)
    rice = parsed[2]
    assert rice.row == 5  # title row 1, header row 2
    assert rice.line_id == "6920100000000000002"
    assert rice.merchant_code == "RICE-10" and rice.quantity == 2 and rice.amount_fen == 246_900
    assert rice.paid_at == datetime(2026, 6, 1, 12, 1, 14, tzinfo=UTC)
    assert rice.status == "refunded"  # 售后完成
    assert parsed[1].merchant_code == "HONEY-1"  # from 货号, 商家编码 being empty
    assert parsed[3].status == "not_paid" and parsed[3].paid_at is None
    assert [p.amount_fen for p in parsed[:2]] == [6980, 14400]


def test_times_are_read_in_the_sessions_time_zone():
    lines = sample_lines(3, start=datetime(2026, 6, 1, 3, 30, tzinfo=UTC))
    for zone in ("America/Los_Angeles", "Asia/Shanghai", "UTC"):
        files = export_files("kuaishou", lines, fmt="csv-utf8", timezone=zone)
        parsed = parse_export(files, platform="kuaishou", timezone=zone)
        assert [p.paid_at for p in parsed] == [line.paid_at for line in lines]
    # The same Shanghai file read as a Los Angeles session's is 15 hours later.
    files = export_files("kuaishou", lines, fmt="csv-utf8", timezone=ZONE)
    parsed = parse_export(files, platform="kuaishou", timezone="America/Los_Angeles")
    assert (parsed[0].paid_at - lines[0].paid_at).total_seconds() == 15 * 3600


def _csv(rows: list[list[str]], encoding: str = "utf-8") -> bytes:
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="\r\n").writerows(rows)
    return buffer.getvalue().encode(encoding)


DOUYIN_HEADER = ["主订单编号", "子订单编号", "选购商品", "商品规格", "商家编码", "商品数量", "订单应付金额",
                 "支付完成时间", "订单状态", "售后状态", "省", "市"]


def _douyin_row(**changes: str) -> list[str]:
    row = dict(zip(DOUYIN_HEADER, ["P1", "'6920000000000000001", "苹果", "5斤", "APPLE-5", "2", "139.60",
                                    "2026-06-01 20:15:03", "已发货", "", "浙江省", "杭州市"], strict=True))
    row.update(changes)
    return list(row.values())


def test_a_per_order_douyin_export_uses_the_main_order_id():
    header = [h for h in DOUYIN_HEADER if h != "子订单编号"]
    rows = [header, [v for h, v in zip(DOUYIN_HEADER, _douyin_row(), strict=True) if h != "子订单编号"]]
    [line] = parse_export([("d.csv", _csv(rows))], platform="douyin", timezone=ZONE)
    assert line == ExportLine(
        row=2, line_id="P1", order_ref="P1", product_name="苹果", spec="5斤", merchant_code="APPLE-5", quantity=2,
        amount_fen=13960, paid_at=datetime(2026, 6, 1, 12, 15, 3, tzinfo=UTC), province="浙江省", city="杭州市",
        status="paid",
    )


def test_a_paid_line_without_payment_time_takes_the_order_time_or_is_refused():
    header = [*DOUYIN_HEADER, "订单提交时间"]
    rows = [header, [*_douyin_row(**{"支付完成时间": ""}), "2026-06-01 20:10:00"]]
    [line] = parse_export([("d.csv", _csv(rows))], platform="douyin", timezone=ZONE)
    assert line.paid_at == datetime(2026, 6, 1, 12, 10, tzinfo=UTC)
    with pytest.raises(ExportUnreadable) as caught:
        parse_export([("d.csv", _csv([DOUYIN_HEADER, _douyin_row(**{"支付完成时间": ""})]))],
                     platform="douyin", timezone=ZONE)
    assert (caught.value.row, caught.value.column) == (2, "支付完成时间")


def test_taobao_shares_an_orders_payment_among_its_items_exactly():
    """A discount leaves the order's payment below its items' list prices: the shares add up to it."""
    orders = _csv([["订单编号", "买家实际支付金额", "订单状态", "收货地址", "订单付款时间"],
                   ["'1001", "100.00", "交易成功", "浙江省杭州市西湖区文三路1号", "2026/6/1 20:15"]])
    items = _csv([["订单编号", "标题", "价格", "购买数量", "商品属性", "商家编码"],
                  ["1001", "苹果", "30.00", "1", "5斤", "APPLE-5"],
                  ["1001", "蜂蜜", "40.00", "2", "", "HONEY-1"]], "gb18030")
    parsed = parse_export([("items.csv", items), ("orders.csv", orders)], platform="taobao", timezone=ZONE)
    assert [(p.line_id, p.amount_fen, p.province, p.city) for p in parsed] == [
        ("1001-APPLE-5-5斤", 2727, "浙江省", "杭州市"),
        ("1001-HONEY-1", 7273, "浙江省", "杭州市"),
    ]
    assert parsed[0].paid_at == datetime(2026, 6, 1, 12, 15, tzinfo=UTC)


# --- files that cannot be read --------------------------------------------------------------------


def _refused(files, platform="douyin") -> ExportUnreadable:
    with pytest.raises(ExportUnreadable) as caught:
        parse_export(files, platform=platform, timezone=ZONE)
    error = caught.value
    assert isinstance(error, InvalidInput) and error.field == "file"
    assert "\n" not in error.message
    return error


@pytest.mark.parametrize(
    "content",
    [
        b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00",
        bytes(range(256)) * 4,
        b"PK\x03\x04 not really a zip",
    ],
)
def test_a_file_that_is_not_csv_or_xlsx_is_refused(content):
    error = _refused([("orders.csv", content)])
    assert "not a CSV" in error.message


def test_an_old_xls_file_is_refused_with_what_to_do():
    error = _refused([("orders.xls", b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + b"\x00" * 100)])
    assert ".xlsx or CSV" in error.message


def test_a_zip_without_a_workbook_is_refused():
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("readme.txt", "hello")
    assert "not a CSV or XLSX" in _refused([("orders.xlsx", buffer.getvalue())]).message


def test_a_file_without_a_recognisable_header_is_refused():
    error = _refused([("orders.csv", _csv([["name", "price"], ["苹果", "1.00"]]))])
    assert error.row is None and "no header row" in error.message
    # Another platform's export is not this one's.
    kuaishou = export_file("kuaishou", sample_lines(2, start=START))
    error = _refused([kuaishou], platform="channels")  # many of its columns are Channels' too
    assert (error.row, error.column) == (1, "商品实际价格(总共)")


def test_a_missing_required_column_is_named():
    header = [h for h in DOUYIN_HEADER if h != "订单应付金额"]
    rows = [["抖店订单导出"], header, [v for h, v in zip(DOUYIN_HEADER, _douyin_row(), strict=True)
                                   if h != "订单应付金额"]]
    error = _refused([("d.csv", _csv(rows))])
    assert (error.row, error.column) == (2, "订单应付金额")
    assert error.message.startswith("row 2, column 订单应付金额:")


@pytest.mark.parametrize(
    ("column", "value", "said"),
    [
        ("订单应付金额", "12,3x", "'12,3x' is not an amount in yuan"),
        ("订单应付金额", "-5.00", "is not an amount in yuan"),
        ("订单应付金额", "1.234", "is not an amount in yuan"),
        ("商品数量", "两", "is not a quantity"),
        ("商品数量", "0", "is not a quantity"),
        ("支付完成时间", "昨天晚上", "is not a date and time"),
        ("支付完成时间", "2026-02-30 20:00:00", "is not a date and time"),
        ("子订单编号", "6.92E+18", "cannot be recovered"),
        ("子订单编号", "'6.92001E+18", "cannot be recovered"),
    ],
)
def test_a_bad_value_is_refused_naming_row_and_column(column, value, said):
    rows = [DOUYIN_HEADER, _douyin_row(), _douyin_row(**{"子订单编号": "6920000000000000002"}),
            _douyin_row(**{column: value})]
    for encoding in ("utf-8", "gb18030"):
        error = _refused([("d.csv", _csv(rows, encoding))])
        assert (error.row, error.column) == (4, column)
        assert error.message.startswith(f"row 4, column {column}: ") and said in error.message


def test_a_mangled_id_in_an_xlsx_number_cell_is_refused():
    from openpyxl import Workbook

    book = Workbook()
    sheet = book.active
    sheet.append(DOUYIN_HEADER)
    row = _douyin_row()
    row[DOUYIN_HEADER.index("子订单编号")] = 6.920000000000001e18  # what Excel keeps of a 19-digit id
    sheet.append(row)
    buffer = io.BytesIO()
    book.save(buffer)
    error = _refused([("d.xlsx", buffer.getvalue())])
    assert (error.row, error.column) == (2, "子订单编号") and "cannot be recovered" in error.message


def test_taobao_items_need_their_orders():
    orders, items = export_files("taobao", sample_lines(4, start=START, items_per_order=2))
    assert "order report" in _refused([items], platform="taobao").message
    other_orders = export_files("taobao", sample_lines(2, start=START, prefix="69999"))[0]
    error = _refused([other_orders, items], platform="taobao")
    assert error.file == items[0] and (error.row, error.column) == (2, "订单编号")
    assert error.message.startswith(f"{items[0]}: row 2, column 订单编号: order ")
