"""livesale: live sales tracking for livestream selling sessions."""

from __future__ import annotations

import secrets
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from flask import Flask

from . import embedded_redis
from .config import check_settings, database_url, ensure_instance_folder, instance_path, load_settings
from .extensions import backend, init_compression, init_socketio

_PACKAGE_DIR = Path(__file__).resolve().parent


def _template_folder() -> str:
    # In a wheel the templates are shipped inside the package; in a source
    # checkout they sit at the top level, beside the package.
    inside = _PACKAGE_DIR / "templates"
    return str(inside if inside.is_dir() else _PACKAGE_DIR.parent / "templates")


def create_app(config: Mapping[str, Any] | None = None) -> Flask:
    """Build the app from ``LIVESALE_*`` settings, overridden by ``config``.

    Nothing here starts a process, migrates, or talks to the network: the
    embedded Redis is started by the CLI (``livesale serve``), and the
    schema by ``livesale db upgrade``.
    """
    settings = load_settings()
    settings.update(config or {})
    # Settings are checked before anything is written: a refused configuration leaves no folder behind.
    check_settings(settings)
    app = Flask(
        __name__,
        instance_path=str(instance_path(settings)),
        instance_relative_config=True,
        template_folder=_template_folder(),
    )
    ensure_instance_folder(Path(app.instance_path))
    init_config(app, settings)
    init_extensions(app)
    init_web(app)
    return app


def init_config(app: Flask, settings: dict[str, Any]) -> None:
    if not settings.get("SECRET_KEY"):
        # Development only (check_settings refuses this in production): a
        # random key per instance, never a fixed default.
        settings["SECRET_KEY"] = _dev_secret(Path(app.instance_path))
    settings["INSTANCE_PATH"] = app.instance_path
    settings["DATABASE_URL"] = database_url(settings, Path(app.instance_path))
    if not settings.get("REDIS_URL"):
        settings["REDIS_URL"] = embedded_redis.redis_url(app.instance_path)
        settings["EMBEDDED_REDIS"] = True
    app.config.from_mapping(settings)
    app.config["TESTING"] = settings.get("ENV") == "testing"


def _dev_secret(instance: Path) -> str:
    path = instance / "dev-secret-key"
    if not path.exists():
        path.write_text(secrets.token_urlsafe(48))
        path.chmod(0o600)
    return path.read_text().strip()


def init_extensions(app: Flask) -> None:
    backend.init_app(app)
    init_socketio(app)
    init_compression(app)


def init_web(app: Flask) -> None:
    from .live import init_app as init_live
    from .web import init_app as init_web_app

    init_web_app(app)
    init_live(app)
