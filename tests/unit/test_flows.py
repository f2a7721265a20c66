"""POST|GET /portal/{flow}: the flow_data built from policy, and every tampering attempt refused."""

from __future__ import annotations

import json
from dataclasses import dataclass

import pytest

from tests.conftest import APP, link_customer, portal_session, problem, rows

CANCEL_MESSAGE = "Your plan ends at the close of this billing period."


@dataclass
class Shop:
    customer: str
    subscription: str
    item: str
    monthly: str
    annual: str
    team: str
    legacy: str


def policy_document(shop: Shop) -> dict:
    return {
        "default_locale": "auto",
        "on_behalf_of": "acct_1Platform",
        "homepage": {"configuration": "bpc_home"},
        "flows": {
            "payment_method_update": {
                "configuration": "bpc_cards",
                "after_completion": {"type": "redirect", "return_url": f"{APP}/billing?card=updated"},
            },
            "subscription_cancel": {
                "after_completion": {"type": "hosted_confirmation", "custom_message": CANCEL_MESSAGE},
                "retention_coupon": "STAY20",
            },
            "subscription_update": {"after_completion": {"type": "portal_homepage"}},
            "subscription_update_confirm": {
                "prices": {
                    shop.monthly: {},
                    shop.annual: {"coupon": "ANNUAL20"},
                    shop.team: {"promotion_code": "promo_TEAM"},
                },
                "quantity": {"min": 1, "max": 20},
            },
            "customer_update": {"enabled": True},
            "subscription_pause": {"enabled": True},
        },
    }


@pytest.fixture
def shop(stripe, aws) -> Shop:
    product = stripe.add_product("Pro")
    monthly = stripe.add_price(product, 2000, "month")
    annual = stripe.add_price(product, 19200, "year")
    team = stripe.add_price(stripe.add_product("Team"), 5000, "month")
    legacy = stripe.add_price(product, 1500, "month")
    for configuration in ("bpc_home", "bpc_cards"):
        stripe.add_configuration(configuration)
    stripe.add_coupon("STAY20")
    stripe.add_coupon("ANNUAL20")
    stripe.add_promotion_code("promo_TEAM")
    customer = stripe.add_customer(email="ann@example.com")
    subscription = stripe.add_subscription(customer, [monthly])
    link_customer(aws, "user-1", customer)
    item = stripe.subscription(subscription)["items"]["data"][0]["id"]
    return Shop(customer, subscription, item, monthly, annual, team, legacy)


@pytest.fixture
def configure(redeploy, handler, tmp_path):
    """Deploy with a policy document (a fresh cold start)."""

    def apply(document: dict, **settings: str) -> None:
        path = tmp_path / "portal-policy.json"
        path.write_text(json.dumps(document))
        redeploy(PORTAL_POLICY_FILE=str(path), **settings)
        handler.module.portal()

    return apply


@pytest.fixture
def app(handler, configure, shop, identity):
    configure(policy_document(shop))

    def request(flow: str | None, **kwargs):
        path = "/portal" if flow is None else f"/portal/{flow}"
        kwargs.setdefault("token", identity.token("user-1"))
        return handler.request(path=path, **kwargs)

    return request


def session_params(response, stripe):
    """What the portal session the user was sent to was created with."""
    portal_session(response, stripe)
    [call] = stripe.requests_to("POST", "/v1/billing_portal/sessions")
    assert call.status == 200
    return call.params


def assert_no_session(stripe) -> None:
    assert stripe.requests_to("POST", "/v1/billing_portal/sessions") == []
    assert stripe.sessions() == []


