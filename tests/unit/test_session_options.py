"""The newest portal-session options, sent exactly as stripe-python 16.1.0's typed params define them.

- `after_expiration` (from 2026-10-28.endive): an operator policy option, validated at cold start.
What the emulator records is what stripe-python sent over the wire (form-encoded, so values are strings).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

import pytest

from local.stripe_emulator import StripeEmulator
from portal_links.errors import ConfigurationError
from tests.conftest import Invoker

BEFORE_AFTER_EXPIRATION = "2026-09-30.endive"  # stripe-python 16.0.0's version, which lacks it
BEFORE_ACCOUNTS = "2025-11-17.clover"  # stripe-python 14.0.0's version, which lacks customer_account


@pytest.fixture
def configure(redeploy: Callable[..., None], handler: Invoker) -> Callable[..., None]:
    """Deploy with a policy document and settings (a fresh cold start)."""

    def apply(document: dict[str, Any], **settings: str) -> None:
        redeploy(PORTAL_POLICY=json.dumps(document), PORTAL_POLICY_FILE=None, **settings)
        handler.module.portal()

    return apply


def session_params(stripe: StripeEmulator) -> dict[str, Any]:
    [call] = stripe.requests_to("POST", "/v1/billing_portal/sessions")
    assert call.status == 200, call
    return call.params


def cold_start_refusal(configure: Callable[..., None], document: dict[str, Any], **settings: str) -> str:
    with pytest.raises(ConfigurationError) as raised:
        configure(document, **settings)
    return str(raised.value)


@pytest.fixture
def plan(stripe: StripeEmulator) -> str:
    return stripe.add_price(stripe.add_product("Pro", product_id="prod_pro"), 2000, price_id="price_pro")


class TestAfterExpiration:
    def test_customer_login_is_sent_as_stripes_type_defines_it(self, configure, handler, identity, stripe):
        configure({"after_expiration": {"type": "customer_login"}})

        response = handler.request(token=identity.token("user-1"))

        assert response["statusCode"] == 303
        assert session_params(stripe)["after_expiration"] == {"type": "customer_login"}
        [session] = stripe.sessions()
        assert session["after_expiration"] == {
            "type": "customer_login",
            "customer_login": {"expires_at": None},
        }

    def test_a_recovery_window_becomes_expires_at_counted_from_the_session(
        self, configure, handler, identity, stripe
    ):
        configure(
            {"after_expiration": {"type": "customer_login", "customer_login": {"expires_in_seconds": 86400}}}
        )
        before = int(time.time())

        handler.request(token=identity.token("user-1"))

        sent = session_params(stripe)["after_expiration"]
        assert set(sent) == {"type", "customer_login"}
        assert sent["type"] == "customer_login"
        assert set(sent["customer_login"]) == {"expires_at"}
        assert before + 86400 <= int(sent["customer_login"]["expires_at"]) <= int(time.time()) + 86400

    def test_it_applies_to_deep_links_too(self, configure, handler, identity, stripe):
        configure({"after_expiration": {"type": "customer_login"}})

        handler.request(path="/portal/payment_method_update", token=identity.token("user-1"))

        params = session_params(stripe)
        assert params["flow_data"] == {"type": "payment_method_update"}
        assert params["after_expiration"] == {"type": "customer_login"}

    def test_without_the_policy_key_nothing_is_sent(self, handler, identity, stripe):
        handler.request(token=identity.token("user-1"))

        assert "after_expiration" not in session_params(stripe)

    def test_an_older_pinned_version_fails_the_cold_start_naming_the_key_and_the_version(self, configure):
        message = cold_start_refusal(
            configure,
            {"after_expiration": {"type": "customer_login"}},
            STRIPE_API_VERSION=BEFORE_AFTER_EXPIRATION,
        )

        assert message.startswith("policy.after_expiration: ")
        assert "2026-10-28.endive" in message
        assert BEFORE_AFTER_EXPIRATION in message

    @pytest.mark.parametrize(
        ("value", "key"),
        [
            pytest.param({"customer_login": True}, "policy.after_expiration.type", id="no type, a boolean"),
            pytest.param(
                {"type": "customer_login", "customer_login": True},
                "policy.after_expiration.customer_login",
                id="a boolean",
            ),
            pytest.param({}, "policy.after_expiration.type", id="no type"),
            pytest.param({"type": "redirect"}, "policy.after_expiration.type", id="another type"),
            pytest.param("customer_login", "policy.after_expiration", id="a string"),
            pytest.param(
                {"type": "customer_login", "expires_at": 1}, "policy.after_expiration.expires_at", id="x"
            ),
            pytest.param(
                {"type": "customer_login", "customer_login": {"expires_at": 1900000000}},
                "policy.after_expiration.customer_login.expires_at",
                id="an absolute date",
            ),
            *[
                pytest.param(
                    {"type": "customer_login", "customer_login": {"expires_in_seconds": seconds}},
                    "policy.after_expiration.customer_login.expires_in_seconds",
                    id=f"expires_in_seconds={seconds!r}",
                )
                for seconds in (0, 3599, 365 * 86400 + 1, True, "86400", 86400.5)
            ],
        ],
    )
    def test_a_bad_value_fails_the_cold_start_naming_the_key(self, configure, value, key):
        message = cold_start_refusal(configure, {"after_expiration": value})

        assert message.startswith(f"{key}: ")
