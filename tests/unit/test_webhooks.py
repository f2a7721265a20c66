"""POST /stripe/webhook through the webhook handler: signatures, the event table, replays and reordering."""

from __future__ import annotations

import base64
import copy
import hashlib
import hmac
import json
import time
from pathlib import Path
from typing import Any

import boto3
import pytest

from local.apigw import LocalContext, http_api_event
from local.stripe_emulator.events import signature_header
from tests.conftest import TABLE, link_customer, rows

SECRET = "whsec_test_current"
PREVIOUS = "whsec_test_previous"


@pytest.fixture
def webhook(env, aws):
    """The webhook function, cold-started with a local signing secret, in test mode."""
    env(STRIPE_MODE="test", STRIPE_WEBHOOK_SECRET=SECRET)
    import webhook_handler

    webhook_handler.webhooks.cache_clear()
    webhook_handler.webhooks()
    return webhook_handler


def stripe_event(
    kind: str, obj: dict[str, Any], *, livemode: bool = False, event_id: str = ""
) -> dict[str, Any]:
    return {
        "id": event_id or f"evt_{abs(hash((kind, json.dumps(obj, sort_keys=True)))) % 10**12}",
        "object": "event",
        "api_version": "2026-10-28.endive",
        "created": int(time.time()),
        "data": {"object": obj},
        "livemode": livemode,
        "type": kind,
    }


def customer(customer_id: str, user: str | None = None, **metadata: str) -> dict[str, Any]:
    return {
        "id": customer_id,
        "object": "customer",
        "livemode": False,
        "metadata": {**({"app_user_id": user} if user else {}), **metadata},
    }


def checkout(user: str | None, customer_id: str | None) -> dict[str, Any]:
    return {
        "id": "cs_test_1",
        "object": "checkout.session",
        "client_reference_id": user,
        "customer": customer_id,
    }


def deliver(
    handler,
    event: dict[str, Any] | str,
    *,
    secret: str = SECRET,
    signature: str | None = None,
    timestamp: int | None = None,
    as_base64: bool = False,
) -> dict[str, Any]:
    payload = (event if isinstance(event, str) else json.dumps(event)).encode()
    headers = {"content-type": "application/json"}
    header = (
        signature
        if signature is not None
        else signature_header(payload, secret, timestamp or int(time.time()))
    )
    if header:
        headers["stripe-signature"] = header
    built = http_api_event("POST", "/stripe/webhook", headers=headers, route_key="POST /stripe/webhook")
    built["body"] = base64.b64encode(payload).decode() if as_base64 else payload.decode()
    built["isBase64Encoded"] = as_base64
    response: dict[str, Any] = handler.lambda_handler(built, LocalContext(function_name="WebhookFunction"))
    return response


def action(response: dict[str, Any]) -> str:
    assert response["statusCode"] == 200, response["body"]
    return str(json.loads(response["body"])["action"])


def mapping(aws) -> dict[str, str]:
    """Subject → linked customer; tombstones as "#deleted#…" → the customer they bury."""
    result = {}
    for row in rows(aws):
        key = row["app_user_id"]["S"]
        result[key] = (
            row.get("stripe_customer_id") or row.get("deleted_customer_id") or row["creation_key"]
        )["S"]
    return result


