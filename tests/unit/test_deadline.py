"""One deadline per request: however slow Stripe is, the user gets a 503 in time, never a gateway timeout."""

from __future__ import annotations

import time

from tests.conftest import link_customer, problem, rows

DEADLINE = 5.0
SLACK = 2.0  # the last retry's back-off sleep and the answer itself


def test_a_stripe_that_never_answers_ends_in_503_within_the_deadline(
    redeploy, handler, identity, stripe, aws
):
    # Given a request deadline of 5 s and a Stripe whose session endpoint hangs for 10 s a call
    redeploy(REQUEST_DEADLINE_SECONDS=str(DEADLINE))
    stripe.inject_fault("POST", "/v1/billing_portal/sessions", 0, delay=10, times=10)

    # When a first-time user clicks
    started = time.monotonic()
    response = handler.request(token=identity.token("slow-user"), accept="application/json")
    elapsed = time.monotonic() - started

    # Then the answer is a 503 with Retry-After, well before API Gateway's 30 s
    assert response["statusCode"] == 503
    assert response["headers"]["Retry-After"] == "5"
    assert problem(response)["code"] == "stripe_unavailable"
    assert elapsed < DEADLINE + SLACK
    # and nothing is half-written: the customer made on the way is linked, so the retry reuses it
    [customer_id] = [customer["id"] for customer in stripe.customers()]
    [row] = rows(aws)
    assert row["stripe_customer_id"]["S"] == customer_id


def test_several_slow_calls_share_one_deadline(redeploy, handler, identity, stripe, aws):
    # Given a subscriber, and a Stripe where listing subscriptions and creating the session are both slow
    redeploy(REQUEST_DEADLINE_SECONDS=str(DEADLINE), STRIPE_TIMEOUT_SECONDS="3")
    customer = stripe.add_customer()
    stripe.add_subscription(customer, [stripe.add_price(stripe.add_product("Pro"), 1000)])
    link_customer(aws, "user-1", customer)
    stripe.inject_fault("GET", "/v1/subscriptions", 0, delay=2.5, times=1)
    stripe.inject_fault("POST", "/v1/billing_portal/sessions", 0, delay=10, times=10)

    # When the user opens the cancel flow
    started = time.monotonic()
    response = handler.request(
        path="/portal/subscription_cancel", token=identity.token("user-1"), accept="application/json"
    )
    elapsed = time.monotonic() - started

    # Then the session call only gets what the list left over, and the user hears 503 in time
    assert response["statusCode"] == 503
    assert problem(response)["code"] == "stripe_unavailable"
    assert elapsed < DEADLINE + SLACK
    assert stripe.sessions() == []


def test_a_lambda_with_little_time_left_uses_that_instead(handler, identity, stripe, aws, monkeypatch):
    # Given an invocation with 4 s left on the function's clock (its timeout nearly reached)
    from local.apigw import LocalContext

    monkeypatch.setattr(LocalContext, "get_remaining_time_in_millis", lambda self: 4000)
    stripe.inject_fault("POST", "/v1/customers", 0, delay=10, times=10)

    started = time.monotonic()
    response = handler.request(token=identity.token("late-user"), accept="application/json")

    # Then it answers 503 before the runtime would kill it, keeping a margin for the answer
    assert response["statusCode"] == 503
    assert problem(response)["code"] == "stripe_unavailable"
    assert time.monotonic() - started < 4.0
    # and only the reservation is stored: the next click makes (or finds) the customer under its key
    [row] = rows(aws)
    assert "creation_key" in row
    assert "stripe_customer_id" not in row
