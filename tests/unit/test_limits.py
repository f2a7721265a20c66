"""Every limit at its exact boundary: the last value inside reaches the portal, the first one outside is
refused naming what was wrong, and nothing is made for it."""

from __future__ import annotations

import base64
import json
import time
from urllib.parse import urlencode

import pytest

from local.apigw import http_api_event
from local.identity_provider import IdentityProvider
from tests.conftest import APP, link_customer, portal_session, problem, rows
from tests.unit.test_webhooks import SECRET, customer, deliver, stripe_event

MAX_URL = 2048
MAX_TOKEN = 8192
MAX_BODY = 16 * 1024
MAX_EVENT = 512 * 1024
MAX_FIELDS = 32


def url_of_length(length: int, prefix: str = f"{APP}/") -> str:
    return prefix + "a" * (length - len(prefix))


def assert_refused(response, status: int, code: str, param: str | None = None) -> dict:
    assert response["statusCode"] == status, response["body"]
    body = problem(response)
    assert body["code"] == code
    if param is not None:
        assert body["param"] == param
    return body


class TestReturnTo:
    @pytest.mark.parametrize(
        "return_to",
        [
            pytest.param(url_of_length(MAX_URL), id="exactly 2,048 characters"),
            pytest.param(f"{APP}/a!b", id="! (0x21, the first printable)"),
            pytest.param(f"{APP}/a~b", id="~ (0x7e, the last printable)"),
            pytest.param(f"{APP}/billing?tab=", id="an empty query value"),
        ],
    )
    def test_the_last_allowed_url_reaches_the_portal(self, handler, identity, stripe, return_to):
        response = handler.request(
            token=identity.token("user-1"), form={"return_to": return_to}, accept="application/json"
        )

        assert portal_session(response, stripe)["return_url"] == return_to

    @pytest.mark.parametrize(
        "return_to",
        [
            pytest.param(url_of_length(MAX_URL + 1), id="2,049 characters"),
            pytest.param(f"{APP}/a\x7fb", id="DEL (0x7f)"),
            pytest.param(f"{APP}/a b", id="a space (0x20)"),
            pytest.param(f"{APP}/\\\\evil.example", id="a backslash in the path"),
            pytest.param("https://[app.example.com/account", id="a URL urlsplit cannot parse"),
            pytest.param("https://app.example.com:99999/", id="a port out of range"),
        ],
    )
    def test_the_first_url_past_a_limit_is_refused(self, handler, identity, stripe, aws, return_to):
        response = handler.request(
            token=identity.token("user-1"), form={"return_to": return_to}, accept="application/json"
        )

        body = assert_refused(response, 400, "invalid_parameter", "return_to")
        assert body["detail"] == "return_to must be an absolute https URL on one of the app's allowed origins"
        assert stripe.requests() == []
        assert rows(aws) == []

    def test_an_error_goes_back_to_a_return_to_keeping_its_empty_query_values(self, handler, identity):
        response = handler.request(
            token=identity.token("user-1"), form={"return_to": f"{APP}/billing?tab=&x=1", "coupon": "FREE"}
        )

        assert response["statusCode"] == 303
        assert response["headers"]["Location"] == f"{APP}/billing?tab=&x=1&portal_error=unknown_parameter"


class TestOriginsAndPorts:
    """An origin is scheme, host and port, with the scheme's default port the same as none."""

    @pytest.fixture
    def local_origins(self, redeploy, handler):
        redeploy(ALLOWED_ORIGINS=f"{APP},http://localhost,http://[::1]:5173")
        return handler

    @pytest.mark.parametrize(
        "return_to",
        ["http://localhost/x", "http://localhost:80/x", "http://[::1]:5173/x", f"{APP}:443/x"],
    )
    def test_a_url_on_an_allowed_origin_reaches_the_portal(self, local_origins, identity, stripe, return_to):
        response = local_origins.request(token=identity.token("user-1"), form={"return_to": return_to})

        assert portal_session(response, stripe)["return_url"] == return_to

    @pytest.mark.parametrize(
        "return_to", ["http://localhost:443/x", "http://localhost:81/x", "http://[::1]/x", f"{APP}:80/x"]
    )
    def test_another_port_is_another_origin(self, local_origins, identity, stripe, return_to):
        response = local_origins.request(
            token=identity.token("user-1"), form={"return_to": return_to}, accept="application/json"
        )

        assert_refused(response, 400, "invalid_parameter", "return_to")
        assert stripe.requests() == []


