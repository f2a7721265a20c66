"""`make dev` keeps the mapping true: the emulator signs and delivers events over HTTP to /stripe/webhook."""

from __future__ import annotations

import re
import time
import urllib.request
from collections.abc import Callable, Iterator
from typing import Any
from urllib.parse import urlencode

import boto3
import pytest
import stripe as stripe_sdk

from local.dev_env import DEV_STRIPE_KEY, DEV_TABLE
from tests.dev_server import DevServer, running_dev_server
from tests.integration.test_dev_server import NoRedirect, post, send


@pytest.fixture(scope="module")
def server() -> Iterator[DevServer]:
    with running_dev_server() as dev_server:
        yield dev_server


@pytest.fixture(scope="module")
def table(server: DevServer) -> Any:
    url = re.search(r"DynamoDB +moto at (http://127\.0\.0\.1:\d+)", "\n".join(server.output))
    assert url, server.output
    return boto3.client(
        "dynamodb",
        region_name="us-east-1",
        endpoint_url=url.group(1),
        aws_access_key_id="local",
        aws_secret_access_key="local",
    )


def token_for(server: DevServer, user: str) -> str:
    with urllib.request.urlopen(f"{server.origin}/dev/token?user={user}", timeout=10) as response:
        return str(response.read().decode())


def linked_customer(table: Any, user: str) -> str | None:
    key = {"app_user_id": {"S": user}}
    item = table.get_item(TableName=DEV_TABLE, Key=key, ConsistentRead=True).get("Item") or {}
    customer = item.get("stripe_customer_id", {}).get("S")
    return str(customer) if customer else None


def eventually(check: Callable[[], bool], seconds: float = 10.0) -> None:
    """Webhooks are delivered asynchronously, as Stripe delivers them."""
    deadline = time.monotonic() + seconds
    while not check():
        assert time.monotonic() < deadline, "the webhook did not arrive"
        time.sleep(0.05)


def sign_in_cookie(server: DevServer, user: str) -> str:
    form = urlencode({"user": user, "next": "/"}).encode()
    request = urllib.request.Request(f"{server.origin}/dev/sign-in", data=form, method="POST")
    status, headers = send(request)
    assert status == 303
    return headers["Set-Cookie"].split(";")[0]


def dev_control(server: DevServer, cookie: str, name: str) -> str:
    request = urllib.request.Request(f"{server.origin}/dev/stripe/{name}", data=b"", method="POST")
    request.add_header("Cookie", cookie)
    status, headers = send(request)
    assert status == 303
    return headers["Location"]


def test_a_customer_deleted_through_stripes_api_is_unlinked_and_the_next_click_heals(server, table):
    # Given a user whose first click made and linked a customer
    token = token_for(server, "webhook-user")
    assert post(f"{server.origin}/portal", token)[0] == 303
    first = linked_customer(table, "webhook-user")
    assert first is not None

    # When the customer is deleted through Stripe's API (the emulator signs and sends customer.deleted)
    stripe_sdk.StripeClient(DEV_STRIPE_KEY, base_addresses={"api": server.stripe}).v1.customers.delete(first)

    # Then make dev's webhook unlinks it, and the next click makes and links a new one
    eventually(lambda: linked_customer(table, "webhook-user") is None)
    status, headers = post(f"{server.origin}/portal", token)
    assert status == 303
    assert headers["Location"].startswith(f"{server.stripe}/p/session/")
    second = linked_customer(table, "webhook-user")
    assert second not in (None, first)
    assert any("POST /stripe/webhook 200" in line for line in server.output)


def test_a_subscriber_from_checkout_gets_that_customer_not_a_second_one(server, table):
    # Given a new user who subscribes through (emulated) Checkout with client_reference_id
    cookie = sign_in_cookie(server, "checkout-user")
    assert dev_control(server, cookie, "checkout") == "/?dev=checkout-completed"
    eventually(lambda: linked_customer(table, "checkout-user") is not None)
    customer = linked_customer(table, "checkout-user")

    # When they open the cancel flow
    status, headers = post(f"{server.origin}/portal/subscription_cancel", token_for(server, "checkout-user"))

    # Then the portal opens for the Checkout customer's subscription
    assert status == 303
    with urllib.request.build_opener(NoRedirect).open(headers["Location"], timeout=10) as page:
        html = page.read().decode()
    assert customer in html
    assert "subscription_cancel" in html


def test_replaying_every_event_changes_nothing(server, table):
    cookie = sign_in_cookie(server, "replay-user")
    dev_control(server, cookie, "checkout")
    eventually(lambda: linked_customer(table, "replay-user") is not None)
    before = table.scan(TableName=DEV_TABLE)["Items"]

    assert dev_control(server, cookie, "replay") == "/?dev=events-replayed"
    time.sleep(1.0)  # let the replayed deliveries land

    after = table.scan(TableName=DEV_TABLE)["Items"]
    key = lambda item: item["app_user_id"]["S"]  # noqa: E731
    assert sorted(after, key=key) == sorted(before, key=key)
