"""The portal path keeps the mapping true: stale links are replaced, a failed row write is recovered after
Stripe has forgotten the idempotency key, and customers made by Checkout are used."""

from __future__ import annotations

import json
import time

import pytest
from botocore.exceptions import ClientError

from tests.conftest import APP, TABLE, link_customer, portal_session, problem, rows

DAY = 24 * 3600


def linked(aws) -> dict[str, str]:
    return {
        row["app_user_id"]["S"]: row["stripe_customer_id"]["S"]
        for row in rows(aws)
        if "stripe_customer_id" in row
    }


class TestStaleLinks:
    def test_a_customer_deleted_at_stripe_is_replaced_on_the_next_click(
        self, handler, identity, stripe, stripe_api, aws
    ):
        # Given a user whose customer was deleted in the Dashboard
        old = stripe.add_customer(email="ann@example.com", metadata={"app_user_id": "user-1"})
        link_customer(aws, "user-1", old)
        stripe_api.v1.customers.delete(old)

        # When the user clicks "Manage subscription"
        response = handler.request(
            token=identity.token("user-1", email="ann@example.com"), accept="application/json"
        )

        # Then a new customer is made and linked, and the portal opens for it
        assert response["statusCode"] == 200
        [new] = stripe.customers()
        assert portal_session(response, stripe)["customer"] == new["id"]
        assert new["id"] != old
        assert new["metadata"]["app_user_id"] == "user-1"
        assert linked(aws) == {"user-1": new["id"]}
        [failed, session] = stripe.requests_to("POST", "/v1/billing_portal/sessions")
        assert failed.params["customer"] == old
        assert failed.status == 400
        assert session.params["customer"] == new["id"]
        assert session.status == 200

    def test_a_link_from_the_other_mode_is_replaced_before_calling_stripe(
        self, handler, identity, stripe, aws
    ):
        # Given a row written while the stack ran on a live key; the key is a test key now
        aws.put_item(
            TableName=TABLE,
            Item={
                "app_user_id": {"S": "user-1"},
                "stripe_customer_id": {"S": "cus_LiveModeCustomer"},
                "livemode": {"BOOL": True},
                "created_at": {"S": "2026-01-01T00:00:00+00:00"},
            },
        )

        response = handler.request(token=identity.token("user-1"), accept="application/json")

        assert response["statusCode"] == 200
        [new] = stripe.customers()
        assert linked(aws) == {"user-1": new["id"]}
        assert portal_session(response, stripe)["customer"] == new["id"]
        [session] = stripe.requests_to("POST", "/v1/billing_portal/sessions")
        assert session.params["customer"] == new["id"]

    def test_the_replacement_is_logged_and_counted(
        self, handler, identity, stripe, stripe_api, aws, capsys, caplog
    ):
        old = stripe.add_customer()
        link_customer(aws, "user-1", old)
        stripe_api.v1.customers.delete(old)

        response = handler.request(token=identity.token("user-1"))

        portal_session(response, stripe)
        emitted = [json.loads(line) for line in capsys.readouterr().out.splitlines() if line.startswith("{")]
        assert any(line.get("StaleCustomersReplaced") == [1.0] for line in emitted)
        assert any(r.getMessage().startswith("the mapped Stripe customer is stale") for r in caplog.records)

    def test_under_refuse_a_stale_link_is_no_billing_account(
        self, redeploy, handler, identity, stripe, stripe_api, aws
    ):
        redeploy(MISSING_CUSTOMER="refuse")
        old = stripe.add_customer()
        link_customer(aws, "user-1", old)
        stripe_api.v1.customers.delete(old)

        response = handler.request(token=identity.token("user-1"), accept="application/json")

        assert response["statusCode"] == 404
        assert problem(response)["code"] == "no_billing_account"
        assert stripe.customers() == []
        assert linked(aws) == {"user-1": old}

    def test_a_subscription_flow_for_a_deleted_customer_finds_no_subscription(
        self, handler, identity, stripe, stripe_api, aws
    ):
        old = stripe.add_customer()
        stripe.add_subscription(old, [stripe.add_price(stripe.add_product("Pro"), 1000)])
        link_customer(aws, "user-1", old)
        stripe_api.v1.customers.delete(old)  # which cancels its subscriptions, as on Stripe

        response = handler.request(
            path="/portal/subscription_cancel", token=identity.token("user-1"), accept="application/json"
        )

        assert response["statusCode"] == 409
        assert problem(response)["code"] == "no_subscription"
        assert stripe.customers() == []


