"""`make dev` as a developer and a browser see it: the real handler behind API Gateway's own answers."""

from __future__ import annotations

import http.client
import json
import socket
import urllib.error
import urllib.request
from collections.abc import Iterator
from http import HTTPStatus
from urllib.parse import urlencode, urlsplit

import pytest

from local.stripe_emulator import StripeEmulator
from tests.dev_server import DevServer, running_dev_server

NOT_FOUND = b'{"message":"Not Found"}'


class NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args, **kwargs):
        return None


def post(url: str, token: str) -> tuple[int, dict[str, str]]:
    return send(urllib.request.Request(url, method="POST", headers={"Authorization": f"Bearer {token}"}))


def send(request: urllib.request.Request) -> tuple[int, dict[str, str]]:
    try:
        with urllib.request.build_opener(NoRedirect).open(request, timeout=10) as response:
            return response.status, dict(response.headers)
    except urllib.error.HTTPError as error:
        return error.code, dict(error.headers)


def dev_token(server: DevServer) -> str:
    with urllib.request.urlopen(f"{server.origin}/dev/token?user=demo-user", timeout=10) as response:
        return str(response.read().decode())


def exchange(
    server: DevServer,
    method: str,
    path: str,
    headers: dict[str, str] | None = None,
    body: bytes | None = None,
) -> tuple[int, http.client.HTTPMessage, bytes]:
    """Any method, any body: what a client sees, status, headers and body."""
    connection = http.client.HTTPConnection(urlsplit(server.origin).netloc, timeout=10)
    try:
        connection.request(method, path, body=body or None, headers=headers or {})
        response = connection.getresponse()
        return response.status, response.headers, response.read()
    finally:
        connection.close()


def raw_exchange(server: DevServer, request: bytes) -> tuple[bytes, bytes]:
    """Bytes on the wire, for requests no client library would send; the answer's head and body."""
    host, port = urlsplit(server.origin).netloc.split(":")
    with socket.create_connection((host, int(port)), timeout=10) as connection:
        connection.sendall(request)
        answer = b"".join(iter(lambda: connection.recv(65536), b""))
    head, _, body = answer.partition(b"\r\n\r\n")
    return head, body


def fetch_portal(
    server: DevServer, headers: dict[str, str], body: bytes = b""
) -> tuple[int, http.client.HTTPMessage, bytes]:
    """POST /portal as the demo app's fetch() does: a bearer token, asking for JSON."""
    signed_in = {"Authorization": f"Bearer {dev_token(server)}", "Accept": "application/json", **headers}
    return exchange(server, "POST", "/portal", signed_in, body)


def sign_in(server: DevServer, next_url: str) -> tuple[int, http.client.HTTPMessage]:
    form = urlencode({"user": "demo-user", "next": next_url}).encode()
    status, headers, _ = exchange(
        server, "POST", "/dev/sign-in", {"Content-Type": "application/x-www-form-urlencoded"}, form
    )
    return status, headers


def cors_headers(headers: http.client.HTTPMessage) -> dict[str, str]:
    return {name: value for name, value in headers.items() if name.lower().startswith("access-control-")}


@pytest.fixture(scope="module")
def server() -> Iterator[DevServer]:
    with running_dev_server() as dev_server:
        yield dev_server


@pytest.fixture
def other_stripe():
    with StripeEmulator().serving() as emulator:
        yield emulator


def test_with_a_stripe_key_the_dev_server_uses_that_stripe(other_stripe):
    with running_dev_server(
        STRIPE_API_KEY="sk_test_someone_elses", STRIPE_API_BASE=other_stripe.url
    ) as server:
        assert f"  Stripe          Stripe at {other_stripe.url} (nothing seeded)" in server.output
        status, headers = post(f"{server.origin}/portal", dev_token(server))

    assert status == 303
    [session] = other_stripe.sessions()
    assert headers["Location"] == session["url"]
    assert [c["metadata"]["app_user_id"] for c in other_stripe.customers()] == ["demo-user"]
    assert other_stripe.subscriptions() == []
    [create] = other_stripe.requests_to("POST", "/v1/customers")
    assert create.idempotency_key is not None