class TestTheEventTable:
    def test_customer_created_with_our_metadata_links_the_user(self, webhook, aws):
        response = deliver(webhook, stripe_event("customer.created", customer("cus_A", "user-1")))

        assert action(response) == "linked"
        [row] = rows(aws)
        assert row["app_user_id"] == {"S": "user-1"}
        assert row["stripe_customer_id"] == {"S": "cus_A"}
        assert row["livemode"] == {"BOOL": False}

    def test_a_customer_without_our_metadata_is_ignored(self, webhook, aws):
        response = deliver(webhook, stripe_event("customer.created", customer("cus_A")))

        assert action(response) == "ignored"
        assert rows(aws) == []

    def test_metadata_added_later_links_on_customer_updated(self, webhook, aws):
        deliver(webhook, stripe_event("customer.created", customer("cus_A")))

        response = deliver(webhook, stripe_event("customer.updated", customer("cus_A", "user-1")))

        assert action(response) == "linked"
        assert mapping(aws) == {"user-1": "cus_A"}

    def test_a_different_existing_link_is_never_overwritten(self, webhook, aws):
        link_customer(aws, "user-1", "cus_KEEP")

        response = deliver(webhook, stripe_event("customer.created", customer("cus_OTHER", "user-1")))

        assert action(response) == "conflict"
        assert mapping(aws) == {"user-1": "cus_KEEP"}

    def test_a_conflict_is_logged_and_counted_in_a_metric(self, webhook, aws, capsys, caplog):
        link_customer(aws, "user-1", "cus_KEEP")

        deliver(webhook, stripe_event("customer.created", customer("cus_OTHER", "user-1")))

        emitted = [json.loads(line) for line in capsys.readouterr().out.splitlines() if line.startswith("{")]
        assert any(line.get("MappingConflicts") == [1.0] for line in emitted)
        [warning] = [r for r in caplog.records if r.levelname == "WARNING"]
        assert warning.getMessage().startswith("a webhook named another customer")

    def test_checkout_session_completed_links_the_client_reference_id(self, webhook, aws):
        response = deliver(webhook, stripe_event("checkout.session.completed", checkout("user-9", "cus_B")))

        assert action(response) == "linked"
        assert mapping(aws) == {"user-9": "cus_B"}

    @pytest.mark.parametrize(
        ("user", "customer_id"), [(None, "cus_B"), ("user-9", None), ("#deleted#x", "cus_B")]
    )
    def test_a_checkout_without_user_or_customer_is_ignored(self, webhook, aws, user, customer_id):
        response = deliver(webhook, stripe_event("checkout.session.completed", checkout(user, customer_id)))

        assert action(response) == "ignored"
        assert rows(aws) == []

    def test_customer_deleted_removes_the_link_only_if_it_still_points_there(self, webhook, aws):
        link_customer(aws, "user-1", "cus_A")
        link_customer(aws, "user-2", "cus_NEW")

        gone = deliver(webhook, stripe_event("customer.deleted", customer("cus_A", "user-1")))
        stale = deliver(webhook, stripe_event("customer.deleted", customer("cus_OLD", "user-2")))

        assert action(gone) == "unlinked"
        assert action(stale) == "not_linked"
        assert mapping(aws) == {"user-2": "cus_NEW", "#deleted#cus_A": "cus_A", "#deleted#cus_OLD": "cus_OLD"}

    def test_customer_deleted_finds_links_made_by_checkout_without_metadata(self, webhook, aws):
        deliver(webhook, stripe_event("checkout.session.completed", checkout("user-9", "cus_B")))

        response = deliver(webhook, stripe_event("customer.deleted", customer("cus_B")))

        assert action(response) == "unlinked"
        assert "user-9" not in mapping(aws)

    def test_a_deleted_customer_is_never_linked_again(self, webhook, aws):
        deliver(webhook, stripe_event("customer.deleted", customer("cus_A", "user-1")))

        response = deliver(webhook, stripe_event("customer.created", customer("cus_A", "user-1")))

        assert action(response) == "ignored"
        assert "user-1" not in mapping(aws)

    def test_events_of_the_other_mode_are_ignored(self, webhook, aws):
        response = deliver(
            webhook, stripe_event("customer.created", customer("cus_A", "user-1"), livemode=True)
        )

        assert action(response) == "ignored"
        assert rows(aws) == []

    @pytest.mark.parametrize("kind", ["invoice.paid", "customer.subscription.created", "charge.refunded"])
    def test_unknown_event_types_are_200_and_ignored(self, webhook, aws, kind):
        response = deliver(webhook, stripe_event(kind, {"id": "in_1", "object": "invoice"}))

        assert action(response) == "ignored"
        assert rows(aws) == []


