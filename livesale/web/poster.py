"""The 战报 poster: a session's results as a 1080-pixel-wide portrait picture for WeChat groups.

``/sessions/<id>/poster.svg`` is the picture itself, an SVG rendered by a
Jinja template (autoescaped: a title like ``<script>`` or ``]]>`` stays
text); ``/sessions/<id>/poster`` shows it with a button that turns it into
a PNG in the browser (``static/js/poster.js``), so the phone's own fonts draw
Chinese and Uyghur and the server needs neither fonts nor a renderer.

The figures come from ``core.poster`` (the report's own functions); this
module only lays them out: SVG has no line breaking, so titles are wrapped
and names shortened here by an estimate of their width, and for Uyghur the
layout is mirrored (right to left) with every figure isolated so that it
never reorders inside the Arabic-script text.
"""

from __future__ import annotations

import re
import unicodedata
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from flask import Blueprint, Response, abort, render_template, url_for
from flask.typing import ResponseReturnValue
from flask_babel import gettext as _
from flask_login import login_required

from livesale.core import poster as poster_service
from livesale.core.errors import Conflict
from livesale.core.poster import PosterData
from livesale.extensions import backend

from . import formats
from .i18n import lang, local_time, text_dir
from .login import current_actor
from .pages import session_for

bp = Blueprint("poster", __name__)

#: The poster's width in CSS pixels (and the PNG's in device pixels).
WIDTH = 1080
MARGIN = 64
INNER = WIDTH - 2 * MARGIN
#: Phones' own fonts: Chinese (iOS, Windows, Android/Linux), then Uyghur (UKIJ on Uyghur PCs, Noto on Android).
FONTS = "'PingFang SC', 'Microsoft YaHei', 'Noto Sans CJK SC', 'UKIJ Tuz', 'Noto Naskh Arabic', sans-serif"
#: The poster's own policy when opened by itself: it loads nothing and runs nothing.
SVG_CSP = "default-src 'none'; frame-ancestors 'none'"

#: Characters XML 1.0 does not allow at all (escaping cannot help): dropped from the rendered poster.
_NOT_XML = re.compile("[^\t\n\r\u0020-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")
#: Characters a file name should not hold on any phone or PC.
_NOT_IN_FILENAMES = re.compile(r'[\\/:*?"<>|\x00-\x1f\x7f]+')
#: Left-to-right isolate … pop directional isolate: a figure stays one unit inside right-to-left text;
#: a first-strong isolate keeps a Chinese title in one piece inside Uyghur text (and the reverse).
LRI, RLI, FSI, PDI = "\u2066", "\u2067", "\u2068", "\u2069"


# --- text measure (an estimate: SVG does not wrap, and the server has no fonts) ------------------------


def _em(ch: str) -> float:
    """A character's advance in em, a little generous so estimates err on the short side."""
    if unicodedata.east_asian_width(ch) in "WF":
        return 1.0
    if ch == " ":
        return 0.3
    if unicodedata.category(ch) in ("Mn", "Me", "Cf"):
        return 0.0
    if ch.isupper():
        return 0.7
    if "\u0600" <= ch <= "\u06ff" or "\ufb50" <= ch <= "\ufeff":
        return 0.5  # Arabic script (Uyghur): Naskh faces run a little wider than the sans ones
    return 0.56


def text_width(text: str, size: float) -> float:
    return sum(_em(ch) for ch in text) * size


def fit(text: str, size: float, width: float) -> str:
    """``text`` shortened with "…" to about ``width`` pixels at ``size``."""
    if text_width(text, size) <= width:
        return text
    out, used = "", _em("…") * size
    for ch in text:
        used += _em(ch) * size
        if used > width:
            break
        out += ch
    return out.rstrip() + "…"


def _breakable(before: str, after: str) -> bool:
    return before == " " or unicodedata.east_asian_width(before) in "WF" or unicodedata.east_asian_width(after) in "WF"


