"""The vendored ECharts bundle and our chart helper are served by the app itself (no CDN)."""

from __future__ import annotations

import gzip
import hashlib
import re
from typing import Any

VENDOR = "/static/vendor/echarts"
BUNDLE = f"{VENDOR}/echarts.common.min.js"


def fetch(client: Any, path: str) -> tuple[int, bytes]:
    response = client.get(path)
    try:
        return response.status_code, response.get_data()
    finally:
        response.close()


def test_echarts_bundle_is_served_as_minified_umd(client: Any) -> None:
    status, body = fetch(client, BUNDLE)
    assert status == 200
    assert len(body) > 500_000
    head = body[:2000].decode("utf-8")
    assert head.lstrip().startswith("/*\n* Licensed to the Apache Software Foundation (ASF)")
    assert "Apache License, Version 2.0" in head
    # The UMD wrapper right after the licence comment: CommonJS, AMD, else a global ``echarts``.
    code = head[head.index("*/") + 2 :].lstrip()
    assert code.startswith('!function(t,e){"object"==typeof exports&&"undefined"!=typeof module')
    assert "define.amd" in code
    assert ".echarts={}" in code


def test_bundle_is_the_common_build_with_every_series_type_charts_js_draws(client: Any) -> None:
    """The review pages load the ``echarts.common`` build (219 KB gzipped; the full one is 334 KB)."""
    status, body = fetch(client, BUNDLE)
    assert status == 200
    assert len(gzip.compress(body, 9)) < 240_000
    # Each series class in the bundle declares ``type="series.<name>"``.
    bundled = set(re.findall(rb'\.type="series\.(\w+)"', body)) - {b"__base__", b"__base_bar__"}
    assert bundled == {b"line", b"bar", b"pie", b"scatter"}
    status, helper = fetch(client, "/static/js/charts.js")
    assert status == 200
    # Every ``type: "…"`` in the helper but the axes' and the axis pointer's kinds is a series type.
    drawn = set(re.findall(rb'type: "(\w+)"', helper)) - {b"value", b"category", b"time", b"log", b"shadow"}
    assert drawn and drawn <= bundled, drawn


def test_licence_and_notice_are_served(client: Any) -> None:
    status, body = fetch(client, f"{VENDOR}/LICENSE")
    assert status == 200
    assert b"Apache License" in body
    assert b"Version 2.0" in body
    status, body = fetch(client, f"{VENDOR}/NOTICE")
    assert status == 200
    assert b"Apache ECharts" in body


def test_readme_names_version_and_checksum_of_the_served_file(client: Any) -> None:
    status, readme = fetch(client, f"{VENDOR}/README.md")
    assert status == 200
    text = readme.decode("utf-8")
    assert re.search(r"`echarts` 5\.\d+\.\d+", text), text
    declared = re.search(r"sha256[^`]*`([0-9a-f]{64})`", text)
    assert declared, text
    status, bundle = fetch(client, BUNDLE)
    assert status == 200
    assert hashlib.sha256(bundle).hexdigest() == declared.group(1)
    version = re.search(r"`echarts` (5\.\d+\.\d+)", text)
    assert version
    assert f'version="{version.group(1)}"'.encode() in bundle


def test_chart_helper_is_served(client: Any) -> None:
    status, body = fetch(client, "/static/js/charts.js")
    assert status == 200
    text = body.decode("utf-8")
    assert "window.LivesaleCharts = {" in text
    for name in ("cumulative", "perMinute", "bars", "groupedBars", "sparkline", "autoInit"):
        assert f"{name}: {name}" in text, name
    assert "renderer: SVG" in text and 'var SVG = "svg"' in text
    assert "innerHTML" not in text
