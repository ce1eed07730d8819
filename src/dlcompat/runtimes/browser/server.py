"""A static HTTP server for the browser runtimes: loopback only, a free port, a few named folders, always shut down.

It serves the page, the runtime files from `web/node_modules` (never a CDN) and the job's own files
(the model, the test inputs as raw float32) under URL prefixes, one folder each, and nothing else: a
path that leaves its folder is a 404. Every response carries the cross-origin isolation headers
(COOP `same-origin`, COEP `require-corp`), which give the page `SharedArrayBuffer` (so WebAssembly
threads) and a 5 µs `performance.now()`; and `Cache-Control: no-store`, so a model's download is a
download, except under the prefixes named `cacheable` (the page and the runtime files, fixed for the server's
life), which a browser may keep as a site's returning visitor does. The server counts the bytes it sends under
each prefix: the model's size *as served*. A long-lived server takes each job's folders with `mount`.

Standard library only. Use it as a context manager, or `start()` and then `close()` in a `finally`.
"""

from __future__ import annotations

import mimetypes
import threading
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

#: the only address the server ever binds: nothing beyond this machine can reach it
LOOPBACK = "127.0.0.1"

_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".mjs": "text/javascript; charset=utf-8",
    ".wasm": "application/wasm",
    ".json": "application/json",
    ".bin": "application/octet-stream",
    ".onnx": "application/octet-stream",
}

ISOLATION_HEADERS = {
    "Cross-Origin-Opener-Policy": "same-origin",
    "Cross-Origin-Embedder-Policy": "require-corp",
    "Cross-Origin-Resource-Policy": "same-origin",
    "Cache-Control": "no-store",
}
#: the caching of a `cacheable` prefix's files: they do not change while the server runs
CACHEABLE = "max-age=86400, immutable"


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:  # http.server's naming
        self._serve(body=True)

    def do_HEAD(self) -> None:
        self._serve(body=False)

    def _serve(self, body: bool) -> None:
        found = self.server.owner.resolve(urlsplit(self.path).path)
        if found is None:
            self.send_error(HTTPStatus.NOT_FOUND)
            return
        prefix, file = found
        data = file.read_bytes()
        self.send_response(HTTPStatus.OK)
        self.send_header("Content-Type", _TYPES.get(file.suffix) or mimetypes.guess_type(file.name)[0]
                         or "application/octet-stream")
        self.send_header("Content-Length", str(len(data)))
        for name, value in ISOLATION_HEADERS.items():
            self.send_header(name, CACHEABLE if name == "Cache-Control" and prefix in self.server.owner.cacheable
                             else value)
        self.end_headers()
        if body:  # counted before the write: once the client holds the bytes, the count already says so
            self.server.owner.count(prefix, len(data))
            self.wfile.write(data)

    def send_error(self, code: int, message: str | None = None, explain: str | None = None) -> None:
        self.close_connection = True
        super().send_error(code, message, explain)

    def log_message(self, format: str, *args: Any) -> None:  # quiet: no access log on stderr
        pass


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = False
    owner: StaticServer


class StaticServer:
    """Serve `routes` (URL prefix -> folder) on 127.0.0.1 at a free port; `url` is its root once started."""

    def __init__(self, routes: dict[str, Path], cacheable: tuple[str, ...] = ()) -> None:
        self.routes = {"/" + prefix.strip("/"): Path(folder).resolve() for prefix, folder in routes.items()}
        self.cacheable = frozenset("/" + prefix.strip("/") for prefix in cacheable)
        self.served: dict[str, int] = dict.fromkeys(self.routes, 0)  # prefix -> bytes sent
        self._lock = threading.Lock()
        self._httpd: _Server | None = None
        self._thread: threading.Thread | None = None

    def mount(self, prefix: str, folder: Path | None) -> None:
        """Serve `folder` under `prefix` from now on (None: nothing), its byte count from zero."""
        prefix = "/" + prefix.strip("/")
        with self._lock:
            if folder is None:
                self.routes.pop(prefix, None)
            else:
                self.routes[prefix] = Path(folder).resolve()
            self.served[prefix] = 0

    def resolve(self, url_path: str) -> tuple[str, Path] | None:
        """The file behind a URL path, or None (outside every folder, missing, or not a plain file)."""
        path = unquote(url_path)
        with self._lock:
            routes = sorted(self.routes.items(), key=lambda item: -len(item[0]))
        for prefix, folder in routes:
            if path == prefix or not path.startswith(prefix.rstrip("/") + "/"):
                continue
            relative = path[len(prefix.rstrip("/")) + 1:]
            file = (folder / relative).resolve()
            if file.is_relative_to(folder) and file.is_file():
                return prefix, file
            return None
        return None

    def count(self, prefix: str, size: int) -> None:
        with self._lock:
            self.served[prefix] = self.served.get(prefix, 0) + size

    def bytes_served(self, prefix: str) -> int:
        with self._lock:
            return self.served.get("/" + prefix.strip("/"), 0)

    def reset_counts(self) -> None:
        with self._lock:
            self.served = dict.fromkeys(self.routes, 0)

    @property
    def address(self) -> tuple[str, int]:
        if self._httpd is None:
            raise RuntimeError("the server is not running")
        host, port = self._httpd.server_address[:2]
        return str(host), int(port)

    @property
    def url(self) -> str:
        host, port = self.address
        return f"http://{host}:{port}"

    def start(self) -> StaticServer:
        httpd = _Server((LOOPBACK, 0), _Handler)  # port 0: the kernel picks a free one
        httpd.owner = self
        self._httpd = httpd
        self._thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.1},
                                        name=f"dlcompat-static-{self.address[1]}", daemon=True)
        self._thread.start()
        return self

    def close(self) -> None:
        """Stop serving and release the port; safe to call twice, or before `start`."""
        httpd, self._httpd = self._httpd, None
        if httpd is None:
            return
        try:
            httpd.shutdown()
        finally:
            httpd.server_close()
            if self._thread is not None:
                self._thread.join(timeout=5)

    def __enter__(self) -> StaticServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()
