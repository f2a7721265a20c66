"""The emulator refuses what Stripe refuses for the portal-session fields, so our tests can trust a 200."""

from __future__ import annotations

from typing import Any

import pytest
import stripe as stripe_sdk

from tests.conftest import API_KEY

NEWER = "2026-10-28.endive"
OLDER = "2025-03-31.basil"


@pytest.fixture
def world(stripe) -> dict[str, str]:
    product = stripe.add_product("Pro")
    monthly = stripe.add_price(product, 2000)
    annual = stripe.add_price(product, 19200, "year")
    customer = stripe.add_customer()
    subscription = stripe.add_subscription(customer, [monthly])
    stripe.add_coupon("STAY20")
    return {
        "customer": customer,
        "subscription": subscription,
        "item": stripe.subscription(subscription)["items"]["data"][0]["id"],
        "annual": annual,
    }


def create(stripe, params: dict[str, Any], version: str = NEWER) -> Any:
    client = stripe_sdk.StripeClient(API_KEY, base_addresses={"api": stripe.url}, stripe_version=version)
    return client.v1.billing_portal.sessions.create(params=params)  # type: ignore[arg-type]


def confirm(world: dict[str, str], **overrides: Any) -> dict[str, Any]:
    body = {
        "subscription": world["subscription"],
        "items": [{"id": world["item"], "price": world["annual"], "quantity": 1}],
        **overrides,
    }
    return {"type": "subscription_update_confirm", "subscription_update_confirm": body}


REFUSED: dict[str, tuple[Any, str]] = {
    "unknown top-level key": (lambda w: {"coupon": "X"}, "coupon"),
    "missing type": (
        lambda w: {"flow_data": {"after_completion": {"type": "portal_homepage"}}},
        "flow_data[type]",
    ),
    "bad type": (lambda w: {"flow_data": {"type": "teleport"}}, "flow_data[type]"),
    "cancel without its object": (
        lambda w: {"flow_data": {"type": "subscription_cancel"}},
        "flow_data[subscription_cancel]",
    ),
    "update without its object": (
        lambda w: {"flow_data": {"type": "subscription_update"}},
        "flow_data[subscription_update]",
    ),
    "confirm without items": (
        lambda w: {
            "flow_data": {
                "type": "subscription_update_confirm",
                "subscription_update_confirm": {"subscription": w["subscription"]},
            }
        },
        "flow_data[subscription_update_confirm][items]",
    ),
    "item without id": (
        lambda w: {"flow_data": confirm(w, items=[{"price": w["annual"]}])},
        "flow_data[subscription_update_confirm][items][0][id]",
    ),
    "two items": (
        lambda w: {"flow_data": confirm(w, items=[{"id": w["item"]}, {"id": w["item"]}])},
        "flow_data[subscription_update_confirm][items]",
    ),
    "unknown key deep down": (
        lambda w: {"flow_data": confirm(w, items=[{"id": w["item"], "price": w["annual"], "discount": "x"}])},
        "flow_data[subscription_update_confirm][items][0][discount]",
    ),
    "non-integer quantity": (
        lambda w: {"flow_data": confirm(w, items=[{"id": w["item"], "quantity": "1.5"}])},
        "flow_data[subscription_update_confirm][items][0][quantity]",
    ),
    "no-op update": (
        lambda w: {"flow_data": confirm(w, items=[{"id": w["item"], "quantity": 1}])},
        "flow_data[subscription_update_confirm][items][0]",
    ),
    "unknown coupon": (
        lambda w: {"flow_data": confirm(w, discounts=[{"coupon": "NOPE"}])},
        "flow_data[subscription_update_confirm][discounts][0][coupon]",
    ),
    "coupon and promotion code together": (
        lambda w: {"flow_data": confirm(w, discounts=[{"coupon": "STAY20", "promotion_code": "promo_1"}])},
        "flow_data[subscription_update_confirm][discounts][0]",
    ),
    "sub-object of another type": (
        lambda w: {
            "flow_data": {
                "type": "payment_method_update",
                "subscription_update": {"subscription": w["subscription"]},
            }
        },
        "flow_data[subscription_update]",
    ),
    "bad after_completion type": (
        lambda w: {"flow_data": {"type": "payment_method_update", "after_completion": {"type": "elsewhere"}}},
        "flow_data[after_completion][type]",
    ),
    "redirect without return_url": (
        lambda w: {"flow_data": {"type": "payment_method_update", "after_completion": {"type": "redirect"}}},
        "flow_data[after_completion][redirect]",
    ),
    "custom message over 500": (
        lambda w: {
            "flow_data": {
                "type": "payment_method_update",
                "after_completion": {
                    "type": "hosted_confirmation",
                    "hosted_confirmation": {"custom_message": "x" * 501},
                },
            }
        },
        "flow_data[after_completion][hosted_confirmation][custom_message]",
    ),
    "retention without coupon_offer": (
        lambda w: {
            "flow_data": {
                "type": "subscription_cancel",
                "subscription_cancel": {
                    "subscription": w["subscription"],
                    "retention": {"type": "coupon_offer"},
                },
            }
        },
        "flow_data[subscription_cancel][retention][coupon_offer]",
    ),
    "foreign subscription": (
        lambda w: {
            "flow_data": {"type": "subscription_update", "subscription_update": {"subscription": "sub_other"}}
        },
        "flow_data[subscription_update][subscription]",
    ),
    "bad locale": (lambda w: {"locale": "en-US"}, "locale"),
    "unknown configuration": (lambda w: {"configuration": "bpc_unknown"}, "configuration"),
    "bad return_url": (lambda w: {"return_url": "not a url"}, "return_url"),
    "unknown customer": (lambda w: {"customer": "cus_unknown"}, "customer"),
}