class TestOrganizations:
    """The linker understands organizations: `metadata.app_org_id` and Checkout's `org:<id>`."""

    def test_customer_created_with_organization_metadata_links_the_organization(self, webhook, aws):
        event = stripe_event(
            "customer.created", customer("cus_ORG", app_org_id="acme", app_org_opened_by="ada")
        )

        response = deliver(webhook, event)

        assert action(response) == "linked"
        assert mapping(aws) == {"#org#acme": "cus_ORG"}

    def test_checkout_with_an_organization_reference_links_the_organization(self, webhook, aws):
        response = deliver(webhook, stripe_event("checkout.session.completed", checkout("org:acme", "cus_B")))

        assert action(response) == "linked"
        assert mapping(aws) == {"#org#acme": "cus_B"}

    @pytest.mark.parametrize(
        "reference",
        [
            "org:",
            "org: ",
            "org:#org#acme",
            "org:org:acme",
            "org:#deleted#cus_A",
            "org:acme\n",
            "org:" + "a" * 256,
        ],
    )
    def test_a_checkout_with_an_unusable_organization_reference_links_nothing(self, webhook, aws, reference):
        response = deliver(webhook, stripe_event("checkout.session.completed", checkout(reference, "cus_B")))

        assert action(response) == "ignored"
        assert rows(aws) == []

    @pytest.mark.parametrize(
        "metadata",
        [
            pytest.param({"app_user_id": "ada", "app_org_id": "acme"}, id="both a user and an organization"),
            pytest.param({"app_org_id": ""}, id="an empty organization"),
            pytest.param({"app_org_id": "#org#acme"}, id="a table key"),
            pytest.param({"app_org_id": "org:acme"}, id="a Checkout reference"),
            pytest.param({"app_org_opened_by": "ada"}, id="only who opened it"),
        ],
    )
    def test_customer_metadata_naming_no_single_usable_subject_links_nothing(self, webhook, aws, metadata):
        response = deliver(webhook, stripe_event("customer.created", customer("cus_X", **metadata)))

        assert action(response) == "ignored"
        assert rows(aws) == []

    def test_a_user_and_an_organization_of_the_same_id_are_different_subjects(self, webhook, aws):
        deliver(webhook, stripe_event("customer.created", customer("cus_USER", "acme")))
        deliver(webhook, stripe_event("customer.created", customer("cus_ORG", app_org_id="acme")))

        assert mapping(aws) == {"acme": "cus_USER", "#org#acme": "cus_ORG"}

    def test_an_organizations_other_customer_is_a_conflict_and_the_link_is_kept(self, webhook, aws):
        link_customer(aws, "#org#acme", "cus_KEEP")

        response = deliver(
            webhook, stripe_event("customer.created", customer("cus_OTHER", app_org_id="acme"))
        )

        assert action(response) == "conflict"
        assert mapping(aws) == {"#org#acme": "cus_KEEP"}

    def test_deleting_an_organizations_customer_unlinks_it_and_keeps_it_unlinked(self, webhook, aws):
        deliver(webhook, stripe_event("checkout.session.completed", checkout("org:acme", "cus_B")))

        deleted = deliver(webhook, stripe_event("customer.deleted", customer("cus_B", app_org_id="acme")))
        late = deliver(webhook, stripe_event("customer.created", customer("cus_B", app_org_id="acme")))

        assert (action(deleted), action(late)) == ("unlinked", "ignored")
        assert mapping(aws) == {"#deleted#cus_B": "cus_B"}


class TestAccountsAsCustomers:
    """A Checkout Session for an Accounts v2 account names it as customer_account: the account is linked."""

    def test_checkout_for_an_account_links_the_account(self, webhook, aws):
        session = {**checkout("user-9", "cus_B"), "customer_account": "acct_1Example"}

        response = deliver(webhook, stripe_event("checkout.session.completed", session))

        assert action(response) == "linked"
        assert mapping(aws) == {"user-9": "acct_1Example"}

    @pytest.mark.parametrize("account", ["acct_", "acct_1 x", "ba_1Example", 42])
    def test_a_malformed_account_is_refused_and_nothing_written(self, webhook, aws, account):
        session = {**checkout("user-9", "cus_B"), "customer_account": account}

        response = deliver(webhook, stripe_event("checkout.session.completed", session))

        assert response["statusCode"] == 400
        assert rows(aws) == []


EVENTS = [
    stripe_event("customer.created", customer("cus_A", "user-1"), event_id="evt_1"),
    stripe_event("checkout.session.completed", checkout("user-2", "cus_B"), event_id="evt_2"),
    stripe_event("customer.created", customer("cus_C"), event_id="evt_3"),
    stripe_event("customer.updated", customer("cus_C", "user-3"), event_id="evt_4"),
    stripe_event("customer.created", customer("cus_D", "user-4"), event_id="evt_5"),
    stripe_event("customer.deleted", customer("cus_D", "user-4"), event_id="evt_6"),
    stripe_event("invoice.paid", {"id": "in_1", "object": "invoice"}, event_id="evt_8"),
]
# Two customers claiming one user are a conflict for a person to settle (logged, counted); which arrived
# first decides what is kept, so the reordering test leaves them out.


def test_replays_and_reordering_end_with_the_same_mapping(webhook, aws):
    # Given every event delivered twice, in order
    for event in EVENTS:
        for _ in range(2):
            action(deliver(webhook, copy.deepcopy(event)))
    in_order = mapping(aws)

    # When a fresh table gets them in reverse order, each twice
    for row in rows(aws):
        aws.delete_item(TableName=TABLE, Key={"app_user_id": row["app_user_id"]})
    for event in reversed(EVENTS):
        for _ in range(2):
            action(deliver(webhook, copy.deepcopy(event)))

    # Then the mapping ends the same (and cus_D, created then deleted, is linked in neither)
    assert (
        mapping(aws)
        == in_order
        == {
            "user-1": "cus_A",
            "user-2": "cus_B",
            "user-3": "cus_C",
            "#deleted#cus_D": "cus_D",
        }
    )


