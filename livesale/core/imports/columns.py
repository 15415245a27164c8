"""The platforms' export columns: which header names (aliases) mean which field, and which are required.

From ``/work/shared/platform-exports.md``. Headers are compared after NFKC (full-width brackets and
letters read as ASCII), without spaces, quotes or a ``*``, case-insensitively. The first alias of a
field is the name errors use when the column is missing.
"""

from __future__ import annotations

import dataclasses
import unicodedata


@dataclasses.dataclass(frozen=True)
class Layout:
    """One kind of export file: ``fields`` maps a field to its header aliases (best first);
    ``required`` lists groups of fields of which at least one must be present."""

    name: str
    fields: dict[str, tuple[str, ...]]
    required: tuple[tuple[str, ...], ...]

    def aliases(self) -> dict[str, str]:
        """Normalised header name → field."""
        out: dict[str, str] = {}
        for field, names in self.fields.items():
            for name in names:
                out.setdefault(header_key(name), field)
        return out


def header_key(text: str) -> str:
    """A header cell as compared with the aliases."""
    text = unicodedata.normalize("NFKC", text)
    return "".join(text.split()).strip("\ufeff\"'*").lower()


DOUYIN = Layout(
    "douyin",
    {
        "line_id": ("子订单编号", "子订单号", "子订单ID"),
        "order_ref": ("主订单编号", "主订单号", "订单编号", "订单号"),
        "product_name": ("选购商品", "商品名称"),
        "spec": ("商品规格", "规格"),
        "merchant_code": ("商家编码", "SKU编码", "商家SKU编码"),
        "article_no": ("货号",),
        "quantity": ("商品数量", "数量"),
        "amount": ("订单应付金额", "应付金额", "实付金额"),
        "paid_at": ("支付完成时间", "支付时间"),
        "created_at": ("订单提交时间", "下单时间"),
        "status": ("订单状态",),
        "aftersale": ("售后状态",),
        "province": ("省", "省份"),
        "city": ("市", "城市"),
    },
    (("line_id", "order_ref"), ("amount",), ("quantity",), ("paid_at",), ("status",),
     ("product_name", "merchant_code", "article_no")),
)

KUAISHOU = Layout(
    "kuaishou",
    {
        "line_id": ("订单号", "订单编号", "订单ID"),
        "product_name": ("商品名称",),
        "spec": ("商品规格", "规格"),
        "merchant_code": ("SKU编码", "商家编码", "SKU编号"),
        "quantity": ("成交数量", "商品数量", "购买数量", "数量"),
        "amount": ("实付款", "实付金额", "实付款(元)"),
        "paid_at": ("订单支付时间", "支付时间"),
        "created_at": ("订单创建时间",),
        "status": ("订单状态",),
        "aftersale": ("售后状态",),
        "province": ("收货地址-省", "省"),
        "city": ("收货地址-市", "市"),
    },
    (("line_id",), ("amount",), ("quantity",), ("paid_at",), ("status",), ("product_name", "merchant_code")),
)

CHANNELS = Layout(
    "channels",
    {
        "order_ref": ("订单号", "订单编号"),
        "platform_code": ("商品编码(平台)", "商品ID"),
        "merchant_code": ("SKU编码(自定义)", "商品编码(自定义)", "SKU编码", "商家编码"),
        "product_name": ("商品名称",),
        "spec": ("商品属性", "商品规格"),
        "quantity": ("商品数量",),
        "amount": ("商品实际价格(总共)", "商品实际价格"),
        "paid_at": ("支付时间",),
        "created_at": ("订单下单时间",),
        "status": ("订单状态",),
        "aftersale": ("商品售后", "售后状态"),
        "refunded": ("商品已退款金额",),
        "province": ("省",),
        "city": ("市",),
    },
    (("order_ref",), ("amount",), ("quantity",), ("paid_at",), ("status",), ("product_name", "merchant_code")),
)

TAOBAO_ORDERS = Layout(
    "taobao orders",
    {
        "order_ref": ("订单编号",),
        "amount": ("买家实际支付金额", "实付款", "买家实付金额"),
        "status": ("订单状态",),
        "address": ("收货地址",),
        "paid_at": ("订单付款时间", "付款时间"),
        "created_at": ("订单创建时间",),
        "product_name": ("宝贝标题",),
        "quantity": ("宝贝总数量",),
    },
    (("order_ref",), ("amount",), ("paid_at",), ("status",)),
)

TAOBAO_ITEMS = Layout(
    "taobao items",
    {
        "order_ref": ("订单编号",),
        "product_name": ("标题", "商品标题"),
        "price": ("价格", "单价"),
        "quantity": ("购买数量",),
        "spec": ("商品属性",),
        "merchant_code": ("商家编码",),
        "status": ("订单状态",),
        "aftersale": ("退款状态",),
    },
    (("order_ref",), ("product_name",), ("price",), ("quantity",)),
)

GENERIC = Layout(
    "generic",
    {
        "line_id": ("external_id",),
        "order_ref": ("order_id", "order_ref"),
        "merchant_code": ("sku",),
        "product_name": ("name",),
        "spec": ("spec",),
        "quantity": ("quantity",),
        "amount": ("amount_yuan",),
        "paid_at": ("paid_at",),
        "status": ("status",),
        "province": ("province",),
        "city": ("city",),
    },
    (("line_id",), ("amount",), ("quantity",), ("paid_at",), ("merchant_code", "product_name")),
)

#: The file layouts of each platform (taobao: the order report and the item report).
LAYOUTS: dict[str, tuple[Layout, ...]] = {
    "douyin": (DOUYIN,),
    "kuaishou": (KUAISHOU,),
    "channels": (CHANNELS,),
    "taobao": (TAOBAO_ITEMS, TAOBAO_ORDERS),
    "generic": (GENERIC,),
}

# Status words (``platform-exports.md``: "accept them all"). Matched as substrings, in this order:
# refunds, then closed, then never paid, then paid ("买家已付款，等待卖家发货" is paid; "等待买家付款" is not).
REFUND_WORDS = ("退款成功", "售后完成", "已退款", "退款完成", "退货退款完成", "全额退款", "refunded")
CLOSED_WORDS = ("已取消", "交易关闭", "订单关闭", "已关闭", "交易失败", "cancelled", "canceled", "closed")
NOT_PAID_WORDS = ("待支付", "待付款", "等待买家付款", "未付款", "未支付", "not_paid", "unpaid")
PAID_WORDS = (
    "已支付", "已付款", "待发货", "备货中", "已发货", "已签收", "已完成", "交易成功", "等待卖家发货",
    "等待买家确认", "部分发货", "待收货", "已收货", "paid", "shipped", "completed",
)
