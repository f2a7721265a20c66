"""The emulator answers as Stripe does, through its HTTP API and stripe-python, so our tests can trust it.

Objects carry every field stripe-python types as always present; a request pinned to an older API version
is refused what that version lacks; parameters are as strict as Stripe's.
"""

from __future__ import annotations

import base64
import json
import typing
import urllib.error
import urllib.request
from typing import Any, ClassVar

import pytest
import stripe as stripe_sdk
from stripe.billing_portal import Session
from stripe.params import SubscriptionCreateParamsItem

from local.server import Reply, serve_in_background
from local.stripe_emulator.billing_portal import ADDED_IN, ALWAYS
from tests.conftest import API_KEY

NEWEST = "2026-10-28.endive"


def client(stripe, version: str = NEWEST) -> stripe_sdk.StripeClient:
    return stripe_sdk.StripeClient(API_KEY, base_addresses={"api": stripe.url}, stripe_version=version)


@pytest.fixture
def world(stripe) -> dict[str, str]:
    product = stripe.add_product("Pro")
    monthly = stripe.add_price(product, 2000)
    annual = stripe.add_price(product, 19200, "year")
    customer = stripe.add_customer()
    subscription = stripe.add_subscription(customer, [monthly])
    stripe.add_coupon("STAY20")
    return {
        "product": product,
        "monthly": monthly,
        "customer": customer,
        "subscription": subscription,
        "item": stripe.subscription(subscription)["items"]["data"][0]["id"],
        "annual": annual,
    }


def create(stripe, params: dict[str, Any], version: str = NEWEST) -> Any:
    return client(stripe, version).v1.billing_portal.sessions.create(params=params)  # type: ignore[arg-type]


def refusal(stripe, params: dict[str, Any], version: str = NEWEST) -> stripe_sdk.InvalidRequestError:
    with pytest.raises(stripe_sdk.InvalidRequestError) as raised:
        create(stripe, params, version)
    assert raised.value.http_status == 400
    return raised.value


def confirm(world: dict[str, str], **overrides: Any) -> dict[str, Any]:
    body = {
        "subscription": world["subscription"],
        "items": [{"id": world["item"], "price": world["annual"], "quantity": 1}],
        **overrides,
    }
    return {"type": "subscription_update_confirm", "subscription_update_confirm": body}


def fields_of(cls: type) -> dict[str, Any]:
    """The instance fields stripe-python declares on a resource class (its own and inherited)."""
    hints: dict[str, Any] = {}
    for klass in reversed(cls.__mro__):
        hints.update(vars(klass).get("__annotations__", {}))
    return {
        name: hint
        for name, hint in hints.items()
        if not name.startswith("_") and not name.isupper() and typing.get_origin(hint) is not ClassVar
    }


def always_present(cls: type) -> set[str]:
    """Fields typed without Optional: Stripe sends them on every object, never null."""
    return {name for name, hint in fields_of(cls).items() if type(None) not in typing.get_args(hint)}


def assert_shaped_like(cls: type, obj: dict[str, Any]) -> None:
    """Every always-present field is there and set, no field is unknown to stripe-python, at any depth."""
    declared = fields_of(cls)
    assert set(obj) <= set(declared), f"{cls.__qualname__} has no {sorted(set(obj) - set(declared))}"
    absent = sorted(name for name in always_present(cls) if obj.get(name) is None)
    assert absent == [], f"{cls.__qualname__} lacks {absent}"
    inner: dict[str, type] = getattr(cls, "_inner_class_types", {})
    for name, inner_cls in inner.items():
        value = obj.get(name)
        for part in value if isinstance(value, list) else [value]:
            if isinstance(part, dict):
                assert_shaped_like(inner_cls, part)


