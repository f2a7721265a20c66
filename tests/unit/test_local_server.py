"""The HTTP plumbing every local stand-in shares: each header it writes stays one header on the wire."""

from __future__ import annotations

import http.client

from local.server import Reply, serve_in_background


def test_a_header_value_with_cr_or_lf_is_percent_encoded_never_split_into_another_header():
    def respond(method: str, path: str, headers: dict[str, str], body: bytes) -> Reply:
        return Reply(303, headers=[("Location", "/\r\nSet-Cookie: stolen=1"), ("X-Note", "snow \u2603\x00")])

    server = serve_in_background(respond, "header-test")
    try:
        connection = http.client.HTTPConnection("127.0.0.1", server.server_port, timeout=10)
        connection.request("GET", "/")
        response = connection.getresponse()
        response.read()
        connection.close()
    finally:
        server.stop()

    assert response.status == 303
    assert response.headers["Location"] == "/%0D%0ASet-Cookie: stolen=1"
    assert response.headers["X-Note"] == "snow %E2%98%83%00"
    assert response.headers.get_all("Set-Cookie") is None
