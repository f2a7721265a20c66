"""Organization mode through the handler: the organization pays, only billing roles open its portal.

Tokens come from the dev issuer with the claims a provider puts in them (Clerk v1's flat `org_id` and
`org_role` by default); the provider-shaped tokens are in test_identity_providers.py.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

import pytest

from local.identity_provider import IdentityProvider
from local.stripe_emulator import StripeEmulator
from portal_links.errors import ConfigurationError
from tests.conftest import APP, TABLE, Invoker, link_customer, portal_session, problem, rows

ORG_MODE = {"AUTH_ORG_CLAIM": "org_id", "AUTH_ROLE_CLAIM": "org_role", "AUTH_BILLING_ROLES": "org:admin"}
ADMIN = {"org_id": "acme", "org_role": "org:admin"}
MEMBER = {"org_id": "acme", "org_role": "org:member"}


@pytest.fixture
def organizations(redeploy: Callable[..., None], handler: Invoker) -> Invoker:
    redeploy(**ORG_MODE)
    return handler


def keys(aws: Any) -> list[str]:
    return sorted(row["app_user_id"]["S"] for row in rows(aws))


def test_an_admins_click_opens_the_organizations_portal_keyed_by_the_organization(
    organizations, identity, stripe, aws
):
    # Given organization mode, and a billing admin of Acme
    token = identity.token("ada", email="ada@acme.example", name="Ada Admin", **ADMIN)

    # When she opens the portal
    response = organizations.request(token=token)

    # Then the portal is the organization's: one customer, carrying the organization and who opened it
    assert response["statusCode"] == 303
    [customer] = stripe.customers()
    assert customer["metadata"] == {
        "app_org_id": "acme",
        "app_org_opened_by": "ada",
        "portal_links_creation_key": customer["metadata"]["portal_links_creation_key"],
    }
    # Its billing e-mail is the admin's; it is not named after her
    assert (customer["email"], customer["name"]) == ("ada@acme.example", None)
    assert keys(aws) == ["#org#acme"]
    [session] = stripe.sessions()
    assert session["customer"] == customer["id"]
    assert response["headers"]["Location"] == session["url"]


def test_a_click_that_finds_another_admins_reservation_makes_the_customer_as_she_would(
    organizations, identity, stripe, aws
):
    # Given Ada's click reserved Acme's row a moment ago and has not made the customer yet
    key = "5ca1ab1e" * 4
    reservation = {
        "app_user_id": {"S": "#org#acme"},
        "creation_key": {"S": key},
        "reserved_at": {"N": str(time.time())},
        "reserved_by": {"S": "ada"},
        "reserved_by_email": {"S": "ada@acme.example"},
    }
    aws.put_item(TableName=TABLE, Item=reservation)

    # When Bob, another billing admin, clicks
    response = organizations.request(token=identity.token("bob", email="bob@acme.example", **ADMIN))

    # Then he makes the very customer her click asks for: her e-mail, her as its maker, her key
    [customer] = stripe.customers()
    assert portal_session(response, stripe)["customer"] == customer["id"]
    assert customer["email"] == "ada@acme.example"
    assert customer["metadata"] == {
        "app_org_id": "acme",
        "app_org_opened_by": "ada",
        "portal_links_creation_key": key,
    }
    [made] = stripe.requests_to("POST", "/v1/customers")
    assert made.idempotency_key == f"portal-links-customer-{key}"


def test_every_billing_admin_of_the_organization_opens_the_same_customer(
    organizations, identity, stripe, aws
):
    first = organizations.request(token=identity.token("ada", **ADMIN))
    second = organizations.request(token=identity.token("bob", **ADMIN))

    assert (first["statusCode"], second["statusCode"]) == (303, 303)
    [customer] = stripe.customers()
    assert {session["customer"] for session in stripe.sessions()} == {customer["id"]}
    assert keys(aws) == ["#org#acme"]


@pytest.mark.parametrize("path", ["/portal", "/portal/subscription_cancel", "/portal/no_such_flow"])
def test_a_member_without_a_billing_role_is_refused_before_anything_is_read_or_written(
    organizations, identity, stripe, aws, path
):
    # Given Acme's customer exists, and a member whose role may not pay
    link_customer(aws, "#org#acme", stripe.add_customer(metadata={"app_org_id": "acme"}))
    stripe_before = len(stripe.requests())

    # When the member clicks, even with parameters that would be refused later
    response = organizations.request(
        path=path, token=identity.token("max", **MEMBER), query="unknown=1", accept="application/json"
    )

    # Then the refusal is the role's: 403, and nothing reached Stripe or the table
    assert response["statusCode"] == 403
    body = problem(response)
    assert body["code"] == "billing_role_required"
    assert body["title"] == "Billing role required"
    assert body["detail"] == "only an organization's billing admins may open its billing portal"
    assert len(stripe.requests()) == stripe_before
    assert keys(aws) == ["#org#acme"]


def test_a_member_in_a_browser_comes_back_to_the_app_with_the_code(organizations, identity, stripe, aws):
    token = identity.token("max", **MEMBER)

    response = organizations.request(token=token, form={"return_to": f"{APP}/billing"})

    assert response["statusCode"] == 303
    assert response["headers"]["Location"] == f"{APP}/billing?portal_error=billing_role_required"
    assert stripe.requests() == []
    assert rows(aws) == []


def test_a_refused_member_makes_no_dynamodb_call(organizations, identity, stripe, aws, monkeypatch):
    # The table's client would fail any call: the refusal comes first, so it is the answer
    calls: list[str] = []
    service = organizations.module.portal()[0]
    monkeypatch.setattr(service._customers, "_client", RecordingClient(calls))

    response = organizations.request(token=identity.token("max", **MEMBER), accept="application/json")

    assert problem(response)["code"] == "billing_role_required"
    assert calls == []


class RecordingClient:
    def __init__(self, calls: list[str]) -> None:
        self._calls = calls

    def __getattr__(self, name: str) -> Any:
        self._calls.append(name)
        raise AssertionError(f"DynamoDB {name} was called")


@pytest.mark.parametrize(
    "claims",
    [
        pytest.param({}, id="no organization claim"),
        pytest.param({"org_role": "org:admin"}, id="a role but no organization"),
        pytest.param({"org_id": "", "org_role": "org:admin"}, id="an empty organization"),
        pytest.param({"org_id": 42, "org_role": "org:admin"}, id="a number"),
        pytest.param({"org_id": ["acme", "globex"], "org_role": "org:admin"}, id="several organizations"),
        pytest.param({"org_id": {"id": "acme"}, "org_role": "org:admin"}, id="an object"),
        pytest.param({"org_id": "#deleted#cus_1", "org_role": "org:admin"}, id="a table key"),
        pytest.param({"org_id": "org:acme", "org_role": "org:admin"}, id="a Checkout reference"),
        pytest.param({"org_id": "acme\n", "org_role": "org:admin"}, id="a control character"),
        pytest.param({"org_id": "a" * 256, "org_role": "org:admin"}, id="too long"),
    ],
)
def test_a_token_naming_no_usable_organization_is_refused(organizations, identity, stripe, aws, claims):
    response = organizations.request(token=identity.token("ada", **claims), accept="application/json")

    assert response["statusCode"] == 403
    assert problem(response)["code"] == "organization_required"
    assert problem(response)["detail"] == "choose an organization first: this token names none"
    assert stripe.requests() == []
    assert rows(aws) == []


@pytest.mark.parametrize(
    "role",
    [
        pytest.param("org:member", id="another role"),
        pytest.param("admin", id="the role without its prefix"),
        pytest.param("ORG:ADMIN", id="another case"),
        pytest.param("org:admin ", id="a trailing space"),
        pytest.param(None, id="no role"),
        pytest.param(["org:member", "viewer"], id="a list without it"),
        pytest.param({"org:admin": True}, id="an object"),
        pytest.param("org:admin,org:member", id="a list in a string"),
    ],
)
def test_near_miss_roles_are_refused(organizations, identity, stripe, aws, role):
    response = organizations.request(
        token=identity.token("ada", org_id="acme", org_role=role), accept="application/json"
    )

    assert response["statusCode"] == 403
    assert problem(response)["code"] == "billing_role_required"
    assert stripe.requests() == []
    assert rows(aws) == []


def test_a_member_of_two_organizations_gets_the_portal_of_the_one_the_token_names(
    organizations, identity, stripe, aws
):
    # Given two organizations with customers, and an admin of both
    acme = stripe.add_customer(metadata={"app_org_id": "acme"})
    globex = stripe.add_customer(metadata={"app_org_id": "globex"})
    link_customer(aws, "#org#acme", acme)
    link_customer(aws, "#org#globex", globex)

    # When her token names Globex, then Acme
    organizations.request(token=identity.token("ada", org_id="globex", org_role="org:admin"))
    organizations.request(token=identity.token("ada", **ADMIN))

    # Then each click opened the named organization's portal, and nothing else was made
    assert [session["customer"] for session in stripe.sessions()] == [globex, acme]
    assert len(stripe.customers()) == 2
    assert keys(aws) == ["#org#acme", "#org#globex"]


def test_a_users_own_customer_is_not_the_organizations(organizations, identity, stripe, aws):
    # Given a user who had a customer of their own before organization mode
    mine = stripe.add_customer(metadata={"app_user_id": "ada"})
    link_customer(aws, "ada", mine)

    organizations.request(token=identity.token("ada", **ADMIN))

    [session] = stripe.sessions()
    assert session["customer"] != mine
    assert keys(aws) == ["#org#acme", "ada"]


def test_the_same_user_without_organization_mode_pays_for_themselves(handler, identity, stripe, aws):
    # The organization claims are ignored when AUTH_ORG_CLAIM is not set
    response = handler.request(token=identity.token("ada", **ADMIN))

    assert response["statusCode"] == 303
    assert keys(aws) == ["ada"]
    assert stripe.customers()[0]["metadata"]["app_user_id"] == "ada"


def test_a_subscription_flow_acts_on_the_organizations_subscription(organizations, identity, stripe, aws):
    stripe.add_product("Team", product_id="prod_team")
    stripe.add_price("prod_team", 5000, price_id="price_team")
    acme = stripe.add_customer(metadata={"app_org_id": "acme"})
    subscription = stripe.add_subscription(acme, ["price_team"])
    link_customer(aws, "#org#acme", acme)

    response = organizations.request(path="/portal/subscription_cancel", token=identity.token("ada", **ADMIN))

    assert response["statusCode"] == 303
    [session] = stripe.sessions()
    assert session["flow"]["subscription_cancel"]["subscription"] == subscription


CLAIM_SHAPES: dict[str, tuple[dict[str, str], dict[str, Any], dict[str, Any]]] = {
    "Clerk v2 (nested o.id, o.rol)": (
        {"AUTH_ORG_CLAIM": "o.id", "AUTH_ROLE_CLAIM": "o.rol", "AUTH_BILLING_ROLES": "admin"},
        {"o": {"id": "org_2abc", "rol": "admin", "slg": "acme"}},
        {"o": {"id": "org_2abc", "rol": "member", "slg": "acme"}},
    ),
    "a namespaced roles claim (Auth0)": (
        {
            "AUTH_ORG_CLAIM": "org_id",
            "AUTH_ROLE_CLAIM": "https://example.com/roles",
            "AUTH_BILLING_ROLES": "owner,billing-admin",
        },
        {"org_id": "org_2abc", "https://example.com/roles": ["viewer", "billing-admin"]},
        {"org_id": "org_2abc", "https://example.com/roles": ["viewer"]},
    ),
    "a list of one organization (Keycloak)": (
        {"AUTH_ORG_CLAIM": "organization", "AUTH_ROLE_CLAIM": "groups", "AUTH_BILLING_ROLES": "billing"},
        {"organization": ["org_2abc"], "groups": ["billing"]},
        {"organization": ["org_2abc"], "groups": []},
    ),
}


@pytest.mark.parametrize("shape", CLAIM_SHAPES)
def test_claim_shapes_providers_use(redeploy, handler, identity, stripe, aws, shape):
    settings, admin, member = CLAIM_SHAPES[shape]
    redeploy(**settings)

    allowed = handler.request(token=identity.token("ada", **admin), accept="application/json")
    refused = handler.request(token=identity.token("max", **member), accept="application/json")

    assert allowed["statusCode"] == 200, allowed["body"]
    assert (refused["statusCode"], problem(refused)["code"]) == (403, "billing_role_required")
    assert keys(aws) == ["#org#org_2abc"]


def test_an_exact_claim_name_wins_over_a_path(redeploy, handler, identity, stripe, aws):
    # Given a token with both a top-level "o.id" claim and a nested o.id
    redeploy(**{**ORG_MODE, "AUTH_ORG_CLAIM": "o.id"})
    token = identity.token("ada", **{"o.id": "exact", "o": {"id": "nested"}}, org_role="org:admin")

    handler.request(token=token)

    assert keys(aws) == ["#org#exact"]


@pytest.mark.parametrize("sub", ["org:acme", "#org#acme", "#deleted#cus_1"])
def test_a_user_id_that_looks_like_an_organization_reference_or_a_key_is_refused(
    handler, identity, stripe, sub
):
    response = handler.request(token=identity.token(sub), accept="application/json")

    assert response["statusCode"] == 401
    assert stripe.requests() == []


@pytest.mark.parametrize(
    ("overrides", "setting"),
    [
        ({"AUTH_ROLE_CLAIM": "org_role"}, "AUTH_ROLE_CLAIM"),
        ({"AUTH_BILLING_ROLES": "org:admin"}, "AUTH_BILLING_ROLES"),
        ({"AUTH_ORG_CLAIM": "org_id", "AUTH_BILLING_ROLES": "org:admin"}, "AUTH_ROLE_CLAIM"),
        ({"AUTH_ORG_CLAIM": "org_id", "AUTH_ROLE_CLAIM": "org_role"}, "AUTH_BILLING_ROLES"),
        ({**ORG_MODE, "AUTH_BILLING_ROLES": " , "}, "AUTH_BILLING_ROLES"),
        ({**ORG_MODE, "AUTH_ORG_CLAIM": "o..id"}, "AUTH_ORG_CLAIM"),
        ({**ORG_MODE, "AUTH_ROLE_CLAIM": "o.rol."}, "AUTH_ROLE_CLAIM"),
    ],
)
def test_an_incomplete_organization_mode_fails_the_cold_start_naming_the_setting(
    env, aws, overrides, setting
):
    import portal_handler

    env(**overrides)
    portal_handler.portal.cache_clear()

    with pytest.raises(ConfigurationError) as raised:
        portal_handler.portal()

    assert raised.value.setting == setting


def test_a_fetch_caller_reads_the_refusal(organizations, identity: IdentityProvider, stripe: StripeEmulator):
    response = organizations.request(
        token=identity.token("ada", org_role="org:admin"), accept="application/json"
    )

    body = json.loads(response["body"])
    assert body["code"] == "organization_required"
    assert body["title"] == "Organization required"
    assert body["detail"]