class TestAlwaysPresentFields:
    def test_customer(self, stripe):
        created = client(stripe).v1.customers.create(params={"email": "a@example.com"})

        assert_shaped_like(stripe_sdk.Customer, created.to_dict())
        assert_shaped_like(stripe_sdk.Customer, client(stripe).v1.customers.retrieve(created.id).to_dict())

    def test_product_and_price(self, stripe, world):
        api = client(stripe)

        assert_shaped_like(stripe_sdk.Product, api.v1.products.retrieve(world["product"]).to_dict())
        assert_shaped_like(stripe_sdk.Price, api.v1.prices.retrieve(world["monthly"]).to_dict())

    def test_subscription_its_items_their_price_and_plan(self, stripe, world):
        found = client(stripe).v1.subscriptions.retrieve(world["subscription"]).to_dict()

        assert_shaped_like(stripe_sdk.Subscription, found)
        [item] = found["items"]["data"]
        assert_shaped_like(stripe_sdk.SubscriptionItem, item)
        assert_shaped_like(stripe_sdk.Price, item["price"])
        assert_shaped_like(stripe_sdk.Plan, item["plan"])
        assert item["subscription"] == world["subscription"]
        assert item["current_period_start"] < item["current_period_end"]
        assert found["currency"] == item["price"]["currency"] == "usd"

    def test_nullable_fields_are_sent_as_null(self, stripe, world):
        found = client(stripe).v1.subscriptions.retrieve(world["subscription"]).to_dict()

        for name in ("cancel_at", "canceled_at", "ended_at", "trial_end", "days_until_due", "schedule"):
            assert name in found
            assert found[name] is None

    def test_billing_portal_session(self, stripe, world):
        session = create(
            stripe,
            {
                "customer": world["customer"],
                "after_expiration": {"type": "customer_login"},
                "flow_data": confirm(world),
            },
        ).to_dict()

        assert_shaped_like(Session, session)
        for name in ("customer_account", "locale", "on_behalf_of", "return_url"):
            assert session[name] is None


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
    "pause without its object": (
        lambda w: {"flow_data": {"type": "subscription_pause"}},
        "flow_data[subscription_pause]",
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
    "after_expiration without type": (
        lambda w: {"after_expiration": {"customer_login": {"expires_at": 1900000000}}},
        "after_expiration[type]",
    ),
    "after_expiration of another type": (
        lambda w: {"after_expiration": {"type": "logout"}},
        "after_expiration[type]",
    ),
    "unknown key in after_expiration": (
        lambda w: {"after_expiration": {"type": "customer_login", "redirect": "x"}},
        "after_expiration[redirect]",
    ),
    "unknown key in customer_login": (
        lambda w: {
            "after_expiration": {"type": "customer_login", "customer_login": {"email": "a@example.com"}}
        },
        "after_expiration[customer_login][email]",
    ),
    "expires_at not an integer": (
        lambda w: {"after_expiration": {"type": "customer_login", "customer_login": {"expires_at": "soon"}}},
        "after_expiration[customer_login][expires_at]",
    ),
}


@pytest.mark.parametrize("case", REFUSED)
def test_the_emulator_refuses_what_stripe_refuses(stripe, world, case):
    build, param = REFUSED[case]

    error = refusal(stripe, {"customer": world["customer"], **build(world)})

    assert error.param == param
    assert stripe.sessions() == []


def test_after_expiration_is_echoed(stripe, world):
    login = create(
        stripe,
        {
            "customer": world["customer"],
            "after_expiration": {"type": "customer_login", "customer_login": {"expires_at": 1900000000}},
        },
    )
    plain = create(stripe, {"customer": world["customer"], "after_expiration": {"type": "customer_login"}})

    assert login.after_expiration.to_dict() == {
        "type": "customer_login",
        "customer_login": {"expires_at": 1900000000},
    }
    assert plain.after_expiration.type == "customer_login"


