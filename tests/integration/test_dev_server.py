"""`make dev` pointed at another Stripe: no emulator of its own, nothing seeded, requests go there."""

from __future__ import annotations

import urllib.error
import urllib.request

import pytest

from local.stripe_emulator import StripeEmulator
from tests.dev_server import running_dev_server


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


@pytest.fixture
def other_stripe():
    with StripeEmulator().serving() as emulator:
        yield emulator


def test_with_a_stripe_key_the_dev_server_uses_that_stripe(other_stripe):
    with running_dev_server(
        STRIPE_API_KEY="sk_test_someone_elses", STRIPE_API_BASE=other_stripe.url
    ) as server:
        assert f"  Stripe          Stripe at {other_stripe.url} (nothing seeded)" in server.output
        with urllib.request.urlopen(f"{server.origin}/dev/token?user=demo-user", timeout=10) as response:
            token = response.read().decode()

        status, headers = post(f"{server.origin}/portal", token)

    assert status == 303
    [session] = other_stripe.sessions()
    assert headers["Location"] == session["url"]
    assert [c["metadata"] for c in other_stripe.customers()] == [{"app_user_id": "demo-user"}]
    assert other_stripe.subscriptions() == []
    [create] = other_stripe.requests_to("POST", "/v1/customers")
    assert create.idempotency_key is not None


def test_curl_with_a_dev_token_gets_a_303_to_the_emulators_portal():
    with running_dev_server() as server:
        with urllib.request.urlopen(f"{server.origin}/dev/token?user=demo-user", timeout=10) as response:
            token = response.read().decode()
        status, headers = post(f"{server.origin}/portal/subscription_cancel", token)

        assert status == 303
        assert headers["Location"].startswith(f"{server.stripe}/p/session/")
        with urllib.request.urlopen(headers["Location"], timeout=10) as portal:
            page = portal.read().decode()
        assert "subscription_cancel" in page


@pytest.mark.parametrize("next_url", ["https://evil.example/", "//evil.example/x", "/\\evil.example"])
def test_the_dev_sign_in_is_not_an_open_redirect(next_url):
    with running_dev_server() as server:
        request = urllib.request.Request(
            f"{server.origin}/dev/sign-in",
            data=urllib.parse.urlencode({"user": "demo-user", "next": next_url}).encode(),
            method="POST",
        )
        status, headers = send(request)

    assert status == 303
    assert headers["Location"] == "/"
    assert "HttpOnly" in headers["Set-Cookie"]
    assert "SameSite=Lax" in headers["Set-Cookie"]