class TestFlowData:
    def test_homepage_uses_the_homepage_configuration(self, app, stripe, shop):
        response = app(None)

        assert response["statusCode"] == 303
        assert session_params(response, stripe) == {
            "customer": shop.customer,
            "return_url": f"{APP}/account",
            "configuration": "bpc_home",
            "on_behalf_of": "acct_1Platform",
        }

    def test_payment_method_update(self, app, stripe, shop):
        response = app("payment_method_update")

        assert response["statusCode"] == 303
        [session] = stripe.sessions()
        assert response["headers"]["Location"] == session["url"]
        assert session_params(response, stripe) == {
            "customer": shop.customer,
            "return_url": f"{APP}/account",
            "configuration": "bpc_cards",
            "on_behalf_of": "acct_1Platform",
            "flow_data": {
                "type": "payment_method_update",
                "after_completion": {
                    "type": "redirect",
                    "redirect": {"return_url": f"{APP}/billing?card=updated"},
                },
            },
        }

    def test_subscription_cancel_with_retention_offer(self, app, stripe, shop):
        response = app("subscription_cancel", form={"subscription": shop.subscription})

        assert response["statusCode"] == 303
        assert session_params(response, stripe)["flow_data"] == {
            "type": "subscription_cancel",
            "after_completion": {
                "type": "hosted_confirmation",
                "hosted_confirmation": {"custom_message": CANCEL_MESSAGE},
            },
            "subscription_cancel": {
                "subscription": shop.subscription,
                "retention": {"type": "coupon_offer", "coupon_offer": {"coupon": "STAY20"}},
            },
        }

    def test_subscription_update(self, app, stripe, shop):
        response = app("subscription_update", form={"subscription": shop.subscription})

        assert session_params(response, stripe)["flow_data"] == {
            "type": "subscription_update",
            "after_completion": {"type": "portal_homepage"},
            "subscription_update": {"subscription": shop.subscription},
        }

    def test_update_confirm_attaches_the_coupon_the_policy_gives_that_price(self, app, stripe, shop):
        response = app("subscription_update_confirm", form={"price": shop.annual})

        assert response["statusCode"] == 303
        assert session_params(response, stripe)["flow_data"] == {
            "type": "subscription_update_confirm",
            "subscription_update_confirm": {
                "subscription": shop.subscription,
                "items": {"0": {"id": shop.item, "price": shop.annual, "quantity": "1"}},
                "discounts": {"0": {"coupon": "ANNUAL20"}},
            },
        }

    def test_update_confirm_with_a_promotion_code_and_quantity(self, app, stripe, shop):
        response = app("subscription_update_confirm", json_body={"price": shop.team, "quantity": 5})

        confirm = session_params(response, stripe)["flow_data"]["subscription_update_confirm"]
        assert confirm["items"] == {"0": {"id": shop.item, "price": shop.team, "quantity": "5"}}
        assert confirm["discounts"] == {"0": {"promotion_code": "promo_TEAM"}}

    def test_update_confirm_quantity_only_keeps_the_price_and_adds_no_discount(self, app, stripe, shop):
        response = app("subscription_update_confirm", form={"quantity": "3"})

        confirm = session_params(response, stripe)["flow_data"]["subscription_update_confirm"]
        assert confirm == {
            "subscription": shop.subscription,
            "items": {"0": {"id": shop.item, "price": shop.monthly, "quantity": "3"}},
        }

    def test_customer_update(self, app, stripe):
        response = app("customer_update")

        assert session_params(response, stripe)["flow_data"] == {"type": "customer_update"}

    def test_subscription_pause(self, app, stripe, shop):
        response = app("subscription_pause")

        assert session_params(response, stripe)["flow_data"] == {
            "type": "subscription_pause",
            "subscription_pause": {"subscription": shop.subscription},
        }

    def test_the_flow_works_as_a_get_link_and_for_fetch(self, app, stripe):
        link = app("payment_method_update", method="GET")
        assert link["statusCode"] == 303
        portal_session(link, stripe)
        fetched = app("payment_method_update", accept="application/json")

        assert fetched["statusCode"] == 200
        assert portal_session(fetched, stripe)["flow"]["type"] == "payment_method_update"


@pytest.mark.parametrize(
    ("after_completion", "expected"),
    [
        (
            {"type": "redirect", "return_url": f"{APP}/done"},
            {"type": "redirect", "redirect": {"return_url": f"{APP}/done"}},
        ),
        (
            {"type": "hosted_confirmation", "custom_message": "Thanks!"},
            {"type": "hosted_confirmation", "hosted_confirmation": {"custom_message": "Thanks!"}},
        ),
        ({"type": "hosted_confirmation"}, {"type": "hosted_confirmation"}),
        ({"type": "portal_homepage"}, {"type": "portal_homepage"}),
    ],
)
def test_each_after_completion_type(configure, handler, identity, stripe, shop, after_completion, expected):
    document = policy_document(shop)
    document["flows"]["payment_method_update"] = {"after_completion": after_completion}
    configure(document)

    response = handler.request(path="/portal/payment_method_update", token=identity.token("user-1"))

    assert session_params(response, stripe)["flow_data"] == {
        "type": "payment_method_update",
        "after_completion": expected,
    }