class TestQuantity:
    @pytest.fixture
    def shop(self, stripe, aws, configure_quantity):
        product = stripe.add_product("Seats")
        price = stripe.add_price(product, 1000, "month")
        customer_id = stripe.add_customer()
        subscription = stripe.add_subscription(customer_id, [price], quantity=5)
        link_customer(aws, "user-1", customer_id)
        configure_quantity(price, low=2, high=20)
        return subscription

    @pytest.fixture
    def configure_quantity(self, redeploy, handler, tmp_path):
        def apply(price: str, low: int, high: int) -> None:
            document = {
                "flows": {
                    "subscription_update_confirm": {
                        "enabled": True,
                        "prices": {price: {}},
                        "quantity": {"min": low, "max": high},
                    }
                }
            }
            (tmp_path / "policy.json").write_text(json.dumps(document))
            redeploy(PORTAL_POLICY_FILE=str(tmp_path / "policy.json"))

        return apply

    @pytest.mark.parametrize("quantity", ["2", "20"], ids=["the minimum", "the maximum"])
    def test_a_quantity_at_a_bound_reaches_the_portal(self, handler, identity, stripe, shop, quantity):
        response = confirm_quantity(handler, identity, quantity)

        session = portal_session(response, stripe)
        [item] = session["flow"]["subscription_update_confirm"]["items"]
        assert item["quantity"] == int(quantity)

    @pytest.mark.parametrize("quantity", ["1", "21"], ids=["below the minimum", "above the maximum"])
    def test_a_quantity_one_past_a_bound_is_refused(self, handler, identity, stripe, shop, quantity):
        response = confirm_quantity(handler, identity, quantity)

        body = assert_refused(response, 400, "invalid_parameter", "quantity")
        assert body["detail"] == "quantity must be a whole number from 2 to 20"
        assert stripe.sessions() == []


def confirm_quantity(handler, identity: IdentityProvider, quantity: str) -> dict:
    """A fetch() of the plan-change confirmation asking for `quantity` seats."""
    response: dict = handler.request(
        path="/portal/subscription_update_confirm",
        token=identity.token("user-1"),
        form={"quantity": quantity},
        accept="application/json",
    )
    return response


def sized_token(identity: IdentityProvider, length: int) -> str:
    """A valid token of exactly `length` characters: a padding claim and a header field fill it up."""
    for header_pad in range(4):
        base = identity.token("user-1", headers={"x": "h" * header_pad}, padding="")
        estimate = (length - len(base)) * 3 // 4  # base64 makes four characters of three bytes
        for pad in range(max(estimate - 4, 0), estimate + 5):
            token = identity.token("user-1", headers={"x": "h" * header_pad}, padding="p" * pad)
            if len(token) == length:
                return token
    raise AssertionError(f"no token of {length} characters")


def test_a_token_of_exactly_the_maximum_length_reaches_the_portal(handler, identity, stripe):
    token = sized_token(identity, MAX_TOKEN)

    response = handler.request(token=token, accept="application/json")

    portal_session(response, stripe)


def test_a_token_one_character_longer_is_refused(handler, identity, stripe, aws):
    token = sized_token(identity, MAX_TOKEN + 1)

    response = handler.request(token=token, accept="application/json")

    assert assert_refused(response, 401, "unauthenticated")["detail"] == "the token is too long"
    assert stripe.requests() == []
    assert rows(aws) == []


def json_body_of_size(size: int) -> str:
    """`{"return_to": …}` padded with JSON whitespace to exactly `size` bytes."""
    document = json.dumps({"return_to": f"{APP}/sized"})
    return document[:-1] + " " * (size - len(document)) + "}"


def body_request(handler, identity, body: str, *, as_base64: bool = False):
    headers = {
        "host": "api.example.com",
        "authorization": f"Bearer {identity.token('user-1')}",
        "content-type": "application/json",
        "accept": "application/json",
    }
    event = http_api_event("POST", "/portal", headers=headers)
    event["body"] = base64.b64encode(body.encode()).decode() if as_base64 else body
    event["isBase64Encoded"] = as_base64
    return handler(event)


@pytest.mark.parametrize("as_base64", [False, True], ids=["text", "base64"])
def test_a_body_of_exactly_16_kib_reaches_the_portal(handler, identity, stripe, as_base64):
    response = body_request(handler, identity, json_body_of_size(MAX_BODY), as_base64=as_base64)

    assert portal_session(response, stripe)["return_url"] == f"{APP}/sized"


@pytest.mark.parametrize("as_base64", [False, True], ids=["text", "base64"])
def test_a_body_one_byte_larger_is_refused(handler, identity, stripe, aws, as_base64):
    response = body_request(handler, identity, json_body_of_size(MAX_BODY + 1), as_base64=as_base64)

    body = assert_refused(response, 400, "invalid_parameter", "body")
    assert body["detail"] == "the request body is too large"
    assert stripe.requests() == []
    assert rows(aws) == []


def test_as_many_form_fields_as_allowed_reach_the_portal(handler, identity, stripe):
    # Empty fields count towards the limit as parse_qsl counts them, and are dropped.
    form = urlencode({"return_to": f"{APP}/fields"}) + "&" * (MAX_FIELDS - 1)

    response = handler.request(
        token=identity.token("user-1"),
        raw_body=("application/x-www-form-urlencoded", form),
        accept="application/json",
    )

    assert portal_session(response, stripe)["return_url"] == f"{APP}/fields"