class TestSignatures:
    def test_stripe_pythons_own_header_format_is_accepted(self, webhook, aws):
        payload = json.dumps(stripe_event("customer.created", customer("cus_A", "user-1")))
        timestamp = int(time.time())
        digest = hmac.new(SECRET.encode(), f"{timestamp}.{payload}".encode(), hashlib.sha256).hexdigest()

        response = deliver(webhook, payload, signature=f"t={timestamp},v1={digest}")

        assert action(response) == "linked"

    def test_any_of_several_v1_signatures_may_match(self, webhook, aws):
        payload = json.dumps(stripe_event("customer.created", customer("cus_A", "user-1")))
        timestamp = int(time.time())
        good = signature_header(payload.encode(), SECRET, timestamp)

        response = deliver(
            webhook, payload, signature=f"t={timestamp},v1={'0' * 64},{good.split(',')[1]},v0=abc"
        )

        assert action(response) == "linked"

    def test_the_body_is_verified_exactly_as_received_even_base64_encoded(self, webhook, aws):
        response = deliver(
            webhook, stripe_event("customer.created", customer("cus_A", "user-1")), as_base64=True
        )

        assert action(response) == "linked"

    @pytest.mark.parametrize(
        ("name", "kwargs"),
        [
            ("no header", {"signature": ""}),
            ("garbage header", {"signature": "nonsense"}),
            ("another secret", {"secret": "whsec_someone_else"}),
            ("five minutes and a second old", {"timestamp": int(time.time()) - 301}),
        ],
    )
    def test_a_bad_signature_is_400_and_nothing_is_written(self, webhook, aws, name, kwargs):
        response = deliver(webhook, stripe_event("customer.created", customer("cus_A", "user-1")), **kwargs)

        assert response["statusCode"] == 400, name
        assert json.loads(response["body"])["code"] == "signature_invalid"
        assert rows(aws) == []

    def test_a_tampered_body_is_400(self, webhook, aws):
        payload = json.dumps(stripe_event("customer.created", customer("cus_A", "user-1")))
        header = signature_header(payload.encode(), SECRET, int(time.time()))

        response = deliver(webhook, payload.replace("user-1", "admin"), signature=header)

        assert response["statusCode"] == 400
        assert rows(aws) == []

    @pytest.mark.parametrize(
        "payload",
        ["not json", "[1, 2]", "[" * 5000, '{"type": "customer.created"}', '{"type": 1, "livemode": false}'],
    )
    def test_a_signed_body_that_is_not_an_event_is_400(self, webhook, aws, payload):
        response = deliver(webhook, payload)

        assert response["statusCode"] == 400
        assert json.loads(response["body"])["code"] == "event_malformed"
        assert rows(aws) == []

    def test_a_customer_id_that_is_not_one_is_400(self, webhook, aws):
        response = deliver(webhook, stripe_event("customer.created", customer("cus_A\n", "user-1")))

        assert response["statusCode"] == 400
        assert rows(aws) == []

    def test_while_rolling_the_secret_both_are_accepted(self, webhook, env, aws):
        env(STRIPE_WEBHOOK_SECRET=f"{SECRET} {PREVIOUS}")
        webhook.webhooks.cache_clear()

        new = deliver(webhook, stripe_event("customer.created", customer("cus_A", "user-1")), secret=SECRET)
        old = deliver(webhook, stripe_event("customer.created", customer("cus_B", "user-2")), secret=PREVIOUS)

        assert (action(new), action(old)) == ("linked", "linked")

    def test_the_signing_secret_comes_from_secrets_manager(self, webhook, env, aws):
        client = boto3.client("secretsmanager", region_name="us-east-1")
        arn = client.create_secret(Name="portal-links/webhook", SecretString=f"{SECRET}\n")["ARN"]
        env(STRIPE_WEBHOOK_SECRET=None, STRIPE_WEBHOOK_SECRET_ARN=arn)
        webhook.webhooks.cache_clear()

        response = deliver(webhook, stripe_event("customer.created", customer("cus_A", "user-1")))

        assert action(response) == "linked"


def test_a_dynamodb_failure_is_500_so_that_stripe_retries(webhook, env, aws):
    env(CUSTOMERS_TABLE="no-such-table")
    webhook.webhooks.cache_clear()

    response = deliver(webhook, stripe_event("customer.created", customer("cus_A", "user-1")))

    assert response["statusCode"] == 500
    assert json.loads(response["body"])["code"] == "store_unavailable"


def test_the_readme_webhook_table_is_rendered_from_the_event_table():
    from local.docs import webhook_table

    assert webhook_table() in (Path(__file__).resolve().parents[2] / "README.md").read_text()