# Each addition of the version table, with the version before it: the one the stripe-python release
# without it pins (14.0.0, 15.5.1, 16.0.0), and a request that uses it.
ADDITIONS: dict[str, tuple[str, str, Any]] = {
    "customer_account": (
        "2025-12-15.clover",
        "2025-11-17.clover",
        lambda w: {"customer_account": w["account"]},
    ),
    "customer_update": (
        "2026-08-26.dahlia",
        "2026-07-29.dahlia",
        lambda w: {"customer": w["customer"], "flow_data": {"type": "customer_update"}},
    ),
    "subscription_pause": (
        "2026-10-28.endive",
        "2026-09-30.endive",
        lambda w: {
            "customer": w["customer"],
            "flow_data": {
                "type": "subscription_pause",
                "subscription_pause": {"subscription": w["subscription"]},
            },
        },
    ),
    "after_expiration": (
        "2026-10-28.endive",
        "2026-09-30.endive",
        lambda w: {"customer": w["customer"], "after_expiration": {"type": "customer_login"}},
    ),
}
REFUSED_AS = {
    "customer_account": ("customer_account", "Received unknown parameter: customer_account"),
    "customer_update": ("flow_data[type]", "Invalid flow_data[type]"),
    "subscription_pause": (
        "flow_data[subscription_pause]",
        "Received unknown parameter: flow_data[subscription_pause]",
    ),
    "after_expiration": ("after_expiration", "Received unknown parameter: after_expiration"),
}


def test_the_cases_cover_the_version_table():
    table = {
        (since, name)
        for since, added in ADDED_IN.items()
        if since != ALWAYS
        for name in (*added.flow_types, *added.parameters)
    }

    assert {(since, name) for name, (since, _, _) in ADDITIONS.items()} == table


@pytest.mark.parametrize("addition", ADDITIONS)
def test_an_addition_is_refused_one_version_before_and_accepted_from_its_version(stripe, world, addition):
    since, before, build = ADDITIONS[addition]
    world["account"] = stripe.add_account()

    error = refusal(stripe, build(world), version=before)
    session = create(stripe, build(world), version=since)

    param, message = REFUSED_AS[addition]
    assert error.param == param
    assert error.user_message is not None
    assert error.user_message.startswith(message)
    assert error.code in ("parameter_unknown", "parameter_invalid")
    assert session.id.startswith("bps_")
    assert [s["id"] for s in stripe.sessions()] == [session.id]


@pytest.mark.parametrize("flow_type", ["payment_method_update", "subscription_cancel", "subscription_update"])
def test_the_classic_flows_are_known_to_old_versions(stripe, world, flow_type):
    flow: dict[str, Any] = {"type": flow_type}
    if flow_type != "payment_method_update":
        flow[flow_type] = {"subscription": world["subscription"]}

    session = create(stripe, {"customer": world["customer"], "flow_data": flow}, version="2023-10-16")

    assert session.flow.type == flow_type


def test_a_session_on_an_older_version_has_no_newer_fields(stripe, world):
    session = create(stripe, {"customer": world["customer"]}, version="2025-11-17.clover").to_dict()

    assert "customer_account" not in session
    assert "after_expiration" not in session
    assert_shaped_like(Session, session)


def test_a_malformed_api_version_is_refused(stripe, world):
    with pytest.raises(stripe_sdk.InvalidRequestError) as raised:
        create(stripe, {"customer": world["customer"]}, version="latest")

    assert "Invalid Stripe API version" in str(raised.value.user_message)


class TestCustomerAccount:
    def test_a_session_for_an_account_names_it(self, stripe, world):
        account = stripe.add_account()
        subscription = stripe.add_subscription(account, [world["monthly"]])

        session = create(
            stripe,
            {
                "customer_account": account,
                "flow_data": {
                    "type": "subscription_cancel",
                    "subscription_cancel": {"subscription": subscription},
                },
            },
        )

        assert session.customer_account == account
        assert session.customer.startswith("cus_")
        assert stripe.subscription(subscription)["customer_account"] == account

    @pytest.mark.parametrize(
        ("params", "param"),
        [
            (lambda w, a: {}, "customer"),
            (lambda w, a: {"customer": w["customer"], "customer_account": a}, "customer_account"),
            (lambda w, a: {"customer_account": "acct_unknown"}, "customer_account"),
            (lambda w, a: {"customer_account": w["customer"]}, "customer_account"),
        ],
        ids=["neither", "both", "unknown account", "a customer id"],
    )
    def test_exactly_one_existing_party_is_required(self, stripe, world, params, param):
        error = refusal(stripe, params(world, stripe.add_account()))

        assert error.param == param
        assert stripe.sessions() == []

    def test_an_accounts_session_cannot_name_another_customers_subscription(self, stripe, world):
        error = refusal(
            stripe,
            {
                "customer_account": stripe.add_account(),
                "flow_data": {
                    "type": "subscription_update",
                    "subscription_update": {"subscription": world["subscription"]},
                },
            },
        )

        assert error.param == "flow_data[subscription_update][subscription]"


