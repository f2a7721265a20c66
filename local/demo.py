"""The demo world `make dev` and the events start from: two plans, a subscriber, a newcomer, and an
organization (Acme) with a billing admin and a plain member, for organization mode."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from local.stripe_emulator import StripeEmulator
from portal_links.customers import BillingSubject

DEMO_POLICY = Path(__file__).with_name("demo-policy.json")  # "{origin}" stands for the dev server's origin
SUBSCRIBER = "demo-user"  # mapped to a customer with an active Pro (monthly) subscription
NEWCOMER = "new-user"  # no customer yet: the first click creates one
USERS = {SUBSCRIBER: "Dana Demo (subscriber)", NEWCOMER: "Nico New (no customer yet)"}
ORGANIZATION = "acme"  # subscribed to Pro (monthly), keyed #org#acme
ORG_ADMIN = "acme-admin"
ORG_MEMBER = "acme-member"
# Organization mode in `make dev ORGANIZATIONS=1`: Clerk's v1 claims, flat, as the dev issuer mints them.
ORGANIZATION_SETTINGS = {
    "AUTH_ORG_CLAIM": "org_id",
    "AUTH_ROLE_CLAIM": "org_role",
    "AUTH_BILLING_ROLES": "org:admin",
}
ORG_USERS = {
    ORG_ADMIN: ("Ada Admin (Acme's billing admin)", {"org_id": ORGANIZATION, "org_role": "org:admin"}),
    ORG_MEMBER: ("Max Member (Acme, no billing role)", {"org_id": ORGANIZATION, "org_role": "org:member"}),
}


def demo_users(organizations: bool) -> dict[str, str]:
    """The sign-in page's demo users: in organization mode Acme's admin and member come first."""
    members = {user: label for user, (label, _) in ORG_USERS.items()} if organizations else {}
    return {**members, **USERS}


def claims_of(user: str, organizations: bool) -> dict[str, Any]:
    """The claims the dev issuer adds to a user's token: their organization and role, in that mode."""
    return ORG_USERS[user][1] if organizations and user in ORG_USERS else {}


def demo_policy(origin: str) -> str:
    """The demo policy with its redirect targets on `origin`, as PORTAL_POLICY takes it: one line of JSON."""
    return json.dumps(json.loads(DEMO_POLICY.read_text().replace("{origin}", origin)), separators=(",", ":"))


def seed_demo(emulator: StripeEmulator, dynamodb: Any, table: str) -> None:
    pro = emulator.add_product("Pro", product_id="prod_pro")
    emulator.add_price(pro, 2000, "month", price_id="price_pro_monthly")
    emulator.add_price(pro, 19200, "year", price_id="price_pro_annual")
    emulator.add_coupon("STAY20")
    emulator.add_coupon("ANNUAL20")
    customer = emulator.add_customer(
        email="dana@example.com", name="Dana Demo", metadata={"app_user_id": SUBSCRIBER}
    )
    emulator.add_subscription(customer, ["price_pro_monthly"])
    link_customer(dynamodb, table, SUBSCRIBER, customer)
    acme = BillingSubject.organization(ORGANIZATION)
    organization = emulator.add_customer(
        email="billing@acme.example", metadata=acme.metadata(made_by=ORG_ADMIN)
    )
    emulator.add_subscription(organization, ["price_pro_monthly"])
    link_customer(dynamodb, table, acme.key, organization)


def link_customer(dynamodb: Any, table: str, app_user_id: str, customer_id: str) -> None:
    """A customers-table row, as the service writes it, for a user who already has a customer."""
    dynamodb.put_item(
        TableName=table,
        Item={
            "app_user_id": {"S": app_user_id},
            "stripe_customer_id": {"S": customer_id},
            "livemode": {"BOOL": False},
            "created_at": {"S": "2026-01-01T00:00:00+00:00"},
        },
    )
