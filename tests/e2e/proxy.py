"""A proxy between the job and a real Immich, for what only a misbehaving network or a user acting at
the same moment can do: rewrite an answer, or act just before a request goes through."""

from __future__ import annotations

import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import requests

# (method, path) -> optional (status, body) answered instead of Immich's
Before = Callable[[str, str, bytes], "tuple[int, bytes] | None"]


class Proxy:
    def __init__(self, upstream: str, before: Before):
        self.upstream, self.before = upstream.rstrip("/"), before
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args) -> None:
                return

            def do_GET(self) -> None:
                body = self.rfile.read(int(self.headers.get("content-length") or 0))
                answer = proxy.before(self.command, self.path.split("?", 1)[0], body)
                if answer is None:
                    headers = {k: v for k, v in self.headers.items() if k.lower() not in ("host", "content-length")}
                    upstream = requests.request(self.command, proxy.upstream + self.path, headers=headers, data=body,
                                                allow_redirects=False, timeout=60)
                    status, data, kind = upstream.status_code, upstream.content, upstream.headers.get("content-type", "")
                    extra = {k: v for k, v in upstream.headers.items() if k.lower() in ("etag", "last-modified")}
                else:
                    (status, data), kind, extra = answer, "application/json; charset=utf-8", {}
                self.send_response(status)
                self.send_header("Content-Type", kind)
                self.send_header("Content-Length", str(len(data)))
                for name, value in extra.items():
                    self.send_header(name, value)
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(data)

            do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = do_GET

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