def test_curl_with_a_dev_token_gets_a_303_to_the_emulators_portal(server):
    status, headers = post(f"{server.origin}/portal/subscription_cancel", dev_token(server))

    assert status == 303
    assert headers["Location"].startswith(f"{server.stripe}/p/session/")
    with urllib.request.urlopen(headers["Location"], timeout=10) as portal:
        page = portal.read().decode()
    assert "subscription_cancel" in page


@pytest.mark.parametrize(
    ("method", "path"),
    [
        *((method, "/portal") for method in ("PUT", "DELETE", "PATCH", "OPTIONS", "TRACE", "BREW")),
        *((method, "/portal/subscription_cancel") for method in ("PUT", "DELETE", "OPTIONS")),
        ("GET", "/portal/subscription_cancel/extra"),
        ("POST", "/portal/"),
        ("POST", "/nowhere"),
        ("PUT", "/"),
        ("DELETE", "/dev/sign-in"),
    ],
)
def test_what_no_route_takes_gets_api_gateways_404(server, method, path):
    status, headers, body = exchange(server, method, path)

    assert (status, headers["Content-Type"], body) == (404, "application/json", NOT_FOUND)
    assert "Server" not in headers


@pytest.mark.parametrize("path", ["/portal", "/portal/subscription_cancel", "/"])
def test_head_gets_the_404_and_never_a_body(server, path):
    head, body = raw_exchange(
        server, f"HEAD {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode()
    )

    assert head.startswith(b"HTTP/1.1 404 Not Found\r\n")
    assert b"\r\nContent-Type: application/json\r\n" in head
    assert body == b""


def test_no_answer_carries_pythons_server_banner(server):
    status, headers, _ = exchange(server, "GET", "/dev/token?user=demo-user")

    assert status == 200
    assert "Server" not in headers


@pytest.mark.parametrize(
    ("request_bytes", "status"),
    [
        (b"GARBAGE\r\n", HTTPStatus.BAD_REQUEST),
        (b"GET /portal HTTP/9.9\r\n", HTTPStatus.HTTP_VERSION_NOT_SUPPORTED),
        (b"G(T /portal HTTP/1.1\r\nHost: x\r\n\r\n", HTTPStatus.BAD_REQUEST),
        (b"GET http://[::1/portal HTTP/1.1\r\nHost: x\r\n\r\n", HTTPStatus.BAD_REQUEST),
        (b"GET /portal HTTP/1.1\r\nHost: x\r\nX-Folded: one\r\n two\r\n\r\n", HTTPStatus.BAD_REQUEST),
        (b"POST /portal HTTP/1.1\r\nHost: x\r\nContent-Length: -1\r\n\r\n", HTTPStatus.BAD_REQUEST),
        (b"POST /portal HTTP/1.1\r\nHost: x\r\nContent-Length: 99999999999\r\n\r\n", 413),
        (
            b"POST /portal HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n",
            HTTPStatus.LENGTH_REQUIRED,
        ),
    ],
)
def test_a_malformed_request_gets_a_short_json_answer_not_pythons_error_page(server, request_bytes, status):
    head, body = raw_exchange(server, request_bytes)

    assert head.startswith(f"HTTP/1.1 {status} ".encode())
    assert b"\r\nContent-Type: application/json\r\n" in head
    assert b"\r\nServer:" not in head
    assert json.loads(body) == {"message": HTTPStatus(status).phrase}


