"""Sales figures: the numbers a session's totals are made of.

``Figures`` is used three ways with one shape: the absolute figures computed
from SQL, the running figures kept in Redis, and the signed change one write
transaction makes (a delta). Keeping one shape means the three can be added
and compared directly, which is what the tests and the rebuild rely on.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable

#: The platforms' codes, as sessions, order channels and imports name them.
PLATFORM_CODES = frozenset({"douyin", "kuaishou", "channels", "taobao"})


def channel_key(channel: str) -> str:
    """The key an order's channel is counted under: a platform's code in any case is that
    platform (``Douyin`` and ``douyin`` are one line, not two lines both shown as 抖音);
    any other text as it was typed (already trimmed by the validation); ``""`` when not given."""
    lower = channel.lower()
    return lower if lower in PLATFORM_CODES else channel


@dataclasses.dataclass(slots=True)
class Figures:
    amount_fen: int = 0
    orders: int = 0
    items: int = 0
    #: sku -> [quantity, amount_fen]
    by_product: dict[str, list[int]] = dataclasses.field(default_factory=dict)
    #: buyer region ("" when not given) -> [orders, amount_fen]
    by_region: dict[str, list[int]] = dataclasses.field(default_factory=dict)
    #: minute since the start -> [amount_fen, orders]
    by_minute: dict[int, list[int]] = dataclasses.field(default_factory=dict)
    #: channel (``channel_key``; "" when not given) -> [orders, amount_fen]
    by_channel: dict[str, list[int]] = dataclasses.field(default_factory=dict)

    def add_order(
        self, *, sku: str, quantity: int, amount_fen: int, region: str, minute: int, channel: str = "", sign: int = 1
    ) -> None:
        self.amount_fen += sign * amount_fen
        self.orders += sign
        self.items += sign * quantity
        product = self.by_product.setdefault(sku, [0, 0])
        product[0] += sign * quantity
        product[1] += sign * amount_fen
        reg = self.by_region.setdefault(region, [0, 0])
        reg[0] += sign
        reg[1] += sign * amount_fen
        per_minute = self.by_minute.setdefault(minute, [0, 0])
        per_minute[0] += sign * amount_fen
        per_minute[1] += sign
        per_channel = self.by_channel.setdefault(channel_key(channel), [0, 0])
        per_channel[0] += sign
        per_channel[1] += sign * amount_fen

    def without_empty(self) -> Figures:
        """A copy without products, regions, minutes and channels that net to nothing."""
        return Figures(
            amount_fen=self.amount_fen,
            orders=self.orders,
            items=self.items,
            by_product={k: list(v) for k, v in self.by_product.items() if any(v)},
            by_region={k: list(v) for k, v in self.by_region.items() if any(v)},
            by_minute={k: list(v) for k, v in self.by_minute.items() if any(v)},
            by_channel={k: list(v) for k, v in self.by_channel.items() if any(v)},
        )

    def timeline(self) -> list[dict[str, int]]:
        """Per-minute figures from minute 0 to the last minute with sales, gaps as zeros."""
        if not self.by_minute:
            return []
        last = max(self.by_minute)
        return [
            {"minute": m, "amount_fen": self.by_minute.get(m, [0, 0])[0], "orders": self.by_minute.get(m, [0, 0])[1]}
            for m in range(0, last + 1)
        ]

    def peak_minute(self) -> int | None:
        """The minute with the highest amount (the earliest on a tie)."""
        best = None
        for minute in sorted(self.by_minute):
            amount = self.by_minute[minute][0]
            if amount > 0 and (best is None or amount > self.by_minute[best][0]):
                best = minute
        return best


def figures_of(orders: Iterable[tuple[str, int, int, str, int]], *, sign: int = 1) -> Figures:
    """Figures of ``(sku, quantity, amount_fen, region, minute)`` tuples."""
    figures = Figures()
    for sku, quantity, amount, region, minute in orders:
        figures.add_order(sku=sku, quantity=quantity, amount_fen=amount, region=region, minute=minute, sign=sign)
    return figures