def test_a_valid_confirm_is_accepted_and_echoed(stripe, world):
    session = create(
        stripe, {"customer": world["customer"], "flow_data": confirm(world, discounts=[{"coupon": "STAY20"}])}
    )

    assert session.url.startswith(stripe.url + "/p/session/")
    assert session.flow is not None
    assert session.flow.subscription_update_confirm is not None


def test_the_portal_page_shows_the_session_and_expires_unknown_urls(stripe, world):
    session = create(stripe, {"customer": world["customer"], "return_url": "https://app.example.com/account"})

    with urllib.request.urlopen(session.url, timeout=5) as response:
        page = response.read().decode()
    with pytest.raises(urllib.error.HTTPError) as expired:
        urllib.request.urlopen(f"{stripe.url}/p/session/test_nope", timeout=5)

    assert f"<td data-field='Customer'>{world['customer']}</td>" in page
    assert "href='https://app.example.com/account'" in page
    assert expired.value.code == 404


class TestSubscriptionEndpoints:
    def test_cancel_ends_it_now(self, stripe, world):
        api = client(stripe)

        canceled = api.v1.subscriptions.cancel(
            world["subscription"], params={"cancellation_details": {"feedback": "too_expensive"}}
        )

        assert canceled.status == "canceled"
        assert canceled.canceled_at is not None
        assert canceled.ended_at == canceled.canceled_at
        assert canceled.cancellation_details is not None
        assert canceled.cancellation_details.reason == "cancellation_requested"
        assert canceled.cancellation_details.feedback == "too_expensive"
        assert stripe.subscription(world["subscription"])["status"] == "canceled"
        assert api.v1.subscriptions.list(params={"customer": world["customer"]}).data == []
        assert len(api.v1.subscriptions.list(params={"status": "canceled"}).data) == 1

    def test_a_canceled_subscription_cannot_be_canceled_again_or_changed(self, stripe, world):
        api = client(stripe)
        api.v1.subscriptions.cancel(world["subscription"])

        with pytest.raises(stripe_sdk.InvalidRequestError) as again:
            api.v1.subscriptions.cancel(world["subscription"])
        with pytest.raises(stripe_sdk.InvalidRequestError) as changed:
            api.v1.subscriptions.update(world["subscription"], params={"cancel_at_period_end": True})
        tagged = api.v1.subscriptions.update(world["subscription"], params={"metadata": {"note": "churned"}})

        assert (again.value.http_status, again.value.code) == (404, "resource_missing")
        assert changed.value.http_status == 400
        assert tagged.metadata is not None
        assert tagged.metadata.to_dict() == {"note": "churned"}

    def test_cancel_at_period_end_sets_and_clears_the_end(self, stripe, world):
        api = client(stripe)

        ending = api.v1.subscriptions.update(
            world["subscription"],
            params={"cancel_at_period_end": True, "cancellation_details": {"comment": "moving on"}},
        )
        refused = refusal(
            stripe,
            {
                "customer": world["customer"],
                "flow_data": {
                    "type": "subscription_cancel",
                    "subscription_cancel": {"subscription": world["subscription"]},
                },
            },
        )
        resumed = api.v1.subscriptions.update(world["subscription"], params={"cancel_at_period_end": False})

        assert ending.status == "active"
        assert ending.cancel_at_period_end is True
        assert ending.cancel_at == ending["items"].data[0].current_period_end
        assert ending.canceled_at is not None
        assert ending.cancellation_details is not None
        assert ending.cancellation_details.comment == "moving on"
        assert refused.param == "flow_data[subscription_cancel][subscription]"
        assert (resumed.cancel_at_period_end, resumed.cancel_at, resumed.canceled_at) == (False, None, None)

    @pytest.mark.parametrize(
        ("params", "param"),
        [
            ({"pause_forever": "true"}, "pause_forever"),
            ({"cancel_at_period_end": "maybe"}, "cancel_at_period_end"),
            ({"cancel_at_period_end": "true", "metadata": {"k" * 41: "v"}}, f"metadata[{'k' * 41}]"),
        ],
        ids=["unknown parameter", "not a boolean", "a bad value beside a good one changes nothing"],
    )
    def test_update_is_strict(self, stripe, world, params, param):
        with pytest.raises(stripe_sdk.InvalidRequestError) as raised:
            client(stripe).v1.subscriptions.update(world["subscription"], params=params)

        assert raised.value.param == param
        assert stripe.subscription(world["subscription"])["cancel_at_period_end"] is False

    def test_create_needs_a_way_to_pay_or_a_trial(self, stripe, world):
        api = client(stripe)
        item: SubscriptionCreateParamsItem = {"price": world["annual"]}

        with pytest.raises(stripe_sdk.InvalidRequestError):
            api.v1.subscriptions.create(params={"customer": world["customer"], "items": [item]})
        trial = api.v1.subscriptions.create(
            params={"customer": world["customer"], "items": [item], "trial_period_days": 14}
        )

        assert trial.status == "trialing"
        assert trial.trial_start is not None
        assert trial.trial_end == trial.trial_start + 14 * 86400
        assert len(stripe.subscriptions()) == 2

    def test_a_missing_subscription_is_404(self, stripe):
        with pytest.raises(stripe_sdk.InvalidRequestError) as raised:
            client(stripe).v1.subscriptions.cancel("sub_nope")

        assert (raised.value.http_status, raised.value.code) == (404, "resource_missing")