@pytest.mark.parametrize("path", ["/portal", "/portal/subscription_cancel"])
def test_a_preflight_from_the_allowed_origin_gets_the_templates_cors_configuration(server, path):
    status, headers, body = exchange(
        server,
        "OPTIONS",
        path,
        {
            "Origin": server.origin,
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "Authorization, Content-Type",
        },
    )

    assert (status, body) == (204, b"")
    assert cors_headers(headers) == {
        "Access-Control-Allow-Origin": server.origin,
        "Access-Control-Allow-Methods": "GET,POST",
        "Access-Control-Allow-Headers": "authorization,content-type",
        "Access-Control-Allow-Credentials": "true",
        "Access-Control-Max-Age": "600",
    }


@pytest.mark.parametrize(
    "preflight",
    [
        {"Origin": "https://evil.example", "Access-Control-Request-Method": "POST"},
        {"Origin": "http://127.0.0.1:1", "Access-Control-Request-Method": "GET"},
        {"Origin": "{origin}", "Access-Control-Request-Method": "DELETE"},
        {
            "Origin": "{origin}",
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "x-key",
        },
    ],
)
def test_a_preflight_the_configuration_does_not_allow_gets_no_cors_headers(server, preflight):
    headers = {name: value.format(origin=server.origin) for name, value in preflight.items()}

    status, answer, body = exchange(server, "OPTIONS", "/portal", headers)

    assert (status, body) == (204, b"")
    assert cors_headers(answer) == {}


def test_the_allowed_origin_may_read_the_apis_answer(server):
    status, headers, body = fetch_portal(server, {"Origin": server.origin})

    assert status == 200
    assert json.loads(body)["url"].startswith(f"{server.stripe}/p/session/")
    assert cors_headers(headers) == {
        "Access-Control-Allow-Origin": server.origin,
        "Access-Control-Allow-Credentials": "true",
        "Access-Control-Expose-Headers": "retry-after",
    }
    assert "Origin" in headers.get_all("Vary", [])


def test_a_foreign_origin_gets_no_cors_headers_on_the_apis_answer(server):
    status, headers, body = exchange(
        server, "POST", "/portal", {"Origin": "https://evil.example", "Accept": "application/json"}
    )

    assert status == 401
    assert json.loads(body)["code"] == "unauthenticated"
    assert cors_headers(headers) == {}


def test_a_body_that_is_not_utf8_is_a_400_naming_the_body(server):
    status, headers, body = fetch_portal(server, {"Content-Type": "application/json"}, b'\xff\xfe{"')

    assert b"dev server error" not in body
    assert status == 400
    assert headers["Content-Type"] == "application/problem+json"
    assert json.loads(body)["code"] == "invalid_parameter"
    assert json.loads(body)["param"] == "body"


def test_a_browser_form_post_that_is_not_utf8_goes_back_to_the_app_with_portal_error(server):
    status, headers, body = exchange(
        server,
        "POST",
        "/portal",
        {"Authorization": f"Bearer {dev_token(server)}", "Content-Type": "application/x-www-form-urlencoded"},
        b"return_to=\xff\xfe",
    )

    assert status == 303
    assert headers["Location"] == f"{server.origin}/app?portal_error=invalid_parameter"
    assert body == b""


@pytest.mark.parametrize(
    "next_url",
    [
        "https://evil.example/",
        "//evil.example/x",
        "/\\evil.example",
        "/\r\nSet-Cookie: stolen=1",
        "/\t/evil.example",
        "/ /evil.example",
        "/caf\u00e9",
        "http://127.0.0.1:1/x",
    ],
)
def test_the_dev_sign_in_goes_only_to_this_origins_pages(server, next_url):
    status, headers = sign_in(server, next_url)

    assert status == 303
    assert headers["Location"] == "/"
    [cookie] = headers.get_all("Set-Cookie", [])
    assert cookie.startswith("session=")
    assert "HttpOnly" in cookie
    assert "SameSite=Lax" in cookie


@pytest.mark.parametrize("next_url", ["/app?done=payment_method_update", "{origin}/app"])
def test_the_dev_sign_in_returns_to_the_page_asked_for(server, next_url):
    next_url = next_url.format(origin=server.origin)

    status, headers = sign_in(server, next_url)

    assert status == 303
    assert headers["Location"] == next_url
