"""How money and percentages are written on pages: the rule is ``livesale/core/formats.py``.

It lives in ``core`` (no Flask) so that the group-chat robots' messages
(``core.robot_messages``) write money exactly as pages do; change it there.
"""

from __future__ import annotations

from livesale.core.formats import (
    DASH,
    LRM,
    MINUS,
    count_diff,
    mark,
    money_big,
    money_diff,
    money_exact,
    percent,
    percent_value,
    signed_number,
)

__all__ = ["DASH", "LRM", "MINUS", "count_diff", "mark", "money_big", "money_diff", "money_exact", "percent",
           "percent_value", "signed_number"]
