"""POST|GET /portal through the Lambda handler, with moto and the Stripe emulator behind it."""

from __future__ import annotations

import json
import re
import time
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

from local.server import Reply, serve_in_background
from tests.conftest import APP, TABLE, link_customer, portal_session, problem, rows

SECURITY = {"Cache-Control": "no-store", "Referrer-Policy": "no-referrer"}


def assert_security_headers(response):
    for name, value in SECURITY.items():
        assert response["headers"][name] == value


def test_signed_in_form_post_is_sent_to_a_new_portal_session(handler, identity, stripe, aws):
    # Given a user who has never opened the portal
    token = identity.token("user-1", email="ann@example.com", name="Ann Lee")
    table_calls = record_dynamodb_calls(handler)
    clicked = datetime.now(UTC).replace(microsecond=0)

    # When they press "Manage subscription"
    response = handler.request(token=token)

    # Then they are sent (303) to the session Stripe created for their new customer
    assert response["statusCode"] == 303
    assert_security_headers(response)
    [session_call] = stripe.requests_to("POST", "/v1/billing_portal/sessions")
    [session] = stripe.sessions()
    assert response["headers"]["Location"] == session["url"]
    [customer_call] = stripe.requests_to("POST", "/v1/customers")
    creation_key = customer_call.params["metadata"]["portal_links_creation_key"]
    assert re.fullmatch("[0-9a-f]{32}", creation_key)  # 128 random bits
    assert customer_call.params == {
        "email": "ann@example.com",
        "name": "Ann Lee",
        "metadata": {"app_user_id": "user-1", "portal_links_creation_key": creation_key},
    }
    assert customer_call.idempotency_key == f"portal-links-customer-{creation_key}"
    assert customer_call.stripe_version == "2026-10-28.endive"
    [customer] = stripe.customers()
    customer_id = customer["id"]
    assert session_call.params == {"customer": customer_id, "return_url": f"{APP}/account"}
    [row] = rows(aws)
    assert row["app_user_id"] == {"S": "user-1"}
    assert row["stripe_customer_id"] == {"S": customer_id}
    assert row["livemode"] == {"BOOL": False}
    # when the link was made, in UTC, to the second
    made = datetime.fromisoformat(row["created_at"]["S"])
    assert made.utcoffset() == timedelta(0)
    assert clicked <= made <= datetime.now(UTC)
    # and no more table round trips than a first click needs: read, reserve, complete
    assert [operation for operation, _ in table_calls] == ["GetItem", "PutItem", "PutItem"]
    # the read is strongly consistent: a link another container wrote a moment ago is seen
    assert table_calls[0][1]["ConsistentRead"] is True


def record_dynamodb_calls(handler) -> list[tuple[str, dict[str, Any]]]:
    """The DynamoDB operations the function calls from now on, in order, with their parameters, as they
    leave its client."""
    calls: list[tuple[str, dict[str, Any]]] = []
    client = handler.module.portal()[0]._customers._client
    client.meta.events.register(
        "before-parameter-build.dynamodb",
        lambda params, model, **_: calls.append((model.name, dict(params))),
        unique_id="record-dynamodb-calls",
    )
    return calls


def test_fetch_caller_asking_for_json_gets_the_url(handler, identity, stripe):
    response = handler.request(token=identity.token("user-1"), accept="application/json")

    assert response["statusCode"] == 200
    assert response["headers"]["Content-Type"] == "application/json"
    assert_security_headers(response)
    [session] = stripe.sessions()
    assert json.loads(response["body"]) == {"url": session["url"]}


CHROME = "text/html,application/xhtml+xml,application/xml;q=0.9,image/avif,image/webp,*/*;q=0.8"
FIREFOX = "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"