def wrap(text: str, size: float, width: float, max_lines: int) -> list[str]:
    """Lines of at most ``width`` pixels: broken at spaces, or between Chinese characters; the last
    line shortened with "…" when the text needs more than ``max_lines``."""
    lines: list[str] = []
    rest = text.strip()
    while rest:
        if len(lines) == max_lines - 1 or text_width(rest, size) <= width:
            lines.append(fit(rest, size, width))
            break
        used, cut = 0.0, 0
        for i, ch in enumerate(rest):
            used += _em(ch) * size
            if used > width:
                break
            if i + 1 < len(rest) and _breakable(ch, rest[i + 1]):
                cut = i + 1
        if cut == 0:  # one long word: cut it where it overflows
            cut = max(1, i)
        lines.append(rest[:cut].rstrip())
        rest = rest[cut:].lstrip()
    return lines


# --- the layout ----------------------------------------------------------------------------------------


def _duration(seconds: int) -> str:
    """As the report writes it: ``1:52:30``."""
    return f"{seconds // 3600}:{seconds % 3600 // 60:02d}:{seconds % 60:02d}"


def _clock(value: datetime, tz: str) -> str:
    return value.astimezone(ZoneInfo(tz)).strftime("%H:%M")


class Layout:
    """Where things go: a running ``y`` down the poster, and ``x`` mirrored for right-to-left text."""

    def __init__(self, rtl: bool):
        self.rtl = rtl
        self.y = 0

    def x(self, value: float) -> float:
        return round(WIDTH - value if self.rtl else value, 1)

    def rect_x(self, value: float, width: float) -> float:
        """A box's left edge, for a box that starts at ``value`` in reading order."""
        return round(WIDTH - value - width if self.rtl else value, 1)


def _curve(layout: Layout, values: list[int], *, left: float, top: float, width: float,
           height: float) -> dict[str, Any] | None:
    """The cumulative-sales line and the area under it, as SVG path data (numbers only)."""
    if not values or values[-1] <= 0:
        return None
    peak = max(values)
    steps = max(1, len(values) - 1)
    points = [(left + width * i / steps, top + height - height * v / peak) for i, v in enumerate(values)]
    if len(points) == 1:  # one minute of sales: a flat line across
        points = [(left, points[0][1]), (left + width, points[0][1])]
    points = [(layout.x(px), round(py, 1)) for px, py in points]
    line = "M" + " L".join(f"{px},{py}" for px, py in points)
    bottom = round(top + height, 1)
    area = f"{line} L{points[-1][0]},{bottom} L{points[0][0]},{bottom} Z"
    return {"line": line, "area": area, "end": points[-1]}