def test_one_form_field_more_is_refused(handler, identity, stripe):
    form = urlencode({"return_to": f"{APP}/fields"}) + "&" * MAX_FIELDS

    response = handler.request(
        token=identity.token("user-1"),
        raw_body=("application/x-www-form-urlencoded", form),
        accept="application/json",
    )

    assert (
        assert_refused(response, 400, "invalid_parameter", "body")["detail"] == "the body has too many fields"
    )
    assert stripe.requests() == []


class TestClaims:
    def test_a_subject_of_255_characters_is_a_user(self, handler, identity, stripe, aws):
        subject = "u" * 255

        response = handler.request(token=identity.token(subject), accept="application/json")

        portal_session(response, stripe)
        assert [row["app_user_id"]["S"] for row in rows(aws)] == [subject]

    def test_a_subject_of_256_characters_is_refused(self, handler, identity, stripe, aws):
        response = handler.request(token=identity.token("u" * 256), accept="application/json")

        body = assert_refused(response, 401, "unauthenticated")
        assert body["detail"] == "the token has no usable subject"
        assert rows(aws) == []

    @pytest.mark.parametrize(("length", "kept"), [(512, True), (513, False)])
    def test_an_email_up_to_512_characters_is_given_to_stripe(self, handler, identity, stripe, length, kept):
        email = "a" * (length - len("@example.com")) + "@example.com"

        response = handler.request(token=identity.token("user-1", email=email), accept="application/json")

        portal_session(response, stripe)
        [create] = stripe.requests_to("POST", "/v1/customers")
        assert create.params.get("email") == (email if kept else None)

    @pytest.mark.parametrize(
        ("claims", "kept"),
        [
            ({"email": "no-at-sign.example.com"}, set()),
            ({"email": "ann@example.com", "email_verified": False}, set()),
            ({"email": "ann@example.com", "email_verified": True}, {"email"}),
            ({"email": "ann@example.com"}, {"email"}),
            ({"name": "   "}, set()),
            ({"name": "Ann"}, {"name"}),
        ],
    )
    def test_only_usable_email_and_name_claims_go_to_stripe(self, handler, identity, stripe, claims, kept):
        response = handler.request(token=identity.token("user-1", **claims), accept="application/json")

        portal_session(response, stripe)
        [create] = stripe.requests_to("POST", "/v1/customers")
        assert set(create.params) - {"metadata"} == kept

    def test_a_long_name_is_cut_to_256_characters(self, handler, identity, stripe):
        response = handler.request(token=identity.token("user-1", name="n" * 300), accept="application/json")

        portal_session(response, stripe)
        [create] = stripe.requests_to("POST", "/v1/customers")
        assert create.params["name"] == "n" * 256

    @pytest.mark.parametrize(("offset", "accepted"), [(-25, True), (-40, False), (25, True), (40, False)])
    def test_the_clock_skew_leeway_is_30_seconds(self, handler, identity, stripe, offset, accepted):
        # A negative offset is an exp that just passed; a positive one an nbf still to come.
        now = int(time.time())
        claims = {"exp": now + offset} if offset < 0 else {"nbf": now + offset}

        response = handler.request(token=identity.token("user-1", **claims), accept="application/json")

        if accepted:
            portal_session(response, stripe)
        else:
            assert_refused(response, 401, "unauthenticated")
            assert stripe.requests() == []


def test_a_subscription_id_of_the_longest_shape_is_looked_up_and_one_longer_is_refused(
    handler, identity, stripe, aws
):
    link_customer(aws, "user-1", stripe.add_customer())

    def cancel(subscription: str):
        return handler.request(
            path="/portal/subscription_cancel",
            token=identity.token("user-1"),
            form={"subscription": subscription},
            accept="application/json",
        )

    longest = cancel("sub_" + "a" * 250)
    too_long = cancel("sub_" + "a" * 251)

    assert_refused(longest, 404, "subscription_not_found", "subscription")
    assert_refused(too_long, 400, "invalid_parameter", "subscription")
    assert stripe.sessions() == []


class TestWebhookEventSize:
    @pytest.fixture
    def webhook(self, env, aws):
        env(STRIPE_MODE="test", STRIPE_WEBHOOK_SECRET=SECRET)
        import webhook_handler

        webhook_handler.webhooks.cache_clear()
        webhook_handler.webhooks()
        return webhook_handler

    def payload_of_size(self, size: int) -> str:
        event = json.dumps(stripe_event("customer.created", customer("cus_A", "user-1")))
        return event[:-1] + " " * (size - len(event)) + "}"

    def test_an_event_of_exactly_512_kib_is_handled(self, webhook, aws):
        response = deliver(webhook, self.payload_of_size(MAX_EVENT))

        assert response["statusCode"] == 200
        assert json.loads(response["body"]) == {"received": True, "action": "linked"}
        assert [row["stripe_customer_id"]["S"] for row in rows(aws)] == ["cus_A"]

    def test_an_event_one_byte_larger_is_refused(self, webhook, aws):
        response = deliver(webhook, self.payload_of_size(MAX_EVENT + 1))

        assert response["statusCode"] == 400
        assert json.loads(response["body"])["code"] == "invalid_parameter"
        assert rows(aws) == []