class TestOtherResources:
    def test_customers_are_created_updated_listed_and_deleted(self, stripe, world):
        api = client(stripe)
        created = api.v1.customers.create(params={"email": "a@example.com", "metadata": {"a": "1", "b": "2"}})

        updated = api.v1.customers.update(created.id, params={"name": "Ann", "metadata": {"a": ""}})
        found = api.v1.customers.list(params={"email": "a@example.com"}).data
        deleted = api.v1.customers.delete(world["customer"])

        assert updated.name == "Ann"
        assert updated.metadata is not None
        assert updated.metadata.to_dict() == {"b": "2"}
        assert [c.id for c in found] == [created.id]
        assert deleted.deleted is True
        assert api.v1.customers.retrieve(world["customer"]).deleted is True
        assert stripe.subscription(world["subscription"])["status"] == "canceled"
        assert [c["id"] for c in stripe.customers()] == [created.id]

    def test_lists_are_newest_first_and_paginate(self, stripe):
        api = client(stripe)
        ids = [api.v1.customers.create().id for _ in range(3)]

        first = api.v1.customers.list(params={"limit": 2})
        rest = api.v1.customers.list(params={"limit": 2, "starting_after": first.data[-1].id})

        assert [c.id for c in first.data] == ids[:0:-1]
        assert first.has_more is True
        assert [c.id for c in rest.data] == ids[:1]
        assert rest.has_more is False

    def test_products_and_prices(self, stripe):
        api = client(stripe)
        product = api.v1.products.create(params={"name": "Team"})
        price = api.v1.prices.create(
            params={
                "product": product.id,
                "currency": "eur",
                "unit_amount": 900,
                "recurring": {"interval": "month"},
            }
        )

        with pytest.raises(stripe_sdk.InvalidRequestError):
            api.v1.products.delete(product.id)
        retired = api.v1.prices.update(price.id, params={"active": False})
        renamed = api.v1.products.update(product.id, params={"name": "Teams"})
        expanded = api.v1.prices.retrieve(price.id, params={"expand": ["product"]})

        assert retired.active is False
        assert renamed.name == "Teams"
        assert isinstance(expanded.product, stripe_sdk.Product)
        assert [p.id for p in api.v1.prices.list(params={"product": product.id}).data] == [price.id]