def test_without_a_policy_file_the_core_flows_use_stripes_defaults(handler, identity, stripe, shop):
    response = handler.request(
        path="/portal/subscription_cancel", token=identity.token("user-1"), accept="application/json"
    )

    assert response["statusCode"] == 200
    assert session_params(response, stripe) == {
        "customer": shop.customer,
        "return_url": f"{APP}/account",
        "flow_data": {
            "type": "subscription_cancel",
            "subscription_cancel": {"subscription": shop.subscription},
        },
    }


class TestLocale:
    @pytest.mark.parametrize(
        ("accept_language", "locale"),
        [
            ("pt-BR,pt;q=0.9", "pt-BR"),
            ("de-AT", "de"),
            ("en-US,en;q=0.8", "en"),
            ("zh-Hant-TW", "zh-TW"),
            ("es-MX,es;q=0.9", "es-419"),
            ("fr-CA", "fr-CA"),
            ("xx-YY;q=1, nl;q=0.5", "nl"),
            ("fr;q=0.2, ja;q=0.9", "ja"),
            ("sv;q=0", None),
            ("*", None),
            ("tlh", None),
        ],
    )
    def test_locale_comes_from_accept_language(self, app, stripe, accept_language, locale):
        response = app(None, headers={"accept-language": accept_language})

        assert session_params(response, stripe).get("locale") == locale

    def test_explicit_locale_wins(self, app, stripe):
        response = app("payment_method_update", form={"locale": "ja"}, headers={"accept-language": "de"})

        assert session_params(response, stripe)["locale"] == "ja"

    def test_explicit_locale_is_normalised(self, app, stripe):
        response = app(None, form={"locale": "PT-br"})

        assert session_params(response, stripe)["locale"] == "pt-BR"

    def test_policy_default_locale(self, configure, handler, identity, stripe, shop):
        configure({**policy_document(shop), "default_locale": "fr"})

        response = handler.request(token=identity.token("user-1"))

        assert session_params(response, stripe)["locale"] == "fr"

    @pytest.mark.parametrize("locale", ["klingon", "en_US", "zz", "en-US", ""])
    def test_unknown_explicit_locale_is_refused(self, app, stripe, locale):
        response = app(None, form={"locale": locale}, accept="application/json")

        assert response["statusCode"] == 400
        assert problem(response)["code"] == "invalid_parameter"
        assert problem(response)["param"] == "locale"
        assert_no_session(stripe)


class TestSubscriptionChoice:
    def test_the_single_eligible_subscription_is_used(self, app, stripe, stripe_api, shop):
        stripe_api.v1.subscriptions.cancel(stripe.add_subscription(shop.customer, [shop.team]))

        response = app("subscription_cancel")

        assert (
            session_params(response, stripe)["flow_data"]["subscription_cancel"]["subscription"]
            == shop.subscription
        )

    def test_several_eligible_subscriptions_are_ambiguous_and_listed(self, app, stripe, shop):
        second = stripe.add_subscription(shop.customer, [shop.team])

        response = app("subscription_update", accept="application/json")

        assert response["statusCode"] == 409
        body = problem(response)
        assert body["code"] == "subscription_ambiguous"
        assert sorted(body["subscriptions"], key=lambda s: s["id"]) == sorted(
            [{"id": shop.subscription, "products": ["Pro"]}, {"id": second, "products": ["Team"]}],
            key=lambda s: s["id"],
        )
        # The product names come in one list call, not one retrieve per product.
        [names] = stripe.requests_to("GET", "/v1/products")
        assert len(names.params["ids"]) == 2
        assert_no_session(stripe)

    def test_naming_one_of_several_resolves_it(self, app, stripe, shop):
        second = stripe.add_subscription(shop.customer, [shop.team])

        response = app("subscription_update", form={"subscription": second})

        assert session_params(response, stripe)["flow_data"]["subscription_update"]["subscription"] == second

    def test_no_eligible_subscription_is_409(self, app, stripe, stripe_api, shop):
        stripe_api.v1.subscriptions.cancel(shop.subscription)

        response = app("subscription_update", accept="application/json")

        assert response["statusCode"] == 409
        assert problem(response)["code"] == "no_subscription"
        assert_no_session(stripe)

    def test_a_user_without_a_customer_gets_no_subscription_and_nothing_is_created(
        self, app, stripe, identity, aws
    ):
        response = app("subscription_cancel", token=identity.token("newcomer"))

        assert response["statusCode"] == 303
        assert response["headers"]["Location"] == f"{APP}/account?portal_error=no_subscription"
        assert stripe.requests_to("POST", "/v1/customers") == []
        assert [row["app_user_id"]["S"] for row in rows(aws)] == ["user-1"]
        assert_no_session(stripe)

    def test_a_user_without_a_customer_still_gets_the_payment_method_flow(self, app, stripe, identity):
        response = app("payment_method_update", token=identity.token("newcomer"))

        assert response["statusCode"] == 303
        session = portal_session(response, stripe)
        assert len(stripe.customers()) == 2
        assert session["customer"] == stripe.customers()[-1]["id"]


