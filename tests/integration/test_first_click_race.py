"""Concurrent first clicks of one user end with exactly one Stripe customer and one row."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

from local.apigw import http_api_event
from portal_links.composition import compose_portal
from tests.conftest import TABLE, link_customer, portal_session

CONTAINERS = 60


def container():
    """One Lambda container's pipeline, with its own clients; a click returns the portal URL it answers."""
    portal = compose_portal()

    def click(token: str) -> str:
        event = http_api_event("POST", "/portal", headers={"authorization": f"Bearer {token}"})
        response = portal.http.answer(event, None, None, portal.service.create_link, "")
        assert response["statusCode"] == 303, response["headers"]
        return str(response["headers"]["Location"])

    return click


def test_sixty_concurrent_first_clicks_create_one_customer(dynamodb, identity, stripe):
    # Given 60 Lambda containers, each with its own clients, and a Stripe that takes a moment per customer
    containers = [container() for _ in range(CONTAINERS)]
    stripe.set_latency("POST", "/v1/customers", 0.3)
    token = identity.token("racer", email="racer@example.com")
    start = threading.Barrier(CONTAINERS)

    def first_click(click):
        start.wait()
        return click(token)

    # When the same user's first click reaches all of them at once
    with ThreadPoolExecutor(max_workers=CONTAINERS) as pool:
        urls = list(pool.map(first_click, containers))

    # Then every click got a portal session, all for the one customer that exists
    assert len(urls) == CONTAINERS
    assert set(urls) == {session["url"] for session in stripe.sessions()}
    [customer] = stripe.customers()
    customer_id = customer["id"]
    assert {s["customer"] for s in stripe.sessions()} == {customer_id}
    items = dynamodb.scan(TableName=TABLE)["Items"]
    assert [(i["app_user_id"]["S"], i["stripe_customer_id"]["S"]) for i in items] == [("racer", customer_id)]
    # and the race was real: creates overlapped in flight (409 for the same idempotency key, then retried)
    creates = stripe.requests_to("POST", "/v1/customers")
    assert len(creates) >= 2
    assert any(create.status == 409 for create in creates)


def test_a_row_written_meanwhile_by_another_container_wins(dynamodb, identity, stripe):
    # Given a container creating the customer while another container's row lands first
    click = container()
    winner = stripe.add_customer(email="first@example.com")
    stripe.set_latency("POST", "/v1/customers", 0.5)

    def other_container_writes_its_row():
        link_customer(dynamodb, "racer", winner)

    threading.Timer(0.2, other_container_writes_its_row).start()

    # When the slower container finishes
    url = click(identity.token("racer"))

    # Then the stored link is kept and the session is for the winner's customer
    items = dynamodb.scan(TableName=TABLE)["Items"]
    assert [i["stripe_customer_id"]["S"] for i in items] == [winner]
    [session] = stripe.sessions()
    assert (session["url"], session["customer"]) == (url, winner)


def test_the_handler_works_against_the_moto_server(dynamodb, handler, identity, stripe):
    response = handler.request(token=identity.token("user-http"))

    assert response["statusCode"] == 303
    portal_session(response, stripe)
    items = dynamodb.scan(TableName=TABLE)["Items"]
    assert [i["app_user_id"]["S"] for i in items] == ["user-http"]


def test_fifty_concurrent_clicks_heal_a_deleted_customer_with_exactly_one_new_one(
    dynamodb, identity, stripe, stripe_api
):
    # Given a user whose customer was deleted in the Stripe Dashboard, and 50 warm containers
    stale = stripe.add_customer(metadata={"app_user_id": "healer"})
    link_customer(dynamodb, "healer", stale)
    stripe_api.v1.customers.delete(stale)
    containers = [container() for _ in range(50)]
    stripe.set_latency("POST", "/v1/customers", 0.3)
    token = identity.token("healer")
    start = threading.Barrier(len(containers))

    def click(one):
        start.wait()
        return one(token)

    # When the user's clicks reach all of them at once
    with ThreadPoolExecutor(max_workers=len(containers)) as pool:
        urls = list(pool.map(click, containers))

    # Then all of them open the portal for one new customer, which the one row now links
    assert len(urls) == len(containers)
    assert set(urls) == {session["url"] for session in stripe.sessions()}
    [customer] = stripe.customers()
    assert customer["id"] != stale
    assert {s["customer"] for s in stripe.sessions()} == {customer["id"]}
    items = dynamodb.scan(TableName=TABLE)["Items"]
    assert [(i["app_user_id"]["S"], i["stripe_customer_id"]["S"]) for i in items] == [
        ("healer", customer["id"])
    ]