def test_a_bad_api_key_is_401(stripe, world):
    bad = stripe_sdk.StripeClient("sk_live_nope", base_addresses={"api": stripe.url})

    with pytest.raises(stripe_sdk.AuthenticationError):
        bad.v1.billing_portal.sessions.create(params={"customer": world["customer"]})


@pytest.mark.parametrize(("method", "path"), [("PUT", "/v1/customers"), ("DELETE", "/v1/prices/price_x")])
def test_a_method_stripe_has_no_route_for_gets_its_json_404(stripe, method, path):
    request = urllib.request.Request(
        f"{stripe.url}{path}", method=method, headers={"Authorization": f"Bearer {API_KEY}"}
    )

    with pytest.raises(urllib.error.HTTPError) as raised:
        urllib.request.urlopen(request, timeout=5)

    assert raised.value.code == 404
    assert (
        json.loads(raised.value.read())["error"]["message"] == f"Unrecognized request URL ({method}: {path})."
    )


def test_idempotency_key_reused_with_other_parameters_is_refused(stripe):
    api = client(stripe)
    first = api.v1.customers.create(params={"email": "a@example.com"}, options={"idempotency_key": "k1"})
    api.v1.customers.update(first.id, params={"email": "changed@example.com"})

    replay = api.v1.customers.create(params={"email": "a@example.com"}, options={"idempotency_key": "k1"})
    with pytest.raises(stripe_sdk.IdempotencyError):
        api.v1.customers.create(params={"email": "b@example.com"}, options={"idempotency_key": "k1"})

    assert len(stripe.customers()) == 1
    assert replay.id == first.id
    assert replay.email == "a@example.com"


def test_expanding_more_than_four_levels_or_an_unexpandable_field_is_refused(stripe, world):
    api = client(stripe)

    with pytest.raises(stripe_sdk.InvalidRequestError):
        api.v1.subscriptions.list(
            params={"customer": world["customer"], "expand": ["data.items.data.price.product"]}
        )
    with pytest.raises(stripe_sdk.InvalidRequestError) as raised:
        api.v1.subscriptions.retrieve(world["subscription"], params={"expand": ["status"]})

    assert raised.value.param == "expand"


def test_accessors_return_copies(stripe, world):
    stripe.subscription(world["subscription"])["status"] = "canceled"
    stripe.customers()[0]["email"] = "changed@example.com"

    assert stripe.subscription(world["subscription"])["status"] == "active"
    assert stripe.customers()[0]["email"] is None


class TestIdempotencyKeysExpire:
    def test_within_24_hours_a_key_replays_the_first_answer(self, stripe):
        first = client(stripe).v1.customers.create(options={"idempotency_key": "k-1"})
        stripe.advance_clock(24 * 3600 - 60)

        again = client(stripe).v1.customers.create(options={"idempotency_key": "k-1"})

        assert again.id == first.id
        assert len(stripe.customers()) == 1

    def test_after_24_hours_stripe_has_forgotten_the_key(self, stripe):
        first = client(stripe).v1.customers.create(options={"idempotency_key": "k-1"})
        stripe.advance_clock(24 * 3600 + 1)

        again = client(stripe).v1.customers.create(options={"idempotency_key": "k-1"})

        assert again.id != first.id
        assert len(stripe.customers()) == 2