@pytest.mark.parametrize("case", REFUSED)
def test_the_emulator_refuses_what_stripe_refuses(stripe, world, case):
    build, param = REFUSED[case]

    with pytest.raises(stripe_sdk.InvalidRequestError) as raised:
        create(stripe, {"customer": world["customer"], **build(world)})

    assert raised.value.http_status == 400
    assert raised.value.param == param
    assert stripe.sessions() == []


@pytest.mark.parametrize("flow_type", ["customer_update", "subscription_pause"])
def test_newer_flow_types_need_a_newer_api_version(stripe, world, flow_type):
    flow = {"type": flow_type}
    if flow_type == "subscription_pause":
        flow["subscription_pause"] = {"subscription": world["subscription"]}

    with pytest.raises(stripe_sdk.InvalidRequestError):
        create(stripe, {"customer": world["customer"], "flow_data": flow}, version=OLDER)
    session = create(stripe, {"customer": world["customer"], "flow_data": flow}, version=NEWER)

    assert session.flow is not None
    assert session.flow.type == flow_type


def test_a_valid_confirm_is_accepted_and_echoed(stripe, world):
    session = create(
        stripe, {"customer": world["customer"], "flow_data": confirm(world, discounts=[{"coupon": "STAY20"}])}
    )

    assert session.url.startswith(stripe.url + "/p/session/")
    assert session.flow is not None
    assert session.flow.subscription_update_confirm is not None


def test_a_bad_api_key_is_401(stripe, world):
    client = stripe_sdk.StripeClient("sk_live_nope", base_addresses={"api": stripe.url})

    with pytest.raises(stripe_sdk.AuthenticationError):
        client.v1.billing_portal.sessions.create(params={"customer": world["customer"]})


def test_idempotency_key_reused_with_other_parameters_is_refused(stripe):
    client = stripe_sdk.StripeClient(API_KEY, base_addresses={"api": stripe.url})
    client.v1.customers.create(params={"email": "a@example.com"}, options={"idempotency_key": "k1"})

    replay = client.v1.customers.create(params={"email": "a@example.com"}, options={"idempotency_key": "k1"})
    with pytest.raises(stripe_sdk.IdempotencyError):
        client.v1.customers.create(params={"email": "b@example.com"}, options={"idempotency_key": "k1"})

    assert len(stripe.customers()) == 1
    assert replay.email == "a@example.com"


def test_expanding_more_than_four_levels_is_refused(stripe, world):
    client = stripe_sdk.StripeClient(API_KEY, base_addresses={"api": stripe.url})

    with pytest.raises(stripe_sdk.InvalidRequestError):
        client.v1.subscriptions.list(
            params={"customer": world["customer"], "expand": ["data.items.data.price.product"]}
        )
