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
from botocore.awsrequest import AWSResponse, HTTPHeaders
from botocore.exceptions import ClientError, EndpointConnectionError

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


def customer(customer_id: Any, user: str | None = None, **metadata: str) -> dict[str, Any]:
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
        [counted] = [line for line in emitted if line.get("MappingConflicts") == [1.0]]
        assert counted["_aws"]["CloudWatchMetrics"][0]["Metrics"] == [
            {"Name": "MappingConflicts", "Unit": "Count"}
        ]
        [warning] = [r for r in caplog.records if r.levelname == "WARNING"]
        assert warning.getMessage() == (
            "a webhook named another customer for a subject that already has one; the stored link is kept"
        )
        assert (warning.stored_customer, warning.event_customer) == ("cus_KEEP", "cus_OTHER")

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


def reserve(aws, user: str, creation_key: str) -> None:
    """The row a portal click writes before it makes the user's customer."""
    item = {
        "app_user_id": {"S": user},
        "creation_key": {"S": creation_key},
        "reserved_at": {"N": str(time.time())},
    }
    aws.put_item(TableName=TABLE, Item=item)


def nothing(webhook, aws) -> None:
    return None


# name: (the state before, the event, its action, the reason the log line gives)
OUTCOMES = {
    "linked": (nothing, stripe_event("customer.created", customer("cus_A", "user-1")), "linked", ""),
    "already linked": (
        lambda webhook, aws: link_customer(aws, "user-1", "cus_A"),
        stripe_event("customer.updated", customer("cus_A", "user-1")),
        "already_linked",
        "",
    ),
    "another customer": (
        lambda webhook, aws: link_customer(aws, "user-1", "cus_KEEP"),
        stripe_event("customer.created", customer("cus_OTHER", "user-1")),
        "conflict",
        "the subject is linked to another customer",
    ),
    "a click making another": (
        lambda webhook, aws: reserve(aws, "user-1", "click-key"),
        stripe_event("customer.created", customer("cus_A", "user-1", portal_links_creation_key="other-key")),
        "pending",
        "a portal click is making this subject's customer",
    ),
    "no metadata": (
        nothing,
        stripe_event("customer.created", customer("cus_A")),
        "ignored",
        "no usable metadata.app_user_id or metadata.app_org_id",
    ),
    "metadata not an object": (
        nothing,
        # text that contains the field's name is still not an object to read it from
        stripe_event("customer.created", {"id": "cus_A", "object": "customer", "metadata": "app_user_id=u1"}),
        "ignored",
        "no usable metadata.app_user_id or metadata.app_org_id",
    ),
    "deleted before": (
        lambda webhook, aws: deliver(webhook, stripe_event("customer.deleted", customer("cus_A", "user-1"))),
        stripe_event("customer.created", customer("cus_A", "user-1")),
        "ignored",
        "the customer was deleted",
    ),
    "no client_reference_id": (
        nothing,
        stripe_event("checkout.session.completed", checkout(None, "cus_B")),
        "ignored",
        "no usable client_reference_id",
    ),
    "no customer": (
        nothing,
        stripe_event("checkout.session.completed", checkout("user-9", None)),
        "ignored",
        "the session made no customer",
    ),
    "the other mode": (
        nothing,
        stripe_event("customer.created", customer("cus_A", "user-1"), livemode=True),
        "ignored",
        "an event of the other mode",
    ),
    "an unused type": (
        nothing,
        stripe_event("invoice.paid", {"id": "in_1", "object": "invoice"}),
        "ignored",
        "an event type this endpoint does not use",
    ),
    "unlinked": (
        lambda webhook, aws: link_customer(aws, "user-1", "cus_A"),
        stripe_event("customer.deleted", customer("cus_A", "user-1")),
        "unlinked",
        "",
    ),
    "not linked": (nothing, stripe_event("customer.deleted", customer("cus_A", "user-1")), "not_linked", ""),
}