class TestTampering:
    def test_someone_elses_subscription_is_404_without_saying_it_exists(self, app, stripe, shop):
        stranger = stripe.add_customer()
        foreign = stripe.add_subscription(stranger, [shop.monthly])

        response = app("subscription_cancel", form={"subscription": foreign}, accept="application/json")
        missing = app(
            "subscription_cancel", form={"subscription": "sub_doesnotexist"}, accept="application/json"
        )

        assert response["statusCode"] == missing["statusCode"] == 404
        assert problem(response)["code"] == problem(missing)["code"] == "subscription_not_found"
        assert problem(response)["detail"] == problem(missing)["detail"]
        assert_no_session(stripe)

    @pytest.mark.parametrize("state", ["canceled", "incomplete_expired", "set to cancel at period end"])
    def test_a_subscription_that_cannot_be_canceled_is_409(self, app, stripe, stripe_api, shop, state):
        subscription = shop.subscription
        if state == "canceled":
            stripe_api.v1.subscriptions.cancel(subscription)
        elif state == "set to cancel at period end":
            stripe_api.v1.subscriptions.update(subscription, params={"cancel_at_period_end": True})
        else:  # no endpoint leads here: a first payment that never succeeded
            subscription = stripe.add_subscription(shop.customer, [shop.monthly], status=state)

        response = app("subscription_cancel", form={"subscription": subscription}, accept="application/json")

        assert response["statusCode"] == 409
        assert problem(response)["code"] == "subscription_not_cancelable"
        assert_no_session(stripe)

    @pytest.mark.parametrize("status", ["canceled", "past_due", "unpaid", "incomplete"])
    def test_a_subscription_that_cannot_be_updated_is_409(self, app, stripe, stripe_api, shop, status):
        subscription = shop.subscription
        if status == "canceled":
            stripe_api.v1.subscriptions.cancel(subscription)
        else:  # billing states no endpoint sets
            subscription = stripe.add_subscription(shop.customer, [shop.monthly], status=status)

        response = app(
            "subscription_update_confirm",
            form={"subscription": subscription, "price": shop.annual},
            accept="application/json",
        )

        assert response["statusCode"] == 409
        assert problem(response)["code"] == "subscription_not_updatable"
        assert_no_session(stripe)

    def test_a_multi_item_subscription_cannot_be_confirmed(self, app, stripe, shop):
        multi = stripe.add_subscription(shop.customer, [shop.monthly, shop.team])

        response = app(
            "subscription_update_confirm",
            form={"subscription": multi, "price": shop.annual},
            accept="application/json",
        )

        assert response["statusCode"] == 409
        assert problem(response)["code"] == "subscription_not_updatable"
        assert problem(response)["detail"] == "only single-item subscriptions can be changed this way"
        assert_no_session(stripe)

    @pytest.mark.parametrize("price", ["price_not_allowed", "legacy", "price_1<script>"])
    def test_a_price_off_the_allow_list_is_refused(self, app, stripe, shop, price):
        price = shop.legacy if price == "legacy" else price

        response = app("subscription_update_confirm", form={"price": price}, accept="application/json")

        assert response["statusCode"] == 400
        assert problem(response)["code"] == "invalid_parameter"
        assert problem(response)["param"] == "price"
        assert problem(response)["detail"] == "price is not one of the plans you can switch to"
        assert_no_session(stripe)

    def test_the_current_price_must_be_allow_listed_for_a_quantity_change(
        self, configure, handler, identity, stripe, shop
    ):
        document = policy_document(shop)
        document["flows"]["subscription_update_confirm"]["prices"] = {shop.annual: {}}
        configure(document)

        response = handler.request(
            path="/portal/subscription_update_confirm",
            token=identity.token("user-1"),
            form={"quantity": "2"},
            accept="application/json",
        )

        assert response["statusCode"] == 400
        assert problem(response)["code"] == "invalid_parameter"
        assert problem(response)["detail"] == "name the plan to switch to"
        assert problem(response)["param"] == "price"
        assert_no_session(stripe)

    @pytest.mark.parametrize(
        "quantity", ["0", "-1", "21", "99999999999", "1.5", "two", "", " 3", "0x10", "1e3"]
    )
    def test_a_bad_quantity_is_refused(self, app, stripe, quantity):
        response = app("subscription_update_confirm", form={"quantity": quantity}, accept="application/json")

        assert response["statusCode"] == 400
        body = problem(response)
        assert body["code"] == "invalid_parameter"
        assert body["param"] == "quantity"
        assert_no_session(stripe)

    def test_a_non_integer_json_quantity_is_refused(self, app, stripe):
        response = app("subscription_update_confirm", json_body={"quantity": 2.5}, accept="application/json")

        assert response["statusCode"] == 400
        assert problem(response)["code"] == "invalid_parameter"
        assert problem(response)["param"] == "quantity"
        assert_no_session(stripe)

    def test_a_change_that_changes_nothing_is_422(self, app, stripe, shop):
        response = app(
            "subscription_update_confirm",
            form={"price": shop.monthly, "quantity": "1"},
            accept="application/json",
        )

        assert response["statusCode"] == 422
        assert problem(response)["code"] == "subscription_unchanged"
        assert problem(response)["detail"] == "the subscription already has this plan and quantity"
        assert_no_session(stripe)

    @pytest.mark.parametrize(
        ("flow", "param"),
        [
            ("subscription_update_confirm", "coupon"),
            ("subscription_update_confirm", "promotion_code"),
            ("subscription_update_confirm", "discounts[0][coupon]"),
            ("subscription_cancel", "retention_coupon"),
            ("payment_method_update", "configuration"),
            ("subscription_update", "flow_data[type]"),
            ("subscription_cancel", "on_behalf_of"),
            ("payment_method_update", "after_completion[redirect][return_url]"),
            ("payment_method_update", "subscription"),
            ("subscription_update", "price"),
            ("customer_update", "customer"),
        ],
    )
    def test_parameters_the_client_may_not_send_are_refused_by_name(self, app, stripe, flow, param):
        response = app(flow, form={param: "x"}, accept="application/json")

        assert response["statusCode"] == 400
        body = problem(response)
        assert body["code"] == "unknown_parameter"
        assert body["param"] == param
        assert_no_session(stripe)

    @pytest.mark.parametrize("subscription", ["cus_123", "sub_../../x", "sub_", "sub_" + "a" * 300])
    def test_a_malformed_subscription_id_is_refused(self, app, stripe, subscription):
        response = app("subscription_cancel", form={"subscription": subscription}, accept="application/json")

        assert response["statusCode"] == 400
        assert problem(response)["code"] == "invalid_parameter"
        assert problem(response)["param"] == "subscription"
        assert problem(response)["detail"] == "subscription must be a subscription id (sub_…)"
        assert_no_session(stripe)

    def test_a_foreign_return_to_is_refused_on_a_flow(self, app, stripe):
        response = app(
            "payment_method_update", form={"return_to": "https://evil.example/"}, accept="application/json"
        )

        assert response["statusCode"] == 400
        assert problem(response)["code"] == "invalid_parameter"
        assert problem(response)["param"] == "return_to"
        assert_no_session(stripe)

    def test_an_allowed_return_to_sets_only_the_top_level_return_url(self, app, stripe):
        response = app("payment_method_update", form={"return_to": f"{APP}/settings"})

        params = session_params(response, stripe)
        assert params["return_url"] == f"{APP}/settings"
        assert (
            params["flow_data"]["after_completion"]["redirect"]["return_url"] == f"{APP}/billing?card=updated"
        )