@pytest.mark.parametrize(
    ("accept", "fetch_caller"),
    [
        ("application/problem+json", True),
        ("application/json;q=0.9, */*;q=0.1", True),
        ("Application/JSON", True),
        (CHROME, False),
        (FIREFOX, False),
        ("*/*", False),
    ],
)
def test_the_accept_header_chooses_json_or_a_303(handler, identity, stripe, accept, fetch_caller):
    # A fetch() caller reads JSON; a browser navigating follows a 303: for the link and for a refusal alike
    accepted = handler.request(token=identity.token("user-1"), accept=accept)
    refused = handler.request(path="/portal/nonesuch", token=identity.token("user-1"), accept=accept)

    portal_session(accepted, stripe)
    if fetch_caller:
        assert accepted["statusCode"] == 200
        assert refused["statusCode"] == 404
        assert problem(refused)["code"] == "unknown_flow"
    else:
        assert accepted["statusCode"] == 303
        assert refused["statusCode"] == 303
        assert refused["headers"]["Location"] == f"{APP}/account?portal_error=unknown_flow"


def test_get_link_works_like_the_button(handler, identity, stripe):
    response = handler.request("GET", token=identity.token("user-1"))

    assert response["statusCode"] == 303
    portal_session(response, stripe)
    assert len(stripe.sessions()) == 1


def test_returning_user_reuses_their_customer(handler, identity, stripe, aws):
    token = identity.token("user-1")
    portal_session(handler.request(token=token), stripe)

    portal_session(handler.request(token=token), stripe)

    assert len(stripe.requests_to("POST", "/v1/customers")) == 1
    sessions = stripe.sessions()
    assert len(sessions) == 2
    assert sessions[0]["customer"] == sessions[1]["customer"]
    assert len(rows(aws)) == 1


def test_token_without_email_creates_customer_with_only_the_user_id(handler, identity, stripe):
    response = handler.request(token=identity.token("user-2", email="x@example.com", email_verified=False))

    portal_session(response, stripe)
    [call] = stripe.requests_to("POST", "/v1/customers")
    assert set(call.params) == {"metadata"}
    assert call.params["metadata"]["app_user_id"] == "user-2"


def test_allowed_return_to_becomes_the_portal_return_url(handler, identity, stripe):
    response = handler.request(token=identity.token("user-1"), form={"return_to": f"{APP}/billing?tab=plan"})

    assert portal_session(response, stripe)["return_url"] == f"{APP}/billing?tab=plan"
    [call] = stripe.requests_to("POST", "/v1/billing_portal/sessions")
    assert call.params["return_url"] == f"{APP}/billing?tab=plan"


def test_return_to_in_the_query_string_is_honoured(handler, identity, stripe):
    response = handler.request(
        "GET", token=identity.token("user-1"), query="return_to=http%3A%2F%2Flocalhost%3A5173%2Fx"
    )

    assert portal_session(response, stripe)["return_url"] == "http://localhost:5173/x"


def test_refuse_policy_answers_no_billing_account_and_creates_nothing(
    redeploy, handler, identity, stripe, aws
):
    redeploy(MISSING_CUSTOMER="refuse")

    response = handler.request(token=identity.token("user-1"), accept="application/json")

    assert response["statusCode"] == 404
    assert problem(response)["code"] == "no_billing_account"
    assert stripe.requests() == []
    assert rows(aws) == []


def test_refuse_policy_still_serves_users_who_have_a_customer(redeploy, handler, identity, stripe, aws):
    customer = stripe.add_customer()
    link_customer(aws, "user-1", customer)
    redeploy(MISSING_CUSTOMER="refuse")

    response = handler.request(token=identity.token("user-1"))

    assert response["statusCode"] == 303
    assert portal_session(response, stripe)["customer"] == customer


@pytest.mark.parametrize(
    ("form", "param"),
    [
        ({"customer": "cus_someone_else"}, "customer"),
        ({"configuration": "bpc_other"}, "configuration"),
        ({"coupon": "FREE"}, "coupon"),
        ({"flow_data[type]": "subscription_cancel"}, "flow_data[type]"),
        ({"on_behalf_of": "acct_1"}, "on_behalf_of"),
    ],
)
def test_parameters_only_the_server_decides_are_refused_by_name(handler, identity, stripe, aws, form, param):
    response = handler.request(token=identity.token("user-1"), form=form, accept="application/json")

    assert response["statusCode"] == 400
    body = problem(response)
    assert body["code"] == "unknown_parameter"
    assert body["param"] == param
    assert stripe.requests() == []
    assert rows(aws) == []