def click_whose_row_write_fails(handler, token: str, accept: str | None = "application/json") -> dict:
    """A click during which DynamoDB refuses the write that completes the reservation (at the client's edge,
    as a throttled or failed PutItem would)."""
    client = handler.module.portal()[0]._customers._client

    def fail_the_completing_write(params, **_):
        if params.get("ConditionExpression") == "creation_key = :key":
            raise ClientError({"Error": {"Code": "InternalServerError", "Message": "injected"}}, "PutItem")

    client.meta.events.register("provide-client-params.dynamodb.PutItem", fail_the_completing_write)
    try:
        response: dict = handler.request(token=token, accept=accept)
        return response
    finally:
        client.meta.events.unregister("provide-client-params.dynamodb.PutItem", fail_the_completing_write)


class TestDurableCreation:
    def test_a_failed_row_write_is_recovered_after_stripe_forgot_the_key(
        self, handler, identity, stripe, aws
    ):
        # Given a first click whose customer was made but whose row write then failed
        first = click_whose_row_write_fails(handler, identity.token("user-1"))
        assert first["statusCode"] == 503
        assert problem(first)["code"] == "store_unavailable"
        [made] = stripe.customers()
        [reservation] = rows(aws)
        assert "stripe_customer_id" not in reservation

        # And the clock moves on 25 hours: Stripe has forgotten the idempotency key, the marker is that old
        stripe.advance_clock(25 * 3600)
        aged = str(float(reservation["reserved_at"]["N"]) - 25 * 3600)
        aws.update_item(
            TableName=TABLE,
            Key={"app_user_id": {"S": "user-1"}},
            UpdateExpression="SET reserved_at = :aged",
            ExpressionAttributeValues={":aged": {"N": aged}},
        )

        # When the user comes back
        second = handler.request(token=identity.token("user-1"), accept="application/json")

        # Then the customer made the first time is found by its creation key and linked: one customer
        assert second["statusCode"] == 200
        assert portal_session(second, stripe)["customer"] == made["id"]
        assert [c["id"] for c in stripe.customers()] == [made["id"]]
        assert linked(aws) == {"user-1": made["id"]}
        [search] = stripe.requests_to("GET", "/v1/customers/search")
        assert (
            search.params["query"]
            == f"metadata['portal_links_creation_key']:'{reservation['creation_key']['S']}'"
        )

    def test_within_a_day_the_idempotency_key_alone_finds_the_customer(self, handler, identity, stripe, aws):
        first = click_whose_row_write_fails(handler, identity.token("user-1"), accept=None)
        # a browser goes back to the app, told when to try again
        assert first["statusCode"] == 303
        assert first["headers"]["Location"] == f"{APP}/account?portal_error=store_unavailable"
        assert first["headers"]["Retry-After"] == "5"
        assert first["body"] == ""

        response = handler.request(token=identity.token("user-1"), accept="application/json")

        assert response["statusCode"] == 200
        [made] = stripe.customers()
        assert portal_session(response, stripe)["customer"] == made["id"]
        assert linked(aws) == {"user-1": made["id"]}
        assert stripe.requests_to("GET", "/v1/customers/search") == []
        [_, replay] = stripe.requests_to("POST", "/v1/customers")
        assert replay.status == 200

    def test_rows_written_before_reservations_existed_keep_working(self, handler, identity, stripe, aws):
        customer = stripe.add_customer()
        link_customer(aws, "user-1", customer)  # the old shape: no creation_key, no reserved_at

        response = handler.request(token=identity.token("user-1"), accept="application/json")

        assert response["statusCode"] == 200
        assert portal_session(response, stripe)["customer"] == customer
        assert stripe.requests_to("POST", "/v1/customers") == []
        [session] = stripe.requests_to("POST", "/v1/billing_portal/sessions")
        assert session.params["customer"] == customer

    def test_a_link_written_before_livemode_was_kept_is_a_test_mode_link(
        self, handler, identity, stripe, aws
    ):
        # Given the first rows' shape: a user id and a customer id, nothing else
        customer = stripe.add_customer()
        aws.put_item(
            TableName=TABLE, Item={"app_user_id": {"S": "user-1"}, "stripe_customer_id": {"S": customer}}
        )

        response = handler.request(token=identity.token("user-1"), accept="application/json")

        # Then a test-mode deployment uses that customer as it is: no new customer, the row unchanged
        assert portal_session(response, stripe)["customer"] == customer
        assert stripe.requests_to("POST", "/v1/customers") == []
        assert rows(aws) == [{"app_user_id": {"S": "user-1"}, "stripe_customer_id": {"S": customer}}]