@pytest.mark.parametrize("outcome", OUTCOMES)
def test_each_outcome_is_answered_logged_and_counted_by_its_action(webhook, aws, capsys, caplog, outcome):
    given, event, expected_action, reason = OUTCOMES[outcome]
    given(webhook, aws)

    response = deliver(webhook, copy.deepcopy(event))

    # Stripe reads the action; the operator reads the log line and the WebhookEvents metric by action
    assert action(response) == expected_action
    logged = [record for record in caplog.records if record.getMessage() == "webhook event handled"][-1]
    assert (logged.event_id, logged.type) == (event["id"], event["type"])
    assert (logged.action, logged.reason) == (expected_action, reason)
    printed = [json.loads(line) for line in capsys.readouterr().out.splitlines() if line.startswith("{")]
    counted = [line for line in printed if "WebhookEvents" in line][-1]
    assert (counted["action"], counted["WebhookEvents"]) == (expected_action, [1.0])
    [definition] = counted["_aws"]["CloudWatchMetrics"]
    assert definition["Metrics"] == [{"Name": "WebhookEvents", "Unit": "Count"}]
    assert definition["Dimensions"] == [["action", "service"]]


class TestSubjects:
    """Who a customer is linked to: the same rule identity applies to a token's subject."""

    @pytest.mark.parametrize("user", ["u" * 255, "user with spaces", "ユーザー"])
    def test_a_usable_subject_is_linked(self, webhook, aws, user):
        response = deliver(webhook, stripe_event("checkout.session.completed", checkout(user, "cus_B")))

        assert action(response) == "linked"
        assert mapping(aws) == {user: "cus_B"}

    @pytest.mark.parametrize("user", ["u" * 256, "   ", "user\x00", "\ud800", "#org#acme", ""])
    def test_an_unusable_subject_is_ignored(self, webhook, aws, user):
        response = deliver(webhook, stripe_event("checkout.session.completed", checkout(user, "cus_B")))

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


class TestAPortalClickUnderWay:
    def test_the_customer_the_click_made_replaces_its_reservation(self, webhook, aws):
        # Given a click's reservation whose row write has not completed yet
        reserve(aws, "user-1", "click-key")

        # When Stripe tells of the customer that click made (its creation key in the metadata)
        created = customer("cus_A", "user-1", portal_links_creation_key="click-key")
        response = deliver(webhook, stripe_event("customer.created", created))

        # Then that customer is linked in the reservation's place
        assert action(response) == "linked"
        [row] = rows(aws)
        assert (row["stripe_customer_id"]["S"], row["livemode"]["BOOL"]) == ("cus_A", False)
        assert "creation_key" not in row

    def test_a_creation_key_that_is_not_text_is_no_key(self, webhook, aws):
        created = {**customer("cus_A"), "metadata": {"app_user_id": "user-1", "portal_links_creation_key": 7}}

        response = deliver(webhook, stripe_event("customer.created", created))

        assert action(response) == "linked"
        assert mapping(aws) == {"user-1": "cus_A"}

    def test_a_customer_without_the_clicks_key_leaves_the_reservation(self, webhook, aws):
        reserve(aws, "user-1", "click-key")

        response = deliver(webhook, stripe_event("customer.created", customer("cus_A", "user-1")))

        assert action(response) == "pending"
        assert mapping(aws) == {"user-1": "click-key"}


def test_a_deletion_before_the_index_shows_the_link_still_unlinks_the_user_its_metadata_names(webhook, aws):
    # Given a link the customers index does not show yet (it is updated a moment after the table)
    link_customer(aws, "user-1", "cus_A")
    client = webhook.webhooks().customers._client

    def index_lagging(**_: Any) -> tuple[AWSResponse, dict[str, Any]]:
        answered = AWSResponse("https://dynamodb.us-east-1.amazonaws.com/", 200, HTTPHeaders(), None)
        return answered, {"Items": []}

    client.meta.events.register("before-call.dynamodb.Query", index_lagging)

    # When the customer's deletion arrives
    response = deliver(webhook, stripe_event("customer.deleted", customer("cus_A", "user-1")))

    # Then the user named in its metadata is unlinked all the same
    assert action(response) == "unlinked"
    assert mapping(aws) == {"#deleted#cus_A": "cus_A"}


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
        assert json.loads(response["body"])["code"] == "signature_invalid"
        assert rows(aws) == []

    @pytest.mark.parametrize(
        ("payload", "detail"),
        [
            ("not json", "the event is not JSON"),
            ("[1, 2]", "the event is not a JSON object"),
            ("[" * 5000, "the event is not JSON"),
            ('{"type": "customer.created"}', "the event has no data.object"),
            ('{"type": "customer.created", "data": {"object": 1}}', "the event has no data.object"),
            ('{"type": 1, "livemode": false, "data": {"object": {}}}', "the event has no type or livemode"),
            (
                '{"type": "customer.created", "livemode": 0, "data": {"object": {}}}',
                "the event has no type or livemode",
            ),
        ],
    )
    def test_a_signed_body_that_is_not_an_event_is_400(self, webhook, aws, payload, detail):
        response = deliver(webhook, payload)

        assert response["statusCode"] == 400
        assert json.loads(response["body"])["code"] == "event_malformed"
        assert json.loads(response["body"])["detail"] == detail
        assert rows(aws) == []

    @pytest.mark.parametrize("customer_id", ["cus_A\n", "cus_", "cu_A", None, 7])
    def test_a_customer_id_that_is_not_one_is_400(self, webhook, aws, customer_id):
        response = deliver(webhook, stripe_event("customer.created", customer(customer_id, "user-1")))

        assert response["statusCode"] == 400
        assert json.loads(response["body"])["code"] == "event_malformed"
        assert json.loads(response["body"])["detail"] == "the event names no customer id"
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


