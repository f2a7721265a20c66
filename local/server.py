"""The HTTP plumbing every local stand-in shares: a threaded server on 127.0.0.1 and one request handler."""

from __future__ import annotations

import json
import re
import ssl
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import quote

# RFC 9110 token characters: anything else in the method is not a request we can route
METHOD = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")
# What a header field may carry on the wire (HTAB, visible ASCII, space, obs-text); the rest is encoded
UNSAFE_IN_HEADER = re.compile(r"[^\t\x20-\x7e\x80-\xff]+")
MAX_BODY = 10 * 1024 * 1024  # API Gateway's payload limit


@dataclass
class Reply:
    status: int
    body: bytes = b""
    headers: list[tuple[str, str]] = field(default_factory=list)


# (method, path with query, lower-cased headers, body) -> the reply
Responder = Callable[[str, str, dict[str, str], bytes], Reply]


def message_reply(status: int) -> Reply:
    """API Gateway's own answers: the status phrase as `{"message": ...}`."""
    body = json.dumps({"message": HTTPStatus(status).phrase}, separators=(",", ":")).encode()
    return Reply(status, body, [("Content-Type", "application/json")])


def header_safe(text: str) -> str:
    """CR or LF in a header would start another header: percent-encode whatever may not appear there."""
    return UNSAFE_IN_HEADER.sub(lambda unsafe: quote(unsafe.group(), safe=""), text)


class LocalServer(ThreadingHTTPServer):
    """Threaded, on 127.0.0.1, with a listen backlog deep enough for a burst of concurrent first clicks."""

    daemon_threads = True
    request_queue_size = 256

    def start_in_background(self, name: str) -> None:
        # Polled for a stop request this often (the default is 0.5 s): stop() returns that much sooner.
        serve = {"poll_interval": 0.02}
        threading.Thread(target=self.serve_forever, kwargs=serve, name=name, daemon=True).start()

    def stop(self) -> None:
        self.shutdown()
        self.server_close()


def handler_for(respond: Responder) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: Any) -> None:
            return

        def __getattr__(self, name: str) -> Callable[[], None]:
            # Every method reaches `respond`, which decides as the real service would (not Python's 501 page).
            if name.startswith("do_"):
                return lambda: self._answer(name.removeprefix("do_"))
            raise AttributeError(name)

        def send_response(self, code: int, message: str | None = None) -> None:
            # No `Server: BaseHTTP/… Python/…` banner: the services we stand in for send none either.
            self.send_response_only(code, message)
            self.send_header("Date", self.date_time_string())

        def send_header(self, keyword: str, value: str) -> None:
            super().send_header(header_safe(keyword), header_safe(value))

        def send_error(self, code: int, message: str | None = None, explain: str | None = None) -> None:
            # Short JSON, never Python's HTML page; and a status line even if the request line had no version.
            self.request_version = self.protocol_version
            self.close_connection = True
            reply = message_reply(code)
            reply.headers.append(("Connection", "close"))
            self._send(reply)

        def _answer(self, method: str) -> None:
            if not self._well_formed(method):
                self.send_error(HTTPStatus.BAD_REQUEST)
                return
            body = self._read_body()
            if body is None:
                return
            headers = {name.lower(): value for name, value in self.headers.items()}
            self._send(respond(method, self.path, headers, body))

        def _well_formed(self, method: str) -> bool:
            """HTTP/1.x, a method token, an origin-form path, and no folded (multi-line) header values."""
            return (
                self.request_version != "HTTP/0.9"
                and METHOD.fullmatch(method) is not None
                and self.path.startswith("/")
                and not any("\r" in value or "\n" in value for value in self.headers.values())
            )

        def _read_body(self) -> bytes | None:
            """The body by its Content-Length, or None once a refusal has been sent."""
            if "Transfer-Encoding" in self.headers:
                self.send_error(HTTPStatus.LENGTH_REQUIRED)  # chunked uploads are not decoded here
                return None
            lengths = set(self.headers.get_all("Content-Length") or ["0"])
            length = lengths.pop()
            if lengths or not (length.isascii() and length.isdigit()):
                self.send_error(HTTPStatus.BAD_REQUEST)
                return None
            if int(length) > MAX_BODY:
                self.send_error(HTTPStatus.REQUEST_ENTITY_TOO_LARGE)
                return None
            return self.rfile.read(int(length)) if int(length) else b""

        def _send(self, reply: Reply) -> None:
            bodiless = reply.status < 200 or reply.status in (HTTPStatus.NO_CONTENT, HTTPStatus.NOT_MODIFIED)
            try:
                self.send_response(reply.status)
                for name, value in reply.headers:
                    self.send_header(name, value)
                if not bodiless:
                    self.send_header("Content-Length", str(len(reply.body)))
                self.end_headers()
                if not bodiless and self.command != "HEAD":
                    self.wfile.write(reply.body)
            except (BrokenPipeError, ConnectionResetError):
                return  # the client gave up (a timeout test); a real server would not notice either

    return Handler


def serve_in_background(
    respond: Responder, name: str, port: int = 0, tls: ssl.SSLContext | None = None
) -> LocalServer:
    """Serve `respond` on 127.0.0.1; over TLS with the certificate `tls` holds, if given."""
    server = LocalServer(("127.0.0.1", port), handler_for(respond))
    if tls is not None:
        server.socket = tls.wrap_socket(server.socket, server_side=True)
    server.start_in_background(name)
    return server
