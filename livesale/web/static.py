"""Static files, gzipped once per file version: the vendored libraries are most of what a page loads.

Flask serves a file as a pass-through stream that no compression layer
touches; here a text file's gzip is made once (per modification time) and
served to clients that accept it. Everything else (ETag, Last-Modified,
If-None-Match, Cache-Control) is Flask's own ``send_static_file``.
"""

from __future__ import annotations

import gzip
from functools import lru_cache
from pathlib import Path

from flask import Flask, Response, request

COMPRESSIBLE = {"text/css", "text/javascript", "application/javascript", "text/plain", "image/svg+xml",
                "application/json"}


@lru_cache(maxsize=128)
def _gzipped(path: str, mtime_ns: int) -> bytes:
    return gzip.compress(Path(path).read_bytes(), compresslevel=9, mtime=0)


def init_app(app: Flask) -> None:
    def static(filename: str) -> Response:
        response = app.send_static_file(filename)
        if response.status_code != 200 or response.mimetype not in COMPRESSIBLE:
            return response
        if "gzip" not in request.accept_encodings:
            response.vary.add("Accept-Encoding")
            return response
        path = Path(app.static_folder or "") / filename
        body = _gzipped(str(path), path.stat().st_mtime_ns)
        response.close()  # the file Flask opened
        response.direct_passthrough = False
        response.set_data(body)
        response.headers["Content-Encoding"] = "gzip"
        response.vary.add("Accept-Encoding")
        return response

    app.view_functions["static"] = static