def test_parameter_given_twice_is_refused(handler, identity, stripe, aws):
    response = handler.request(
        token=identity.token("user-1"),
        query=f"return_to={APP}/a",
        form={"return_to": f"{APP}/b"},
        accept="application/json",
    )

    assert response["statusCode"] == 400
    assert problem(response)["code"] == "invalid_parameter"
    assert problem(response)["param"] == "return_to"
    assert stripe.requests() == []


def test_json_body_parameters_are_read(handler, identity, stripe):
    response = handler.request(token=identity.token("user-1"), json_body={"return_to": f"{APP}/from-json"})

    assert response["statusCode"] == 303
    assert portal_session(response, stripe)["return_url"] == f"{APP}/from-json"


@pytest.mark.parametrize(
    ("body", "content_type"),
    [("{not json", "application/json"), ("[1, 2]", "application/json"), ("a=1", "text/plain")],
)
def test_unreadable_bodies_are_refused(handler, identity, stripe, aws, body, content_type):
    response = handler.request(
        token=identity.token("user-1"), raw_body=(content_type, body), accept="application/json"
    )

    assert response["statusCode"] == 400
    assert problem(response)["code"] == "invalid_parameter"
    assert problem(response)["param"] == "body"
    assert stripe.requests() == []
    assert rows(aws) == []


def test_the_portal_url_and_the_token_are_never_logged(handler, identity, stripe, capsys, caplog):
    token = identity.token("user-1")
    caplog.set_level("DEBUG")

    handler.request(token=token)
    handler.request(token=token, accept="application/json")

    [first, second] = [s["url"] for s in stripe.sessions()]
    records = [str(record.__dict__) for record in caplog.records]
    assert any("portal session created" in record for record in records)
    printed = capsys.readouterr()
    for secret in (first, second, token, "sk_test_"):
        assert not any(secret in record for record in records)
        assert secret not in printed.out + printed.err


class TestCookieSessions:
    def test_cookie_post_from_an_allowed_origin_is_accepted(self, handler, identity, stripe):
        response = handler.request(cookie=identity.token("user-1"), headers={"origin": APP})

        assert response["statusCode"] == 303
        portal_session(response, stripe)
        assert len(stripe.sessions()) == 1

    @pytest.mark.parametrize("site", ["same-site", "same-origin"])
    def test_cookie_post_marked_same_site_without_origin_is_accepted(self, handler, identity, stripe, site):
        response = handler.request(cookie=identity.token("user-1"), headers={"sec-fetch-site": site})

        assert response["statusCode"] == 303
        portal_session(response, stripe)

    @pytest.mark.parametrize(
        "headers",
        [
            {},
            {"origin": "https://evil.example"},
            {"origin": "null"},
            {"origin": "https://app.example.com.evil.example"},
            {"sec-fetch-site": "cross-site"},
            {"sec-fetch-site": "none"},
            {"origin": "https://evil.example", "sec-fetch-site": "same-site"},
        ],
    )
    def test_cross_site_cookie_post_is_refused_with_403(self, handler, identity, stripe, aws, headers):
        response = handler.request(
            cookie=identity.token("user-1"), headers={**headers, "accept": "application/json"}
        )

        assert response["statusCode"] == 403
        assert problem(response)["code"] == "csrf_rejected"
        assert problem(response)["detail"] == "this request did not come from an allowed origin"
        assert stripe.requests() == []
        assert rows(aws) == []

    def test_cross_site_navigation_goes_back_to_the_app_with_the_code(self, handler, identity, stripe):
        response = handler.request(
            cookie=identity.token("user-1"), headers={"origin": "https://evil.example"}
        )

        assert response["statusCode"] == 303
        assert response["headers"]["Location"] == f"{APP}/account?portal_error=csrf_rejected"
        assert stripe.requests() == []

    def test_bearer_requests_need_no_origin(self, handler, identity, stripe):
        response = handler.request(token=identity.token("user-1"), headers={"origin": "https://evil.example"})

        assert response["statusCode"] == 303
        portal_session(response, stripe)

    def test_cookie_get_link_is_accepted(self, handler, identity, stripe):
        response = handler.request("GET", cookie=identity.token("user-1"))

        assert response["statusCode"] == 303
        portal_session(response, stripe)


