"""Deployed, the Stripe key comes from Secrets Manager (moto here): read once, cached, re-read when old."""

from __future__ import annotations

import pytest

from tests.conftest import API_KEY, problem

SECRET = "portal-links/stripe-key"


@pytest.fixture
def secret(aws):
    import boto3

    return boto3.client("secretsmanager", region_name="us-east-1")


@pytest.fixture
def deploy_with_secret(secret, redeploy):
    """Deploy with the key in Secrets Manager, named by STRIPE_SECRET_ARN instead of STRIPE_API_KEY."""
    arn = secret.create_secret(Name=SECRET, SecretString=API_KEY)["ARN"]

    def apply(**settings: str) -> None:
        redeploy(STRIPE_API_KEY=None, STRIPE_SECRET_ARN=arn, **settings)

    apply()
    return apply


def rotate(secret, key: str) -> None:
    secret.put_secret_value(SecretId=SECRET, SecretString=key)


def test_the_key_is_read_from_secrets_manager(deploy_with_secret, handler, identity, stripe):
    response = handler.request(token=identity.token("user-1"))

    assert response["statusCode"] == 303
    assert len(stripe.requests_to("POST", "/v1/billing_portal/sessions")) == 1


def test_the_key_is_cached_for_its_max_age(deploy_with_secret, secret, handler, identity, stripe):
    token = identity.token("user-1")
    handler.request(token=token)

    # Given a rotation to a key Stripe refuses, within the 5 minutes the first key is cached for
    rotate(secret, "sk_live_not_accepted_here")

    # Then the cached key still serves
    assert handler.request(token=token)["statusCode"] == 303


def test_a_rotated_key_is_read_again_once_the_cached_one_is_old(
    deploy_with_secret, secret, handler, identity, stripe
):
    deploy_with_secret(STRIPE_KEY_MAX_AGE_SECONDS="0")
    token = identity.token("user-1")
    assert handler.request(token=token)["statusCode"] == 303

    rotate(secret, "sk_live_not_accepted_here")

    response = handler.request(token=token, accept="application/json")
    assert response["statusCode"] == 502
    assert problem(response)["code"] == "stripe_rejected"


@pytest.mark.parametrize(
    "damage",
    [
        lambda secret: secret.delete_secret(SecretId=SECRET, ForceDeleteWithoutRecovery=True),
        lambda secret: rotate(secret, "pk_test_a_publishable_key"),
        lambda secret: rotate(secret, "   "),
    ],
)
def test_an_unreadable_or_wrong_secret_is_503_and_nothing_is_created(
    deploy_with_secret, secret, handler, identity, stripe, aws, damage
):
    damage(secret)

    response = handler.request(token=identity.token("user-1"), accept="application/json")

    assert response["statusCode"] == 503
    assert problem(response)["code"] == "stripe_unavailable"
    assert response["headers"]["Retry-After"]
    assert stripe.state.requests == []
