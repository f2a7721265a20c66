"""A Stripe account whose customer portal settings were never saved: the operator learns what to fix.

Stripe answers every session without a `configuration` with a 400 `invalid_request_error` (no `code`) until
the default portal configuration is saved in the Dashboard. The emulator cannot say that yet, so a small
stand-in at the network boundary answers the session call as Stripe does, with Stripe's own words.
"""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest

from local.server import LocalServer, Reply, serve_in_background
from tests.conftest import APP, link_customer, problem

SESSIONS = "/v1/billing_portal/sessions"
# As Stripe words it (the older test-mode sentence, and the newer live-mode one).
NOT_SAVED = [
    "You can\u2019t create a portal session in test mode until you save your customer portal settings in test"
    " mode at https://dashboard.stripe.com/test/settings/billing/portal.",
    "No configuration provided and your live mode default configuration has not been created. Provide a"
    " configuration or create your default by saving your customer portal settings in live mode at"
    " https://dashboard.stripe.com/settings/billing/portal.",
]


class UnsavedPortalStripe:
    """Answers the portal-session call with a Stripe error; records what it was asked."""

    def __init__(self, message: str) -> None:
        self.message = message
        self.requests: list[str] = []
        self.server: LocalServer = serve_in_background(self._respond, "stripe-unsaved-portal")
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"

    def _respond(self, method: str, path: str, headers: dict[str, str], body: bytes) -> Reply:
        self.requests.append(f"{method} {path}")
        error = {"type": "invalid_request_error", "message": self.message}
        if (method, path) != ("POST", SESSIONS):
            error = {"type": "invalid_request_error", "message": "Unrecognized request URL"}
        return Reply(
            400,
            json.dumps({"error": error}).encode(),
            [("Content-Type", "application/json"), ("Request-Id", "req_unsaved")],
        )


@pytest.fixture
def unsaved_portal(request: pytest.FixtureRequest, redeploy, aws) -> Iterator[UnsavedPortalStripe]:
    stand_in = UnsavedPortalStripe(request.param)
    redeploy(STRIPE_API_BASE=stand_in.url)
    link_customer(aws, "user-1", "cus_existing")
    try:
        yield stand_in
    finally:
        stand_in.server.stop()


@pytest.mark.parametrize("unsaved_portal", NOT_SAVED, indirect=True)
def test_a_fetch_caller_gets_503_portal_not_configured(handler, identity, unsaved_portal, caplog):
    response = handler.request(token=identity.token("user-1"), accept="application/json")

    assert response["statusCode"] == 503
    assert "Retry-After" not in response["headers"]
    body = problem(response)
    assert body["code"] == "portal_not_configured"
    assert "customer portal settings" in body["detail"]
    assert "dashboard.stripe.com" not in response["body"]  # Stripe's own message is never echoed
    assert unsaved_portal.requests == [f"POST {SESSIONS}"]  # a 400 is not retried
    assert any("customer portal settings are saved" in record.getMessage() for record in caplog.records)


@pytest.mark.parametrize("unsaved_portal", NOT_SAVED[:1], indirect=True)
def test_a_browser_goes_back_to_the_app_with_the_code(handler, identity, unsaved_portal):
    response = handler.request(token=identity.token("user-1"))

    assert response["statusCode"] == 303
    assert "Retry-After" not in response["headers"]
    assert response["headers"]["Location"] == f"{APP}/account?portal_error=portal_not_configured"


@pytest.mark.parametrize("unsaved_portal", ["No such configuration: 'bpc_123'"], indirect=True)
def test_any_other_refusal_stays_stripe_rejected(handler, identity, unsaved_portal):
    response = handler.request(token=identity.token("user-1"), accept="application/json")

    assert response["statusCode"] == 502
    assert problem(response)["code"] == "stripe_rejected"