class TestBrowserNavigationErrors:
    def test_signed_out_click_goes_to_sign_in_and_back(self, handler, stripe):
        response = handler.request(headers={"referer": f"{APP}/settings/billing", "origin": APP})

        assert response["statusCode"] == 303
        location = urlsplit(response["headers"]["Location"])
        assert f"{location.scheme}://{location.netloc}{location.path}" == f"{APP}/sign-in"
        assert parse_qs(location.query) == {"next": [f"{APP}/settings/billing"]}
        assert_security_headers(response)
        assert stripe.requests() == []

    def test_sign_in_next_falls_back_to_return_to(self, handler):
        response = handler.request(form={"return_to": f"{APP}/billing"}, headers={"origin": APP})

        location = urlsplit(response["headers"]["Location"])
        assert parse_qs(location.query) == {"next": [f"{APP}/billing"]}

    def test_sign_in_next_ignores_a_foreign_referer(self, handler):
        response = handler.request(headers={"referer": "https://evil.example/page", "origin": APP})

        location = urlsplit(response["headers"]["Location"])
        assert parse_qs(location.query) == {"next": [f"{APP}/account"]}

    def test_errors_go_back_to_return_to_with_the_code(self, handler, identity):
        response = handler.request(
            token=identity.token("user-1"), form={"return_to": f"{APP}/billing?x=1", "coupon": "FREE"}
        )

        assert response["statusCode"] == 303
        assert response["headers"]["Location"] == f"{APP}/billing?x=1&portal_error=unknown_parameter"

    def test_a_bad_return_to_sends_errors_to_the_default_page(self, handler, identity):
        response = handler.request(
            token=identity.token("user-1"), form={"return_to": "https://evil.example/"}
        )

        assert response["statusCode"] == 303
        assert response["headers"]["Location"] == f"{APP}/account?portal_error=invalid_parameter"


class TestJsonErrors:
    def test_missing_token_is_401_problem_json(self, handler, stripe, aws, caplog):
        response = handler.request(accept="application/json")

        assert response["statusCode"] == 401
        assert response["headers"]["WWW-Authenticate"] == 'Bearer realm="portal"'
        assert_security_headers(response)
        body = problem(response)
        assert body == {
            "type": "urn:portal-links:problem:unauthenticated",
            "title": "Sign-in required",
            "status": 401,
            "code": "unauthenticated",
            "correlation_id": body["correlation_id"],
            "detail": "sign in to continue",
        }
        assert body["correlation_id"]
        [logged] = [record for record in caplog.records if record.getMessage() == "request not authenticated"]
        assert (logged.levelname, logged.code, logged.reason) == (
            "INFO",
            "unauthenticated",
            "sign in to continue",
        )
        assert stripe.requests() == []
        assert rows(aws) == []

    @pytest.mark.parametrize(
        "authorization", ["Basic dXNlcjpwYXNz", "Bearer", "Bearer    ", "Token abc.def.ghi"]
    )
    def test_an_authorization_header_that_is_not_bearer_with_a_token_is_401(self, handler, authorization):
        response = handler.request(headers={"authorization": authorization}, accept="application/json")

        assert response["statusCode"] == 401
        body = problem(response)
        assert body["code"] == "unauthenticated"
        assert body["detail"] == "the Authorization header must be 'Bearer <token>'"

    @pytest.mark.parametrize("scheme", ["bearer ", "BEARER ", "Bearer  "])
    def test_the_bearer_scheme_is_case_insensitive_and_may_be_followed_by_spaces(
        self, handler, identity, stripe, scheme
    ):
        # RFC 9110 11.4: the scheme, then one or more spaces, then the token
        response = handler.request(
            headers={"authorization": scheme + identity.token("user-1")}, accept="application/json"
        )

        portal_session(response, stripe)

    def test_unknown_route_is_404_problem(self, handler, identity):
        response = handler.request(path="/elsewhere", token=identity.token("u"), accept="application/json")

        assert response["statusCode"] == 404
        body = problem(response)
        assert body["code"] == "not_found"
        assert body["detail"] == "there is no such route; see the README for the portal endpoints"
        assert body["correlation_id"]

    def test_a_browser_on_an_unknown_route_goes_back_to_the_app(self, handler):
        response = handler.request("GET", path="/elsewhere", query=f"return_to={APP}/billing")

        assert response["statusCode"] == 303
        assert response["headers"]["Location"] == f"{APP}/billing?portal_error=not_found"