SECURITY_HEADERS = {
    "Cache-Control": "no-store",
    "Referrer-Policy": "no-referrer",
    "X-Content-Type-Options": "nosniff",
}


class TestTheAnswer:
    """What Stripe gets back: JSON with the security headers; a problem document when it is refused."""

    def test_a_handled_event_is_200_json_with_its_action(self, webhook, aws):
        response = deliver(webhook, stripe_event("customer.created", customer("cus_A", "user-1")))

        assert response == {
            "statusCode": 200,
            "headers": {**SECURITY_HEADERS, "Content-Type": "application/json"},
            "body": json.dumps({"received": True, "action": "linked"}),
            "isBase64Encoded": False,
        }

    def test_a_refusal_is_a_problem_document_and_is_logged_and_counted(self, webhook, aws, capsys, caplog):
        response = deliver(
            webhook, stripe_event("customer.created", customer("cus_A", "user-1")), signature=""
        )

        assert response["statusCode"] == 400
        assert response["headers"] == {**SECURITY_HEADERS, "Content-Type": "application/problem+json"}
        assert response["isBase64Encoded"] is False
        body = json.loads(response["body"])
        assert body == {
            "type": "urn:portal-links:problem:signature_invalid",
            "title": "Invalid signature",
            "status": 400,
            "detail": "the Stripe-Signature header is missing",
            "code": "signature_invalid",
            "correlation_id": body["correlation_id"],
        }
        assert body["correlation_id"]
        [logged] = [record for record in caplog.records if record.getMessage() == "request refused"]
        assert (logged.code, logged.reason) == ("signature_invalid", "the Stripe-Signature header is missing")
        printed = capsys.readouterr().out
        assert any(
            json.loads(line).get("WebhookSignatureFailures") == [1.0]
            for line in printed.splitlines()
            if line.startswith("{")
        )

    @pytest.mark.parametrize(
        "mangle",
        [
            lambda event: event.update(headers="not a map"),
            lambda event: event["headers"].update({"stripe-signature": 7}),
        ],
        ids=["headers not a map", "a signature that is not text"],
    )
    def test_a_delivery_api_gateway_would_never_shape_so_is_still_a_400(self, webhook, aws, mangle):
        payload = json.dumps(stripe_event("customer.created", customer("cus_A", "user-1")))
        event = http_api_event(
            "POST",
            "/stripe/webhook",
            headers={"stripe-signature": signature_header(payload.encode(), SECRET, int(time.time()))},
            route_key="POST /stripe/webhook",
        )
        event["body"] = payload
        mangle(event)

        response = webhook.lambda_handler(event, LocalContext(function_name="WebhookFunction"))

        assert response["statusCode"] == 400
        assert json.loads(response["body"])["detail"] == "the Stripe-Signature header is missing"
        assert rows(aws) == []

    def test_a_delivery_without_a_body_is_read_as_empty(self, webhook, aws):
        # Signed over nothing: the signature holds, and an empty body is no event
        event = http_api_event(
            "POST",
            "/stripe/webhook",
            headers={"stripe-signature": signature_header(b"", SECRET, int(time.time()))},
            route_key="POST /stripe/webhook",
        )
        event.pop("body", None)

        response = webhook.lambda_handler(event, LocalContext(function_name="WebhookFunction"))

        assert response["statusCode"] == 400
        assert json.loads(response["body"])["code"] == "event_malformed"


