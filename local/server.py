"""The HTTP server class every local stand-in uses."""

from __future__ import annotations

from http.server import ThreadingHTTPServer


class LocalServer(ThreadingHTTPServer):
    """Threaded, on 127.0.0.1, with a listen backlog deep enough for a burst of concurrent first clicks."""

    daemon_threads = True
    request_queue_size = 256