class TestFlowAvailability:
    def test_an_unknown_flow_is_404_with_the_enabled_flows(self, app, stripe):
        response = app("subscription_destroy", accept="application/json")

        assert response["statusCode"] == 404
        body = problem(response)
        assert body["code"] == "unknown_flow"
        assert body["enabled_flows"] == [
            "payment_method_update",
            "subscription_cancel",
            "subscription_update",
            "subscription_update_confirm",
            "customer_update",
            "subscription_pause",
        ]
        assert_no_session(stripe)

    def test_a_disabled_flow_is_404(self, configure, handler, identity, stripe, shop):
        document = policy_document(shop)
        document["flows"]["subscription_cancel"] = {"enabled": False}
        configure(document)

        response = handler.request(
            path="/portal/subscription_cancel", token=identity.token("user-1"), accept="application/json"
        )

        assert response["statusCode"] == 404
        assert problem(response)["code"] == "unknown_flow"
        assert "subscription_cancel" not in problem(response)["enabled_flows"]
        assert_no_session(stripe)

    def test_an_older_pinned_api_version_hides_the_newer_flows(
        self, redeploy, handler, identity, stripe, shop
    ):
        redeploy(STRIPE_API_VERSION="2025-03-31.basil")

        response = handler.request(
            path="/portal/subscription_pause", token=identity.token("user-1"), accept="application/json"
        )

        assert response["statusCode"] == 404
        assert problem(response)["code"] == "unknown_flow"
        assert_no_session(stripe)

    def test_enabling_a_newer_flow_on_an_older_api_version_fails_the_cold_start(self, configure, shop):
        from portal_links.errors import ConfigurationError

        with pytest.raises(ConfigurationError) as raised:
            configure(policy_document(shop), STRIPE_API_VERSION="2025-03-31.basil")

        assert raised.value.setting == "policy.flows.customer_update.enabled"