@pytest.mark.parametrize("subject", ["#deleted#cus_x", "#org#acme"])
def test_subjects_that_would_collide_with_the_tables_own_keys_are_refused(
    handler, identity, stripe, aws, subject
):
    response = handler.request(token=identity.token(subject), accept="application/json")

    assert response["statusCode"] == 401
    assert problem(response)["code"] == "unauthenticated"
    assert problem(response)["detail"] == "the token has no usable subject"
    assert stripe.requests() == []
    assert rows(aws) == []


class TestReservations:
    def test_a_click_whose_customer_cannot_be_made_leaves_its_reservation_naming_its_maker(
        self, handler, identity, stripe, aws
    ):
        stripe.inject_fault("POST", "/v1/customers", 400, error_type="invalid_request_error")

        response = handler.request(
            token=identity.token("user-1", email="ann@example.com"), accept="application/json"
        )

        assert response["statusCode"] == 502
        assert problem(response)["code"] == "stripe_rejected"
        [row] = rows(aws)
        assert set(row) == {"app_user_id", "creation_key", "reserved_at", "reserved_by", "reserved_by_email"}
        assert (row["reserved_by"], row["reserved_by_email"]) == ({"S": "user-1"}, {"S": "ann@example.com"})

    def test_a_reservation_that_lands_between_the_read_and_the_reserve_is_the_one_used(
        self, handler, identity, stripe, aws
    ):
        # Given another container's click that reserves the row just after this one found it empty
        theirs = {
            "app_user_id": {"S": "user-1"},
            "creation_key": {"S": "0ddba11" + "0" * 25},
            "reserved_at": {"N": str(time.time())},
            "reserved_by": {"S": "user-1"},
            "reserved_by_email": {"S": "ann@example.com"},
        }
        client = handler.module.portal()[0]._customers._client

        def theirs_first(params, **_):
            if params.get("ConditionExpression", "").startswith("attribute_not_exists"):
                aws.put_item(TableName=TABLE, Item=theirs)
                client.meta.events.unregister("provide-client-params.dynamodb.PutItem", theirs_first)

        client.meta.events.register("provide-client-params.dynamodb.PutItem", theirs_first)

        response = handler.request(token=identity.token("user-1"), accept="application/json")

        # Then this click makes the customer that reservation stands for, under its key, once
        [customer] = stripe.customers()
        assert portal_session(response, stripe)["customer"] == customer["id"]
        assert customer["metadata"]["portal_links_creation_key"] == theirs["creation_key"]["S"]
        assert customer["email"] == "ann@example.com"
        [row] = rows(aws)
        assert row["stripe_customer_id"] == {"S": customer["id"]}
