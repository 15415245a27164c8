#!/usr/bin/env python3
"""Widget benchmark: how soon the first figures show, and what the widget costs to load.

Starts the server (``livesale serve``'s gunicorn command) on an SQLite file,
creates a live session with orders, and serves a partner page from another
origin that places the widget with ``embed.js``. In Debian's Chromium
(Playwright), for ``--loads`` fresh page loads it reads the widget frame's
own timings: from the frame's navigation start to the first contentful
paint (the figures are in the HTML, so that paint shows them), and the
bytes transferred (as sent, compressed, from Resource Timing). Budget: first figures ≤ 300 ms after the
iframe loads, page + CSS + JS ≤ 25 KB gzipped (the app compresses them).

    .venv/bin/python bench/widget.py --loads 20
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import redis
import requests
from common import make_token, start_server  # noqa: E402  (bench/ is on sys.path)

from livesale.core import schema  # noqa: E402

ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
        "--disable-sync", "--no-first-run"]
SESSION = {"title": "喀什杏子丰收直播", "goal_fen": 6_000_000,
           "products": [{"sku": "APRICOT-5KG", "name": "鲜杏 5斤", "unit_price_fen": 6980}]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--loads", type=int, default=20)
    parser.add_argument("--port", type=int, default=5660)
    parser.add_argument("--redis", default="redis://127.0.0.1:6379/4")
    opts = parser.parse_args()
    from playwright.sync_api import sync_playwright

    with tempfile.TemporaryDirectory() as tmp:
        db = f"sqlite:///{tmp}/widget.sqlite"
        schema.upgrade(db)
        token = make_token(db)
        redis.Redis.from_url(opts.redis).flushdb()
        proc = start_server(db, opts.redis, Path(tmp), opts.port)
        base = f"http://127.0.0.1:{opts.port}"
        h = {"Authorization": f"Bearer {token}"}
        session = requests.post(f"{base}/api/v1/sessions", json=SESSION, headers=h).json()
        requests.post(f"{base}/api/v1/sessions/{session['id']}/start", headers=h).raise_for_status()
        requests.post(f"{base}/api/v1/sessions/{session['id']}/orders", headers=h,
                      json={"orders": [{"sku": "APRICOT-5KG", "quantity": 1 + i % 3} for i in range(200)]})
        html = (f'<!doctype html><meta charset="utf-8"><p>partner</p><script src="{base}/embed.js" '
                f'data-widget="{session["widget_key"]}" data-show="total,goal,orders,latest" async></script>').encode()

        class Partner(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802
                self.send_response(200)
                self.send_header("Content-Type", "text/html; charset=utf-8")
                self.end_headers()
                self.wfile.write(html)

            def log_message(self, *args: object) -> None:
                pass

        httpd = ThreadingHTTPServer(("127.0.0.1", 0), Partner)
        threading.Thread(target=httpd.serve_forever, daemon=True).start()
        partner = f"http://127.0.0.1:{httpd.server_address[1]}/"
        paint, sizes = [], []
        try:
            with sync_playwright() as p:
                browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=ARGS)
                for _ in range(opts.loads):
                    context = browser.new_context()  # cold: no cache
                    page = context.new_page()
                    page.goto(partner)
                    page.wait_for_function("document.querySelector('iframe') !== null")
                    frame = None
                    while frame is None:
                        frame = next((f for f in page.frames if "/widget/" in f.url), None)
                        page.wait_for_timeout(10)
                    # Polled from here: the widget's CSP forbids the eval that wait_for_function uses.
                    while not frame.evaluate("() => performance.getEntriesByName('first-contentful-paint').length > 0"
                                             " && window.livesaleWidget !== undefined"):
                        page.wait_for_timeout(10)
                    timings = frame.evaluate("""() => {
                        const fcp = performance.getEntriesByName('first-contentful-paint')[0].startTime;
                        const bytes = performance.getEntriesByType('navigation')[0].transferSize +
                            performance.getEntriesByType('resource').reduce((n, r) => n + r.transferSize, 0);
                        return {fcp, bytes};
                    }""")
                    paint.append(timings["fcp"])
                    sizes.append(timings["bytes"])
                    context.close()
                browser.close()
        finally:
            httpd.shutdown()
            proc.terminate()
            proc.wait()
    print(f"\nlivesale widget benchmark — {opts.loads} cold loads of an embedded widget")
    print(f"  first figures (frame navigation -> first contentful paint)  median {statistics.median(paint):.0f} ms"
          f"  max {max(paint):.0f} ms  (budget 300 ms)")
    print(f"  transferred per load (HTML, CSS, JS, as sent)               {statistics.median(sizes) / 1024:.1f} KB"
          "  (budget 25 KB gzipped)")


if __name__ == "__main__":
    main()