class TestStripeFailures:
    def test_stripe_5xx_is_retried_then_answered_503_with_retry_after(self, handler, identity, stripe, aws):
        stripe.inject_fault("POST", "/v1/customers", 500, times=3)

        response = handler.request(token=identity.token("user-1"), accept="application/json")

        assert response["statusCode"] == 503
        assert response["headers"]["Retry-After"] == "5"
        body = problem(response)
        assert body["code"] == "stripe_unavailable"
        assert "Injected" not in response["body"]
        assert len(stripe.requests_to("POST", "/v1/customers")) == 3
        assert all("stripe_customer_id" not in row for row in rows(aws))  # a reservation at most

    def test_a_transient_5xx_is_absorbed_by_the_retry(self, handler, identity, stripe):
        stripe.inject_fault("POST", "/v1/billing_portal/sessions", 503, times=1)

        response = handler.request(token=identity.token("user-1"))

        assert response["statusCode"] == 303
        portal_session(response, stripe)
        assert len(stripe.requests_to("POST", "/v1/billing_portal/sessions")) == 2

    @pytest.mark.parametrize(("should_retry", "attempts"), [(True, 3), (None, 1)])
    def test_rate_limit_becomes_503(self, handler, identity, stripe, should_retry, attempts):
        stripe.inject_fault(
            "POST", "/v1/customers", 429, times=3, error_type="rate_limit_error", should_retry=should_retry
        )

        response = handler.request(token=identity.token("user-1"), accept="application/json")

        assert response["statusCode"] == 503
        assert problem(response)["code"] == "stripe_unavailable"
        # retried as often as Stripe allows (Stripe-Should-Retry), then given up
        assert len(stripe.requests_to("POST", "/v1/customers")) == attempts

    def test_a_slow_stripe_times_out_and_becomes_503(self, redeploy, handler, identity, stripe):
        redeploy(STRIPE_TIMEOUT_SECONDS="1")
        stripe.inject_fault("POST", "/v1/billing_portal/sessions", 0, delay=1.5, times=3)

        response = handler.request(token=identity.token("user-1"), accept="application/json")

        assert response["statusCode"] == 503
        assert problem(response)["code"] == "stripe_unavailable"
        assert response["headers"]["Retry-After"] == "5"

    def test_stripe_refusal_is_502_without_stripes_message(
        self, redeploy, handler, identity, stripe, aws, tmp_path
    ):
        # Given a policy naming a portal configuration that does not exist in this Stripe account
        customer = stripe.add_customer()
        link_customer(aws, "user-1", customer)
        policy = tmp_path / "policy.json"
        policy.write_text('{"homepage": {"configuration": "bpc_missing"}}')
        redeploy(PORTAL_POLICY_FILE=str(policy))

        response = handler.request(token=identity.token("user-1"), accept="application/json")

        assert response["statusCode"] == 502
        body = problem(response)
        assert body["code"] == "stripe_rejected"
        assert "bpc_missing" not in response["body"]
        assert customer not in response["body"]

    def test_bad_stripe_key_is_not_leaked(self, redeploy, handler, identity, stripe):
        redeploy(STRIPE_API_KEY="sk_live_wrong")

        response = handler.request(token=identity.token("user-1"), accept="application/json")

        assert response["statusCode"] == 502
        assert problem(response)["code"] == "stripe_rejected"
        assert "sk_live" not in response["body"]


