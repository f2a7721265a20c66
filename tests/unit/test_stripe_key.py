"""The deployed key path (Secrets Manager: read, cached, rotated) and upstream faults that end as a 503."""

from __future__ import annotations

import boto3
import pytest

from tests.conftest import portal_session, problem, rows

SECRET_NAME = "portal-links/stripe-key"


@pytest.fixture
def secret(aws):
    client = boto3.client("secretsmanager", region_name="us-east-1")
    arn = client.create_secret(Name=SECRET_NAME, SecretString="sk_test_first\n")["ARN"]
    return client, arn


def keys_used(stripe) -> list[str | None]:
    return [request.api_key for request in stripe.requests()]


class TestKeyFromSecretsManager:
    def test_the_key_comes_from_the_secret(self, redeploy, handler, identity, stripe, secret):
        # Given a deployment that names the secret and has no key in its environment
        _, arn = secret
        redeploy(STRIPE_API_KEY=None, STRIPE_SECRET_ARN=arn)

        # When a user clicks
        response = handler.request(token=identity.token("user-1"))

        # Then Stripe was called with the secret's value (trimmed), and the user reached the portal
        assert response["statusCode"] == 303
        portal_session(response, stripe)
        assert set(keys_used(stripe)) == {"sk_test_first"}

    def test_the_key_is_cached_between_requests(self, redeploy, handler, identity, stripe, secret):
        client, arn = secret
        redeploy(STRIPE_API_KEY=None, STRIPE_SECRET_ARN=arn)
        portal_session(handler.request(token=identity.token("user-1")), stripe)

        client.put_secret_value(SecretId=arn, SecretString="sk_test_second")
        portal_session(handler.request(token=identity.token("user-1")), stripe)

        # within the cache's max age the container keeps the key it read
        assert set(keys_used(stripe)) == {"sk_test_first"}

    def test_a_rotated_key_is_used_once_the_cached_one_is_old(
        self, redeploy, handler, identity, stripe, secret
    ):
        # Given a cache that expires at once (STRIPE_KEY_MAX_AGE_SECONDS=0) and a first request on the old key
        client, arn = secret
        redeploy(STRIPE_API_KEY=None, STRIPE_SECRET_ARN=arn, STRIPE_KEY_MAX_AGE_SECONDS="0")
        portal_session(handler.request(token=identity.token("user-1")), stripe)

        # When the key is rotated in Secrets Manager
        client.put_secret_value(SecretId=arn, SecretString="sk_test_rotated")
        response = handler.request(token=identity.token("user-1"))

        # Then every call of the next request brings the new key (the client is kept; the key is per call)
        assert response["statusCode"] == 303
        portal_session(response, stripe)
        [first_session, second_session] = stripe.requests_to("POST", "/v1/billing_portal/sessions")
        assert (first_session.api_key, second_session.api_key) == ("sk_test_first", "sk_test_rotated")

    @pytest.mark.parametrize("value", ["whsec_not_an_api_key", "pk_test_publishable", ""])
    def test_a_secret_without_a_secret_key_is_503_and_nothing_is_sent(
        self, redeploy, handler, identity, stripe, aws, secret, value
    ):
        client, arn = secret
        client.put_secret_value(SecretId=arn, SecretString=value or " ")
        redeploy(STRIPE_API_KEY=None, STRIPE_SECRET_ARN=arn)

        response = handler.request(token=identity.token("user-1"), accept="application/json")

        assert response["statusCode"] == 503
        assert problem(response)["code"] == "stripe_unavailable"
        assert value not in response["body"] or not value
        assert stripe.requests() == []
        assert rows(aws) == []

    def test_a_missing_secret_is_503_not_500(self, redeploy, handler, identity, stripe, aws):
        redeploy(
            STRIPE_API_KEY=None,
            STRIPE_SECRET_ARN="arn:aws:secretsmanager:us-east-1:123456789012:secret:nowhere-AbCdEf",
        )

        response = handler.request(token=identity.token("user-1"), accept="application/json")

        assert response["statusCode"] == 503
        assert problem(response)["code"] == "stripe_unavailable"
        assert response["headers"]["Retry-After"] == "5"
        assert stripe.requests() == []


class TestTransientFaults:
    @pytest.mark.parametrize(
        ("method", "path"), [("POST", "/v1/customers"), ("POST", "/v1/billing_portal/sessions")]
    )
    def test_a_200_whose_body_is_cut_short_is_503_with_retry_after(
        self, handler, identity, stripe, aws, method, path
    ):
        # Given Stripe answering 200 with a truncated JSON body, every time
        stripe.inject_fault(method, path, 0, truncate_body=True, times=10)

        # When a first-time user clicks
        response = handler.request(token=identity.token("user-1"), accept="application/json")

        # Then it is a transient upstream fault, not a Stripe refusal
        assert response["statusCode"] == 503
        assert response["headers"]["Retry-After"] == "5"
        assert problem(response)["code"] == "stripe_unavailable"
        assert "url" not in problem(response)

    def test_after_a_cut_short_customer_answer_the_next_click_finds_the_same_customer(
        self, handler, identity, stripe, aws
    ):
        # Given a first click whose customer was made at Stripe but whose answer arrived cut short
        stripe.inject_fault("POST", "/v1/customers", 0, truncate_body=True, times=1)
        first = handler.request(token=identity.token("user-1"), accept="application/json")
        assert first["statusCode"] == 503
        assert problem(first)["code"] == "stripe_unavailable"
        [reservation] = rows(aws)
        assert "stripe_customer_id" not in reservation

        # When the user clicks again
        second = handler.request(token=identity.token("user-1"), accept="application/json")

        # Then the reservation's idempotency key hands back that one customer, now linked
        assert second["statusCode"] == 200
        [customer] = stripe.customers()
        assert portal_session(second, stripe)["customer"] == customer["id"]
        assert [row["stripe_customer_id"]["S"] for row in rows(aws)] == [customer["id"]]
