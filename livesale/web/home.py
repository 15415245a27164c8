"""The home page after login, and the site's icon.

The home page is where a person starts: the sessions live now (their totals
kept moving by ``static/js/home.js`` over the ``/live`` push), the next
scheduled ones and the last ended ones, each with one-tap links to the big
screen, the order console and the report. Hosts see their own sessions,
officials and admins all of them (the same rule as the sessions list).
"""

from __future__ import annotations

from pathlib import Path

from flask import Flask, current_app, render_template, send_from_directory
from flask.typing import ResponseReturnValue
from flask_login import login_required

from livesale.core import review as review_service
from livesale.core.errors import Unavailable
from livesale.extensions import backend

from .login import current_actor

#: How many sessions each part of the home page lists (the rest are one click away in /sessions).
LIVE_MAX = 12
SCHEDULED_MAX = 5
ENDED_MAX = 5


def _sessions(status: str, *, limit: int, newest_first: bool) -> list[review_service.ReviewRow]:
    actor = current_actor()
    assert actor is not None
    rows, _ = review_service.review_list(
        backend.store, actor=actor, filters=review_service.ReviewFilters(status=status),
        sort="date", descending=newest_first, limit=limit,
    )
    return rows


@login_required
def index() -> ResponseReturnValue:
    """The sessions live now with their running totals, the next scheduled and the recent ended ones."""
    actor = current_actor()
    assert actor is not None
    try:
        live = _sessions("live", limit=LIVE_MAX, newest_first=True)
    except Unavailable:
        live = None  # Redis is down: the page still lists the rest, and says so
    return render_template(
        "index.html",
        live=live,
        scheduled=_sessions("scheduled", limit=SCHEDULED_MAX, newest_first=False),
        ended=_sessions("ended", limit=ENDED_MAX, newest_first=True),
        can_create=actor.can_write,
    )


def favicon() -> ResponseReturnValue:
    """``/favicon.ico``: what browsers ask for before they read the page's ``<link rel="icon">``."""
    response = send_from_directory(Path(current_app.static_folder or ""), "favicon.ico",
                                   mimetype="image/vnd.microsoft.icon", max_age=7 * 24 * 3600)
    return response


def init_app(app: Flask) -> None:
    # Endpoints without a blueprint prefix: ``url_for("index")`` is the site's home everywhere.
    app.add_url_rule("/", "index", index)
    app.add_url_rule("/favicon.ico", "favicon", favicon)