class TestStoreFailures:
    def test_dynamodb_failure_is_503_and_nothing_is_created(self, redeploy, handler, identity, stripe):
        redeploy(CUSTOMERS_TABLE="no-such-table")

        response = handler.request(token=identity.token("user-1"), accept="application/json")

        assert response["statusCode"] == 503
        assert problem(response)["code"] == "store_unavailable"
        assert response["headers"]["Retry-After"] == "5"
        assert stripe.requests() == []

    def test_a_table_that_fails_three_reads_is_503_and_nothing_is_created(
        self, redeploy, handler, identity, stripe
    ):
        # Given a DynamoDB that fails twice, then answers after 2.5 s (past the 2 s read timeout), and would
        # answer at once from then on
        attempts: list[str | None] = []

        def three_failures(method: str, path: str, headers: dict[str, str], body: bytes) -> Reply:
            attempts.append(headers.get("x-amz-target"))
            json_10 = [("Content-Type", "application/x-amz-json-1.0")]
            if len(attempts) <= 2:
                failure = {
                    "__type": "com.amazonaws.dynamodb.v20120810#InternalServerError",
                    "message": "retry",
                }
                return Reply(500, json.dumps(failure).encode(), json_10)
            if len(attempts) == 3:
                time.sleep(2.5)
            return Reply(200, b"{}", json_10)

        table = serve_in_background(three_failures, "dynamodb")
        try:
            redeploy(AWS_ENDPOINT_URL_DYNAMODB=f"http://127.0.0.1:{table.server_address[1]}")

            # When a first-time user clicks
            response = handler.request(token=identity.token("user-1"), accept="application/json")
        finally:
            table.stop()

        # Then they hear 503 after the read and its two retries: no fourth read, no customer made
        assert response["statusCode"] == 503
        assert problem(response)["code"] == "store_unavailable"
        assert attempts == ["DynamoDB_20120810.GetItem"] * 3
        assert stripe.requests() == []

    def test_a_table_that_cannot_be_reached_is_503_within_seconds(
        self, redeploy, handler, identity, stripe, silent_endpoint
    ):
        # Given a DynamoDB endpoint whose connections are never accepted
        redeploy(AWS_ENDPOINT_URL_DYNAMODB=silent_endpoint)

        # When a first-time user clicks
        started = time.monotonic()
        response = handler.request(token=identity.token("user-1"), accept="application/json")

        # Then they hear 503 after three connection attempts of a second each and their back-off (at most
        # 1 + 2 s), long before API Gateway's 30 s
        assert response["statusCode"] == 503
        assert problem(response)["code"] == "store_unavailable"
        assert 3.0 <= time.monotonic() - started < 8.0
        assert stripe.requests() == []

    def test_unexpected_failure_is_500_with_correlation_id_and_no_detail(
        self, handler, identity, aws, caplog
    ):
        aws.put_item(TableName=TABLE, Item={"app_user_id": {"S": "user-1"}})  # a corrupted row

        response = handler.request(token=identity.token("user-1"), accept="application/json")

        assert response["statusCode"] == 500
        body = problem(response)
        assert body == {
            "type": "urn:portal-links:problem:internal_error",
            "title": "Internal error",
            "status": 500,
            "code": "internal_error",
            "correlation_id": body["correlation_id"],
        }
        assert body["correlation_id"]
        [logged] = [record for record in caplog.records if record.getMessage() == "unexpected error"]
        assert logged.levelname == "ERROR"
        assert logged.exc_info is not None
        assert isinstance(logged.exc_info[1], KeyError)
        assert "stripe_customer_id" not in response["body"]
        assert "Traceback" not in response["body"]
