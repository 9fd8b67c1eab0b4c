"""A registry that fails now and then, on purpose: a proxy in front of a real one that refuses the first
request for each blob (HTTP 503, as an overloaded registry does), then forwards every other request.

For the suite's own tests of what it must not blame on the runtime (the runtime probe retries a pull
the registry refused once). Loopback only; stopped when the `with` block ends.
"""

from __future__ import annotations

import http.server
import re
import threading
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager

BLOB = re.compile(r"^/v2/.+/blobs/sha256:[0-9a-f]{64}$")
HOP_BY_HOP = {"connection", "keep-alive", "transfer-encoding", "te", "trailer", "upgrade", "proxy-authorization"}


class FlakyRegistry:
    def __init__(self, upstream: str) -> None:
        self.upstream = upstream
        self.refused: list[str] = []  # the blob paths refused once
        self._lock = threading.Lock()

    def first_time(self, path: str) -> bool:
        with self._lock:
            if path in self.refused:
                return False
            self.refused.append(path)
            return True

    def handler(self) -> type[http.server.BaseHTTPRequestHandler]:
        proxy = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: object) -> None:  # quiet
                pass

            def _forward(self) -> None:
                if self.command == "GET" and BLOB.match(self.path) and proxy.first_time(self.path):
                    self.send_response(503, "Service Unavailable")
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else None
                # Every value of a repeated header (Accept lists manifest types one per header line).
                headers = {
                    key: ", ".join(self.headers.get_all(key) or [])
                    for key in dict.fromkeys(self.headers.keys())
                    if key.lower() not in HOP_BY_HOP | {"host"}
                }
                request = urllib.request.Request(
                    f"http://{proxy.upstream}{self.path}", data=body, headers=headers, method=self.command
                )
                try:
                    response = urllib.request.urlopen(request, timeout=60)
                except urllib.error.HTTPError as error:
                    response = error
                payload = response.read()
                self.send_response(response.status)
                for key, value in response.headers.items():
                    if key.lower() not in HOP_BY_HOP | {"content-length"}:
                        self.send_header(key, value)
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(payload)

            do_GET = do_HEAD = do_PUT = do_POST = do_PATCH = do_DELETE = _forward

        return Handler


@contextmanager
def flaky_registry(listen: str, upstream: str) -> Iterator[FlakyRegistry]:
    """Serve the flaky proxy on `listen` (host:port) in front of `upstream` for the block."""
    host, port = listen.rsplit(":", 1)
    proxy = FlakyRegistry(upstream)
    server = http.server.ThreadingHTTPServer((host, int(port)), proxy.handler())
    thread = threading.Thread(target=server.serve_forever, name="flaky-registry", daemon=True)
    thread.start()
    try:
        yield proxy
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)
