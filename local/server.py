"""The HTTP plumbing every local stand-in shares: a threaded server on 127.0.0.1 and one request handler."""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partialmethod
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass
class Reply:
    status: int
    body: bytes = b""
    headers: list[tuple[str, str]] = field(default_factory=list)


# (method, path with query, lower-cased headers, body) -> the reply
Responder = Callable[[str, str, dict[str, str], bytes], Reply]


class LocalServer(ThreadingHTTPServer):
    """Threaded, on 127.0.0.1, with a listen backlog deep enough for a burst of concurrent first clicks."""

    daemon_threads = True
    request_queue_size = 256

    def start_in_background(self, name: str) -> None:
        threading.Thread(target=self.serve_forever, name=name, daemon=True).start()

    def stop(self) -> None:
        self.shutdown()
        self.server_close()


def handler_for(
    respond: Responder, methods: tuple[str, ...] = ("GET", "POST")
) -> type[BaseHTTPRequestHandler]:
    """A request handler answering `methods` through `respond`; others get the server's 501."""

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: Any) -> None:
            return

        def _answer(self, method: str) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            headers = {name.lower(): value for name, value in self.headers.items()}
            reply = respond(method, self.path, headers, body)
            self.send_response(reply.status)
            for name, value in reply.headers:
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(reply.body)))
            self.end_headers()
            try:
                self.wfile.write(reply.body)
            except (BrokenPipeError, ConnectionResetError):
                return  # the client gave up (a timeout test); a real server would not notice either

    for method in methods:
        setattr(Handler, f"do_{method}", partialmethod(Handler._answer, method))
    return Handler


def serve_in_background(
    respond: Responder, name: str, port: int = 0, methods: tuple[str, ...] = ("GET", "POST")
) -> LocalServer:
    server = LocalServer(("127.0.0.1", port), handler_for(respond, methods))
    server.start_in_background(name)
    return server
