"""Organization mode: concurrent first clicks of an organization's admins make one customer and one row."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

from tests.conftest import TABLE
from tests.integration.test_first_click_race import container

CONTAINERS = 40
ORG_MODE = {"AUTH_ORG_CLAIM": "org_id", "AUTH_ROLE_CLAIM": "org_role", "AUTH_BILLING_ROLES": "org:admin"}


def test_concurrent_first_clicks_of_two_organizations_admins_make_one_customer_each(
    env, dynamodb, identity, stripe
):
    # Given organization mode in 40 containers, and Stripe taking a moment per customer
    env(**ORG_MODE)
    containers = [container() for _ in range(CONTAINERS)]
    stripe.set_latency("POST", "/v1/customers", 0.3)
    # and different admins of Acme and of Globex, each clicking for the first time at once
    tokens = [
        identity.token(
            f"admin-{n}",
            email=f"admin-{n}@example.com",
            org_id="acme" if n % 2 else "globex",
            org_role="org:admin",
        )
        for n in range(CONTAINERS)
    ]
    start = threading.Barrier(CONTAINERS)

    def first_click(n: int) -> str:
        start.wait()
        url: str = containers[n](tokens[n])
        return url

    with ThreadPoolExecutor(max_workers=CONTAINERS) as pool:
        urls = list(pool.map(first_click, range(CONTAINERS)))

    # Then each organization has exactly one customer, which every one of its admins' sessions opened
    assert len(set(urls)) == CONTAINERS
    by_org = {c["metadata"]["app_org_id"]: c["id"] for c in stripe.customers()}
    assert set(by_org) == {"acme", "globex"}
    assert len(stripe.customers()) == 2
    # made with the same parameters by whichever admin's click it was: the one who reserved it is named
    assert {c["metadata"]["app_org_opened_by"] for c in stripe.customers()} <= {
        f"admin-{n}" for n in range(40)
    }
    assert {s["customer"] for s in stripe.sessions()} == set(by_org.values())
    items = dynamodb.scan(TableName=TABLE)["Items"]
    assert sorted((i["app_user_id"]["S"], i["stripe_customer_id"]["S"]) for i in items) == [
        ("#org#acme", by_org["acme"]),
        ("#org#globex", by_org["globex"]),
    ]
    # and the race was real: creates for one organization overlapped (409 for its idempotency key)
    assert any(create.status == 409 for create in stripe.requests_to("POST", "/v1/customers"))
