"""The newest portal-session options, sent exactly as stripe-python 16.1.0's typed params define them.

- `after_expiration` (from 2026-10-28.endive): an operator policy option, validated at cold start;
- `customer_account` (from 2025-12-15.clover): a link may hold an Accounts v2 account (acct_…) instead of a
  customer, and the session and the subscription list then name it as `customer_account`.
What the emulator records is what stripe-python sent over the wire (form-encoded, so values are strings).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

import pytest
import stripe as stripe_sdk

from local.stripe_emulator import StripeEmulator
from portal_links.errors import ConfigurationError
from tests.conftest import API_KEY, Invoker, link_customer, problem, rows

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


class TestCustomerAccount:
    """A link may hold an Accounts v2 account: everything that names the customer names the account."""

    @pytest.fixture
    def account(self, stripe, aws, plan) -> tuple[str, str]:
        account = stripe.add_account()
        subscription = stripe.add_subscription(account, [plan])
        link_customer(aws, "user-1", account)
        return account, subscription

    @pytest.mark.parametrize("kind", ["customer", "customer_account"])
    def test_the_session_names_the_party_as_its_parameter(self, handler, identity, stripe, aws, kind):
        # Given a link to a customer, or to an Accounts v2 account
        party = stripe.add_account() if kind == "customer_account" else stripe.add_customer()
        link_customer(aws, "user-1", party)

        # When the user opens the portal
        response = handler.request(token=identity.token("user-1"))

        # Then the session is for that party, named by the parameter its kind takes, and only by it
        assert response["statusCode"] == 303
        params = session_params(stripe)
        assert params[kind] == party
        assert {"customer", "customer_account"} & set(params) == {kind}
        [session] = stripe.sessions()
        assert session[kind] == party
        assert [row["stripe_customer_id"]["S"] for row in rows(aws)] == [party]

    def test_a_subscription_flow_lists_the_accounts_subscriptions(self, handler, identity, stripe, account):
        acct, subscription = account

        response = handler.request(path="/portal/subscription_cancel", token=identity.token("user-1"))

        assert response["statusCode"] == 303
        [listing] = stripe.requests_to("GET", "/v1/subscriptions")
        assert listing.params == {"customer_account": acct, "limit": "100"}
        params = session_params(stripe)
        assert params["customer_account"] == acct
        assert "customer" not in params
        assert params["flow_data"]["subscription_cancel"]["subscription"] == subscription

    def test_a_named_subscription_of_the_account_is_accepted(self, handler, identity, stripe, account):
        _, subscription = account

        response = handler.request(
            path="/portal/subscription_update",
            token=identity.token("user-1"),
            form={"subscription": subscription},
        )

        assert response["statusCode"] == 303
        assert session_params(stripe)["flow_data"]["subscription_update"]["subscription"] == subscription

    def test_someone_elses_subscription_is_404(self, handler, identity, stripe, account, plan):
        other = stripe.add_subscription(stripe.add_account(), [plan])

        response = handler.request(
            path="/portal/subscription_update",
            token=identity.token("user-1"),
            form={"subscription": other},
            accept="application/json",
        )

        assert response["statusCode"] == 404
        assert problem(response)["code"] == "subscription_not_found"
        assert stripe.requests_to("POST", "/v1/billing_portal/sessions") == []

    @pytest.mark.parametrize("path", ["/portal", "/portal/subscription_cancel"])
    def test_an_older_pinned_version_refuses_before_any_stripe_request(
        self, redeploy, handler, identity, stripe, account, caplog, path
    ):
        # Given a deployment pinned to a version that has no customer_account
        redeploy(STRIPE_API_VERSION=BEFORE_ACCOUNTS)

        # When a user whose link names an account clicks
        response = handler.request(path=path, token=identity.token("user-1"), accept="application/json")

        # Then it is the operator's to fix: 503 without Retry-After, nothing sent, the log names the fix
        assert response["statusCode"] == 503
        assert problem(response)["code"] == "portal_not_configured"
        assert "Retry-After" not in response["headers"]
        assert stripe.requests() == []
        fixes = [getattr(record, "fix", None) for record in caplog.records]
        assert "set STRIPE_API_VERSION to 2025-12-15.clover or later" in fixes

    def test_a_customer_link_still_works_on_the_older_version(self, redeploy, handler, identity, stripe, aws):
        link_customer(aws, "user-1", stripe.add_customer())
        redeploy(STRIPE_API_VERSION=BEFORE_ACCOUNTS)

        response = handler.request(token=identity.token("user-1"))

        assert response["statusCode"] == 303
        assert "customer_account" not in session_params(stripe)


class TestTheEmulatorsSubscriptionList:
    """`GET /v1/subscriptions?customer_account=…` as stripe-python 14.1.0 first types it."""

    def list_with(self, stripe: StripeEmulator, version: str, **params: Any) -> Any:
        client = stripe_sdk.StripeClient(API_KEY, base_addresses={"api": stripe.url}, stripe_version=version)
        return client.v1.subscriptions.list(params=params)  # type: ignore[arg-type]

    def test_it_filters_by_account(self, stripe, plan):
        mine, other = stripe.add_account(), stripe.add_account()
        subscription = stripe.add_subscription(mine, [plan])
        stripe.add_subscription(other, [plan])
        stripe.add_subscription(stripe.add_customer(), [plan])

        page = self.list_with(stripe, "2025-12-15.clover", customer_account=mine)

        assert [s.id for s in page.data] == [subscription]
        assert page.data[0].customer_account == mine

    def test_it_is_an_unknown_parameter_before_its_version(self, stripe, plan):
        with pytest.raises(stripe_sdk.InvalidRequestError) as raised:
            self.list_with(stripe, BEFORE_ACCOUNTS, customer_account=stripe.add_account())

        assert raised.value.param == "customer_account"
        assert raised.value.code == "parameter_unknown"