def poster_context(data: PosterData, *, language: str) -> dict[str, Any]:
    """Everything ``poster/poster.svg`` needs, with positions worked out."""
    info, figures = data.info, data.figures
    rtl = text_dir(language) == "rtl"
    layout = Layout(rtl)

    def iso(text: Any) -> str:
        """A figure kept in one piece inside right-to-left text."""
        return f"{LRI}{text}{PDI}" if rtl else str(text)

    def money(fen: int | None, *, exact: bool = False) -> str:
        if fen is None:
            return "—"
        text = formats.money_exact(fen, language) if exact else formats.money_big(fen, language)
        # Isolated right to left: the formatter's LRM keeps ``¥12.35`` together, and a Uyghur
        # unit word (``مىڭ``) then stays after the figure as read (an LTR isolate put it before).
        return f"{RLI}{text}{PDI}" if rtl else text

    def count(n: int | None) -> str:
        return "—" if n is None else iso(f"{n:,}")

    title_size = 62
    title = wrap(info.title, title_size, INNER, 3)
    if len(title) == 3:
        title_size = 54
        title = wrap(info.title, title_size, INNER, 3)
    people = " · ".join(part for part in [info.village, "、".join(info.hosts)] if part)
    when = local_time(info.started_at, info.timezone)
    if info.ended_at is not None:
        when += f"–{_clock(info.ended_at, info.timezone)}"

    y: dict[str, Any] = {"title": []}
    layout.y = 200
    for _line in title:
        y["title"].append(layout.y)
        layout.y += round(title_size * 1.28)
    layout.y += 6
    y["people"] = layout.y
    layout.y += 50
    y["when"] = layout.y
    layout.y += 50 if data.so_far else 0
    y["so_far"] = layout.y
    layout.y += 44

    total_text = money(figures["amount_fen"])
    total_size = min(168, INNER / max(1.0, text_width(formats.money_big(figures["amount_fen"], language), 1)))
    goal_pct = figures["goal_pct"]
    card_top = layout.y
    y["total_label"] = card_top + 70
    y["total"] = y["total_label"] + 24 + round(total_size * 0.86)
    layout.y = y["total"] + 30
    y["final_note"] = None
    if data.final.is_platform:
        y["final_note"] = layout.y + 20
        layout.y += 44
    goal = None
    if goal_pct is not None:
        layout.y += 24
        bar_width = INNER - 96
        goal = {
            "text_y": layout.y + 30, "bar_y": layout.y + 56, "bar_width": bar_width,
            "fill": round(bar_width * min(goal_pct, 100) / 100, 1), "exceeded": goal_pct >= 100,
            "goal": money(info.goal_fen), "pct": iso(f"{goal_pct}%"),
        }
        layout.y += 96
    y["total_card"] = (card_top, layout.y + 20 - card_top)
    layout.y += 52

    tiles = [
        ("orders", _("Orders"), count(figures["orders"]), None),
        ("items", _("Items"), count(figures["items"]), None),
        ("avg_order_fen", _("Average order"), money(figures["avg_order_fen"]), None),
        ("duration_s", _("Duration"), iso(_duration(figures["duration_s"])), None),
        ("peak_minute", _("Peak minute"),
         _("minute %(n)s", n=iso(figures["peak_minute"])) if figures["peak_minute"] is not None else "—",
         money(figures["peak_minute_fen"]) if figures["peak_minute"] is not None else None),
        ("sales_per_hour_fen", _("Sales per hour"), money(figures["sales_per_hour_fen"]), None),
    ]
    tile_w, tile_h, gap = (INNER - 2 * 20) / 3, 144, 20
    placed_tiles = []
    for i, (key, label, value, sub) in enumerate(tiles):
        left = MARGIN + (i % 3) * (tile_w + gap)
        top = layout.y + (i // 3) * (tile_h + gap)
        # A long label (Uyghur's are) takes two smaller lines rather than losing its end.
        label_size = 26 if text_width(label, 26) <= tile_w - 40 else 22
        label_lines = wrap(label, label_size, tile_w - 40, 1 if label_size == 26 else 2)
        value_y = top + (104 if len(label_lines) == 1 else 116)
        placed_tiles.append({
            "key": key, "value_raw": figures[key], "rect_x": layout.rect_x(left, tile_w), "top": top,
            "x": layout.x(left + 24), "label_size": label_size, "label_lines": label_lines,
            "value_y": value_y, "value": value, "sub": sub,
            "value_size": (50 if len(label_lines) == 1 else 44) if text_width(value, 50) <= tile_w - 40 else 40,
        })
    layout.y += 2 * tile_h + gap + 48

    chart_top = layout.y
    plot = {"left": MARGIN + 40, "top": chart_top + 110, "width": INNER - 80, "height": 240}
    curve = _curve(layout, data.cumulative, **plot)
    chart = {
        "top": chart_top, "height": 110 + plot["height"] + 80, "label_y": chart_top + 62, "plot": plot,
        "curve": curve, "grid": [round(plot["top"] + plot["height"] * k / 4, 1) for k in range(5)],
        "max": money(max(data.cumulative)) if data.cumulative else None,
        "minutes": len(data.cumulative) - 1 if data.cumulative else 0,
        "axis_y": plot["top"] + plot["height"] + 44,
    }
    layout.y += chart["height"] + 48

    col_w = (INNER - 32) / 2
    row_h = 84

    def ranked(entries: list[poster_service.Ranked], left: float, unit: str) -> list[dict[str, Any]]:
        top_amount = max((e.amount_fen for e in entries), default=0) or 1
        rows = []
        for i, e in enumerate(entries):
            top = layout.y + 78 + i * row_h
            label = e.label if e.label else _("(not given)")
            bar_max = col_w - 56 - 24 - 150
            rows.append({
                "rank": i + 1, "label": fit(label, 30, col_w - 56), "key": e.key, "amount_fen": e.amount_fen,
                "count": e.count, "amount": money(e.amount_fen), "name_y": top + 30, "bar_y": top + 46,
                "rank_x": layout.x(left + 20), "name_x": layout.x(left + 56), "end_x": layout.x(left + col_w - 24),
                "bar_x": layout.rect_x(left + 56, max(8.0, bar_max * e.amount_fen / top_amount)),
                "bar_w": round(max(8.0, bar_max * e.amount_fen / top_amount), 1), "unit": unit,
            })
        return rows

    lists = {
        "top": layout.y, "height": 78 + max(len(data.products), len(data.regions), 1) * row_h + 24,
        "products": ranked(data.products, MARGIN, "quantity"),
        "regions": ranked(data.regions, MARGIN + col_w + 32, "orders"),
        "columns": [(layout.rect_x(MARGIN, col_w), layout.x(MARGIN + 24)),
                    (layout.rect_x(MARGIN + col_w + 32, col_w), layout.x(MARGIN + col_w + 32 + 24))],
        "col_w": col_w,
    }
    layout.y += lists["height"] + 32

    compare: dict[str, Any] = {"top": layout.y}
    if data.previous is not None:
        prev = data.previous
        pct = formats.percent(prev.amount_diff_fen, prev.amount_fen) if prev.amount_fen else None
        if pct is not None and prev.amount_diff_fen > 0:
            pct = "+" + pct
        room = INNER - 64 - text_width(_("Previous session: %(title)s", title=""), 26)
        previous_title = _("Previous session: %(title)s", title=FSI + fit(prev.info.title, 26, room) + PDI)
        day = local_time(prev.info.started_at, prev.info.timezone).split(" ")[0]
        if prev.at_minute is None:
            then = _("%(date)s: %(total)s, %(orders)s orders", date=iso(day), total=money(prev.amount_fen),
                     orders=count(prev.orders))
        else:
            then = _("%(date)s, by minute %(n)s: %(total)s, %(orders)s orders", date=iso(day),
                     n=iso(prev.at_minute), total=money(prev.amount_fen), orders=count(prev.orders))
        compare.update(
            diff=iso(formats.money_diff(prev.amount_diff_fen, language)), up=prev.amount_diff_fen >= 0,
            pct=iso(f"({pct})") if pct else "", orders=iso(_signed(prev.orders_diff)),
            previous=previous_title, then=fit(then, 26, INNER - 64),
            amount_diff_fen=prev.amount_diff_fen, orders_diff=prev.orders_diff, previous_id=prev.info.id, height=236,
        )
    else:
        compare["height"] = 120
    layout.y += compare["height"] + 32

    audience = None
    if data.has_audience:
        af = data.audience_figures
        viewers = data.audience["viewers"]
        # Written as the report's audience section writes them (templates/review/_audience.html).
        known = [
            ("viewers", _("Viewers"), count(viewers)),
            ("peak_viewers", _("Peak viewers"), count(data.audience["peak_viewers"])),
            ("new_followers", _("New followers"), count(data.audience["new_followers"])),
            ("orders_per_viewer", _("Orders per viewer"),
             iso(formats.percent(figures["orders"], viewers)) if af["orders_per_viewer"] is not None and viewers
             else "—"),
            ("sales_per_viewer_fen", _("Sales per viewer"), money(af["sales_per_viewer_fen"], exact=True)),
            ("gpm_fen", _("GPM (sales per 1,000 viewers)"), money(af["gpm_fen"], exact=True)),
        ]
        cell_w = (INNER - 48) / 3 - 16
        labels = [wrap(label, 24, cell_w, 2) for _key, label, _value in known]
        # Each row as tall as its longest label (one or two lines); the values of a row on one line.
        label_rows = [max(len(lines) for lines in labels[row:row + 3]) for row in (0, 3)]
        cells, top = [], layout.y + 112
        for i, ((key, _label, value), lines) in enumerate(zip(known, labels, strict=True)):
            left = MARGIN + 24 + (i % 3) * (INNER - 48) / 3
            rows = label_rows[i // 3]
            cells.append({"key": key, "label_lines": lines, "value": value, "x": layout.x(left),
                          "label_y": top, "value_y": top + 26 * (rows - 1) + 50})
            if i % 3 == 2:
                top += 84 + 26 * rows
        audience = {"top": layout.y, "height": top - layout.y - 4, "cells": cells, "label_y": layout.y + 56}
        layout.y += audience["height"] + 32

    y["footer"] = layout.y + 40
    height = layout.y + 90
    return {
        "W": WIDTH, "H": height, "M": MARGIN, "INNER": INNER, "fonts": FONTS, "rtl": rtl, "language": language,
        "L": layout, "data": data, "info": info, "figures": figures, "y": y,
        "title_lines": title, "title_size": title_size, "people": fit(people, 32, INNER),
        "when": iso(when), "platform": info.platform, "as_of": iso(_clock(data.as_of, info.timezone)),
        "total": total_text, "total_size": round(total_size), "goal": goal, "tiles": placed_tiles,
        "tile_w": round(tile_w, 1), "tile_h": tile_h, "chart": chart, "lists": lists, "compare": compare,
        "audience": audience, "made_at": iso(local_time(data.as_of, info.timezone)),
        "kicker": _("Sales report so far") if data.so_far else _("Sales report"),
        "brand_x": layout.x(MARGIN), "end_x": layout.x(WIDTH - MARGIN), "iso": iso, "tw": text_width,
    }


def _signed(n: int) -> str:
    return f"▲ +{n:,}" if n > 0 else (f"▼ {formats.MINUS}{-n:,}" if n < 0 else "±0")


def poster_filename(title: str) -> str:
    """``<title>-战报.png`` (in the page's language), safe on phones and PCs."""
    safe = _NOT_IN_FILENAMES.sub("_", title).strip(" ._") or "livesale"
    return f"{safe[:60]}-{_('poster')}.png"


# --- views -------------------------------------------------------------------------------------------


@bp.get("/sessions/<int:session_id>/poster")
@login_required
def poster_page(session_id: int) -> ResponseReturnValue:
    """The poster with a button that saves it as a PNG (a live session's says "so far")."""
    info = session_for(session_id)
    return render_template(
        "poster/page.html", info=info, started=info.status != "scheduled",
        svg_url=url_for("poster.poster_svg", session_id=info.id, lang=lang()), filename=poster_filename(info.title),
    )


@bp.get("/sessions/<int:session_id>/poster.svg")
@login_required
def poster_svg(session_id: int) -> ResponseReturnValue:
    """The poster as an SVG, 1080 px wide, in the page's language (``?lang=``); whoever may read the report."""
    info = session_for(session_id)
    actor = current_actor()
    assert actor is not None
    try:
        data = poster_service.poster_data(backend.store, actor=actor, info=info)
    except Conflict:
        abort(409)
    body = render_template("poster/poster.svg", **poster_context(data, language=lang()))
    response = Response(_NOT_XML.sub("", body), mimetype="image/svg+xml")
    response.headers["Content-Type"] = "image/svg+xml; charset=utf-8"
    response.headers["Content-Security-Policy"] = SVG_CSP
    # Live figures move, and a session's figures are not for shared caches.
    response.headers["Cache-Control"] = "no-store"
    return response