class TestCustomerSearch:
    def test_finds_customers_by_metadata(self, stripe):
        wanted = stripe.add_customer(metadata={"portal_links_creation_key": "abc"})
        stripe.add_customer(metadata={"portal_links_creation_key": "other"})

        found = client(stripe).v1.customers.search(
            params={"query": "metadata['portal_links_creation_key']:'abc'"}
        )

        assert [c.id for c in found.data] == [wanted]
        assert found["object"] == "search_result"

    def test_and_joins_clauses(self, stripe):
        wanted = stripe.add_customer(email="a@example.com", metadata={"app_user_id": "u1"})
        stripe.add_customer(email="b@example.com", metadata={"app_user_id": "u1"})

        found = client(stripe).v1.customers.search(
            params={"query": "email:'a@example.com' AND metadata['app_user_id']:'u1'"}
        )

        assert [c.id for c in found.data] == [wanted]

    def test_deleted_customers_are_not_found(self, stripe):
        gone = stripe.add_customer(metadata={"k": "v"})
        client(stripe).v1.customers.delete(gone)

        assert client(stripe).v1.customers.search(params={"query": "metadata['k']:'v'"}).data == []

    @pytest.mark.parametrize("query", ["k:v", "metadata['k']:v", "email:'a' AND OR name:'b'", "email:"])
    def test_a_query_it_cannot_parse_is_refused(self, stripe, query):
        with pytest.raises(stripe_sdk.InvalidRequestError) as refused:
            client(stripe).v1.customers.search(params={"query": query})

        assert refused.value.param == "query"


class TestWebhookDelivery:
    def test_an_endpoint_made_through_the_api_gets_signed_events_stripe_python_verifies(self, stripe):
        received: list[tuple[bytes, str]] = []

        def respond(method, path, headers, body):
            received.append((body, headers["stripe-signature"]))
            return Reply(200, b"{}")

        server = serve_in_background(respond, "webhook-receiver")
        try:
            url = f"http://127.0.0.1:{server.server_address[1]}/hook"
            endpoint = client(stripe).v1.webhook_endpoints.create(
                params={"url": url, "enabled_events": ["customer.created", "customer.deleted"]}
            )
            customer = client(stripe).v1.customers.create(params={"metadata": {"app_user_id": "u1"}})
            client(stripe).v1.customers.update(customer.id, params={"name": "Ann"})  # not subscribed to
            client(stripe).v1.customers.delete(customer.id)
            deliveries = stripe.deliveries()
        finally:
            server.stop()

        assert str(endpoint.secret).startswith("whsec_")
        assert [(d.event_type, d.status) for d in deliveries] == [
            ("customer.created", 200),
            ("customer.deleted", 200),
        ]
        events = [
            stripe_sdk.Webhook.construct_event(body.decode(), signature, endpoint.secret)
            for body, signature in received
        ]
        assert [e.type for e in events] == ["customer.created", "customer.deleted"]
        assert events[0].data.object.metadata["app_user_id"] == "u1"
        assert [e.id for e in events] == [e["id"] for e in stripe.events() if e["type"] != "customer.updated"]

    def test_the_secret_is_shown_only_when_the_endpoint_is_made(self, stripe):
        client(stripe).v1.webhook_endpoints.create(
            params={"url": "https://example.com/h", "enabled_events": ["*"]}
        )

        [listed] = client(stripe).v1.webhook_endpoints.list().data

        assert "secret" not in listed

    def test_an_event_type_stripe_does_not_send_here_is_refused(self, stripe):
        with pytest.raises(stripe_sdk.InvalidRequestError):
            client(stripe).v1.webhook_endpoints.create(
                # stripe-python's own typed params list every event type; this one is not among them
                params={"url": "https://example.com/h", "enabled_events": ["customer.teleported"]},  # type: ignore[list-item]
            )


def test_the_key_may_come_as_basic_auth_as_in_stripes_curl_examples(stripe):
    basic = base64.b64encode(f"{API_KEY}:".encode()).decode()
    request = urllib.request.Request(
        f"{stripe.url}/v1/customers", headers={"Authorization": f"Basic {basic}"}
    )

    with urllib.request.urlopen(request, timeout=5) as response:
        assert json.loads(response.read())["object"] == "list"
    assert [r.api_key for r in stripe.requests()] == [API_KEY]