def failing(webhook, operation: str, error: Exception) -> None:
    """The webhook function's DynamoDB client fails `operation` with `error` (as the network would)."""

    def fail(**_: Any) -> None:
        raise error

    webhook.webhooks().customers._client.meta.events.register(f"before-call.dynamodb.{operation}", fail)


def throttled(operation: str) -> ClientError:
    return ClientError(
        {"Error": {"Code": "ProvisionedThroughputExceededException", "Message": "injected"}}, operation
    )


UNREACHABLE = EndpointConnectionError(endpoint_url="https://dynamodb.us-east-1.amazonaws.com")


class TestStoreFailures:
    """A store that fails answers 500, so that Stripe delivers the event again; the log says which call."""

    @pytest.mark.parametrize(
        ("kind", "operation", "error", "reason"),
        [
            (
                "customer.created",
                "GetItem",
                throttled("GetItem"),
                "customers table read failed: ProvisionedThroughputExceededException",
            ),
            (
                "customer.created",
                "GetItem",
                UNREACHABLE,
                "customers table read failed: EndpointConnectionError",
            ),
            (
                "customer.created",
                "PutItem",
                throttled("PutItem"),
                "customers table write failed: ProvisionedThroughputExceededException",
            ),
            (
                "customer.deleted",
                "PutItem",
                UNREACHABLE,
                "customers table write failed: EndpointConnectionError",
            ),
            (
                "customer.deleted",
                "Query",
                throttled("Query"),
                "customers index read failed: ProvisionedThroughputExceededException",
            ),
            (
                "customer.deleted",
                "Query",
                UNREACHABLE,
                "customers index read failed: EndpointConnectionError",
            ),
            (
                "customer.deleted",
                "Query",
                ClientError({"Error": {}}, "Query"),
                "customers index read failed: ClientError",
            ),
            (
                "customer.deleted",
                "DeleteItem",
                throttled("DeleteItem"),
                "customers table delete failed: ProvisionedThroughputExceededException",
            ),
            (
                "customer.deleted",
                "DeleteItem",
                UNREACHABLE,
                "customers table delete failed: EndpointConnectionError",
            ),
        ],
    )
    def test_a_failing_call_is_500_without_detail_and_logged_by_its_reason(
        self, webhook, aws, caplog, kind, operation, error, reason
    ):
        link_customer(aws, "user-1", "cus_A")
        failing(webhook, operation, error)

        response = deliver(webhook, stripe_event(kind, customer("cus_A", "user-1")))

        assert response["statusCode"] == 500
        body = json.loads(response["body"])
        assert body == {
            "type": "urn:portal-links:problem:store_unavailable",
            "title": "Temporarily unavailable",
            "status": 500,
            "code": "store_unavailable",
            "correlation_id": body["correlation_id"],
        }
        [logged] = [record for record in caplog.records if record.getMessage() == "dependency unavailable"]
        assert (logged.code, logged.reason) == ("store_unavailable", reason)


class TestTombstones:
    def test_a_deleted_customer_is_remembered_for_90_days(self, webhook, aws):
        deliver(webhook, stripe_event("customer.deleted", customer("cus_A", "user-1")))

        [tombstone] = rows(aws)
        assert tombstone["app_user_id"]["S"] == "#deleted#cus_A"
        assert abs(int(tombstone["expires_at"]["N"]) - (time.time() + 90 * 86400)) < 60

    def test_a_replayed_deletion_keeps_the_first_expiry(self, webhook, aws):
        first = {"app_user_id": {"S": "#deleted#cus_A"}, "deleted_customer_id": {"S": "cus_A"}}
        aws.put_item(TableName=TABLE, Item={**first, "expires_at": {"N": "1900000000"}})

        response = deliver(webhook, stripe_event("customer.deleted", customer("cus_A", "user-1")))

        assert action(response) == "not_linked"
        [tombstone] = rows(aws)
        assert tombstone["expires_at"]["N"] == "1900000000"


def test_the_readme_webhook_table_is_rendered_from_the_event_table():
    from local.docs import webhook_table

    assert webhook_table() in (Path(__file__).resolve().parents[2] / "README.md").read_text()