@pytest.mark.parametrize(
    ("change", "key"),
    [
        (lambda d: d.update(colour="blue"), "policy.colour"),
        (lambda d: d["flows"].update(subscription_destroy={}), "policy.flows.subscription_destroy"),
        (
            lambda d: d["flows"]["payment_method_update"].update(coupon="X"),
            "policy.flows.payment_method_update.coupon",
        ),
        (
            lambda d: d["flows"]["subscription_cancel"]["after_completion"].update(custom_message="x" * 501),
            "policy.flows.subscription_cancel.after_completion.custom_message",
        ),
        (
            lambda d: d["flows"]["payment_method_update"]["after_completion"].update(
                return_url="https://evil.example/"
            ),
            "policy.flows.payment_method_update.after_completion.return_url",
        ),
        (
            lambda d: d["flows"]["subscription_update"].update(after_completion={"type": "teleport"}),
            "policy.flows.subscription_update.after_completion.type",
        ),
        (
            lambda d: d["flows"]["subscription_update_confirm"].update(prices={}),
            "policy.flows.subscription_update_confirm.prices",
        ),
        (
            lambda d: d["flows"]["subscription_update_confirm"].update(prices={"prod_1": {}}),
            "policy.flows.subscription_update_confirm.prices.prod_1",
        ),
        (
            lambda d: d["flows"]["subscription_update_confirm"].update(quantity={"min": 5, "max": 2}),
            "policy.flows.subscription_update_confirm.quantity.min",
        ),
        (
            lambda d: d["flows"]["subscription_cancel"].update(enabled="yes"),
            "policy.flows.subscription_cancel.enabled",
        ),
        (lambda d: d["homepage"].update(configuration="cfg_1"), "policy.homepage.configuration"),
        (lambda d: d.update(on_behalf_of="cus_1"), "policy.on_behalf_of"),
        (lambda d: d.update(default_locale="en-US"), "policy.default_locale"),
    ],
)
def test_a_policy_error_fails_the_cold_start_naming_the_key(configure, shop, change, key):
    from portal_links.errors import ConfigurationError

    document = policy_document(shop)
    change(document)

    with pytest.raises(ConfigurationError) as raised:
        configure(document)

    assert raised.value.setting == key


def test_an_unreadable_policy_file_fails_the_cold_start(redeploy, handler, tmp_path):
    from portal_links.errors import ConfigurationError

    (tmp_path / "broken.json").write_text("{not json")
    redeploy(PORTAL_POLICY_FILE=str(tmp_path / "broken.json"))

    with pytest.raises(ConfigurationError, match="PORTAL_POLICY_FILE"):
        handler.module.portal()
