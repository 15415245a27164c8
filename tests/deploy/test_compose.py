"""What can be checked of docker-compose.yml and the nginx config without a Docker engine."""

from __future__ import annotations

import re
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
SERVICES = COMPOSE["services"]
NGINX = (ROOT / "docker" / "nginx.conf").read_text()
SECRETS = ("LIVESALE_SECRET_KEY", "POSTGRES_PASSWORD", "REDIS_PASSWORD")


def test_the_topology() -> None:
    assert {"postgres", "redis", "migrate", "nginx"} <= set(SERVICES)
    apps = [name for name, s in SERVICES.items() if s.get("image") == "livesale:latest" and name != "migrate"]
    assert len(apps) >= 2, "two or more app processes"
    assert SERVICES["postgres"]["image"].startswith("postgres:16")
    assert SERVICES["redis"]["image"].startswith("redis:7")
    redis_cmd = SERVICES["redis"]["command"]
    assert "--appendonly yes" in redis_cmd and "--appendfsync everysec" in redis_cmd and "--requirepass" in redis_cmd
    assert any(v.endswith(":/var/lib/postgresql/data") for v in SERVICES["postgres"]["volumes"])
    # Migrations once, before any app process starts.
    assert SERVICES["migrate"]["command"] == ["livesale", "db", "upgrade"]
    for app in apps:
        env = SERVICES[app]["environment"]
        assert SERVICES[app]["depends_on"]["migrate"]["condition"] == "service_completed_successfully"
        assert env["LIVESALE_SOCKETIO_MESSAGE_QUEUE"].startswith("redis://"), "cross-process push via Redis"
        assert env["LIVESALE_DATABASE_URL"].startswith("postgresql")
    # The app image runs `livesale serve` (gunicorn, gevent) with one worker per process.
    dockerfile = (ROOT / "docker" / "Dockerfile").read_text()
    assert 'CMD ["livesale", "serve"' in dockerfile and '"--workers", "1"' in dockerfile


def test_nginx_passes_the_request_id_and_keeps_metrics_internal() -> None:
    conf = (ROOT / "docker" / "nginx.conf").read_text()
    assert conf.count("proxy_set_header X-Request-ID $request_id;") == 4  # pages/API, Socket.IO, widget, imports
    assert "location = /metrics { deny all; }" in conf
    # $host drops the published port (8000:80): Socket.IO's same-origin check would refuse every browser.
    assert "proxy_set_header Host $host;" not in conf and conf.count("proxy_set_header Host $http_host;") == 4
    assert "keepalive_timeout 1s;" in conf


def test_every_long_running_service_has_a_health_check() -> None:
    for name, service in SERVICES.items():
        if service.get("restart") == "no":  # the one-shot migration: it exits when done
            continue
        assert "healthcheck" in service and service["healthcheck"]["test"], name


def test_no_secret_has_a_default() -> None:
    text = (ROOT / "docker-compose.yml").read_text()
    for secret in SECRETS:
        uses = re.findall(rf"\$\{{{secret}([^}}]*)\}}", text)
        assert uses, secret
        assert all(u.startswith(":?") for u in uses), f"{secret} must be required (${{{secret}:?…}}): {uses}"
    example = dict(
        line.split("=", 1) for line in (ROOT / ".env.example").read_text().splitlines()
        if line and not line.startswith("#")
    )
    assert set(SECRETS) <= set(example) and all(example[s] == "" for s in SECRETS)


def test_nginx_keeps_clients_on_one_process_and_upgrades_websockets() -> None:
    assert re.search(r"upstream livesale \{[^}]*\bip_hash;", NGINX)
    apps = re.findall(r"server (app\d+):8000", NGINX)
    assert len(apps) >= 2 and set(apps) <= set(SERVICES)
    socket = re.search(r"location /socket\.io/ \{(.*?)\n    \}", NGINX, re.S).group(1)
    assert "proxy_http_version 1.1;" in socket
    assert "proxy_set_header Upgrade $http_upgrade;" in socket
    assert "proxy_set_header Connection $connection_upgrade;" in socket
    assert re.search(r"map \$http_upgrade \$connection_upgrade \{\s*default upgrade;", NGINX)


def test_nginx_lets_platform_exports_through_and_nothing_else_that_large() -> None:
    """Imports take up to 64 MB (the app's IMPORT_MAX_BYTES); every other body stays capped at 2 MB."""
    from livesale.cluster import nginx_config
    from livesale.web.openapi import IMPORT_MAX_BYTES

    generated = nginx_config(prefix=ROOT, host="127.0.0.1", port=8080, upstreams=["127.0.0.1:8001"])
    for conf in (NGINX, generated):
        assert "client_max_body_size 2m;" in conf
        imports = conf.split("location ~ ^/(api/v1/)?sessions/[0-9]+/imports {", 1)[1].split("}", 1)[0]
        limit_mb = int(imports.split("client_max_body_size ", 1)[1].split("m;", 1)[0])
        assert limit_mb * 1024 * 1024 > IMPORT_MAX_BYTES


MICROCACHE = ("proxy_cache widget;", "proxy_cache_key $scheme$http_host$request_uri;", "proxy_cache_valid 200 404 1s;",
              "proxy_cache_lock on;", "proxy_cache_use_stale updating error timeout;", 'proxy_set_header Cookie "";',
              "proxy_hide_header Set-Cookie;", "add_header X-Cache-Status $upstream_cache_status always;")


def test_both_nginx_configs_put_the_widget_and_only_it_through_the_microcache() -> None:
    """docker/nginx.conf and `livesale cluster --nginx`'s: the same one-second microcache for the widget's
    page, JSON and embed.js (tests/live/test_widget_microcache.py runs the generated one for real)."""
    from livesale.cluster import nginx_config

    generated = nginx_config(prefix=ROOT, host="127.0.0.1", port=8080, upstreams=["127.0.0.1:8001"])
    for conf in (NGINX, generated):
        assert "keys_zone=widget:" in conf and "proxy_cache_background_update on" not in conf
        widget = conf.split("location ~ ^/(widget/[^/]+|embed\\.js)$ {", 1)[1].split("}", 1)[0]
        for line in MICROCACHE:
            assert line in widget, line
            assert conf.count(line) == 1, line  # nowhere else: pages and the API are never cached
