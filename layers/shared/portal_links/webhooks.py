"""The webhook pipeline: verify → read the event → mode → the event table → conditional writes.

Every rule only ever writes conditionally, so deliveries may repeat and arrive in any order and the
mapping ends the same: a link is made only where the subject has none in this mode (never over another
customer), a link is removed only if it still points at the deleted customer, and a deleted customer is
remembered so that a late `customer.created` cannot link it again.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any, NamedTuple

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import EphemeralMetrics, MetricUnit

from portal_links.customers import BillingSubject, CustomerLink, CustomerTable, Reservation
from portal_links.errors import EventMalformed
from portal_links.stripe_gateway import CREATION_KEY_FIELD, secrets_in, verified_event

logger = Logger(child=True)
metrics = Metrics()

CUSTOMER_ID = re.compile(r"cus_[A-Za-z0-9]{1,250}")
PARTY_ID = re.compile(r"(cus|acct)_[A-Za-z0-9]{1,250}")  # a customer, or an Accounts v2 account as one


class Change(NamedTuple):
    """What an event did to the mapping, as the response and the log line say it."""

    action: str  # linked, already_linked, pending, conflict, unlinked, not_linked, ignored
    reason: str = ""


class EventRule(NamedTuple):
    summary: str  # for the README's table
    apply: Callable[[CustomerTable, dict[str, Any], bool], Change]


def _customer_id(value: Any, pattern: re.Pattern[str] = CUSTOMER_ID) -> str:
    customer = value.get("id") if isinstance(value, dict) else value
    if not isinstance(customer, str) or not pattern.fullmatch(customer):
        raise EventMalformed("the event names no customer id")
    return customer


def _metadata(obj: dict[str, Any]) -> dict[str, Any]:
    metadata = obj.get("metadata")
    return metadata if isinstance(metadata, dict) else {}


def _link(table: CustomerTable, subject: BillingSubject, customer: str, livemode: bool, key: Any) -> Change:
    if table.is_buried(customer):
        return Change("ignored", "the customer was deleted")
    link = CustomerLink(subject.key, customer, livemode)
    stored = table.link_if_absent(link, key if isinstance(key, str) else None)
    if stored is link:
        return Change("linked")
    if isinstance(stored, CustomerLink) and stored.stripe_customer_id == customer:
        return Change("already_linked")
    if isinstance(stored, Reservation) or stored is None:
        return Change("pending", "a portal click is making this subject's customer")
    assert isinstance(stored, CustomerLink)
    logger.warning(
        "a webhook named another customer for a subject that already has one; the stored link is kept",
        extra={"stored_customer": stored.stripe_customer_id, "event_customer": customer},
    )
    metrics.add_metric(name="MappingConflicts", unit=MetricUnit.Count, value=1)
    return Change("conflict", "the subject is linked to another customer")


def link_customer(table: CustomerTable, customer: dict[str, Any], livemode: bool) -> Change:
    metadata = _metadata(customer)
    subject = BillingSubject.named_by(metadata)
    if subject is None:
        return Change("ignored", "no usable metadata.app_user_id or metadata.app_org_id")
    return _link(table, subject, _customer_id(customer), livemode, metadata.get(CREATION_KEY_FIELD))


def link_checkout(table: CustomerTable, session: dict[str, Any], livemode: bool) -> Change:
    subject = BillingSubject.referenced_by(session.get("client_reference_id"))
    if subject is None:
        return Change("ignored", "no usable client_reference_id")
    # A session for an Accounts v2 account names it as customer_account: the account is what gets linked.
    party = session.get("customer_account") or session.get("customer")
    if party is None:
        return Change("ignored", "the session made no customer")
    return _link(table, subject, _customer_id(party, PARTY_ID), livemode, None)


def unlink_customer(table: CustomerTable, customer: dict[str, Any], _: bool) -> Change:
    customer_id = _customer_id(customer)
    table.bury(customer_id)
    named = BillingSubject.named_by(_metadata(customer))
    keys = set(table.keys_linked_to(customer_id)) | ({named.key} if named else set())
    removed = [key for key in sorted(keys) if table.unlink(key, customer_id)]
    return Change("unlinked") if removed else Change("not_linked")


# The one table from event type to what it does to the mapping.
WEBHOOK_EVENTS: dict[str, EventRule] = {
    "customer.created": EventRule(
        "links the customer to the user in `metadata.app_user_id` or the organization in "
        "`metadata.app_org_id`, if that subject has none in this mode",
        link_customer,
    ),
    "customer.updated": EventRule("as `customer.created` (metadata added later links then)", link_customer),
    "customer.deleted": EventRule(
        "removes every link that still points at the customer, and keeps it from being linked again",
        unlink_customer,
    ),
    "checkout.session.completed": EventRule(
        "links the session's `customer_account` (an Accounts v2 account) or else its `customer` to the "
        "subject in `client_reference_id` (a user id, or `org:<organization id>`), if that subject has none",
        link_checkout,
    ),
}


class WebhookService:
    def __init__(self, customers: CustomerTable, signing_secrets: Callable[[], str], livemode: bool) -> None:
        self._customers = customers
        self._signing_secrets = signing_secrets
        self._livemode = livemode

    def handle(self, payload: str, signature: str | None) -> Change:
        event = verified_event(payload, signature, secrets_in(self._signing_secrets()))
        kind, livemode, obj = event.get("type"), event.get("livemode"), _object_of(event)
        if not isinstance(kind, str) or not isinstance(livemode, bool):
            raise EventMalformed("the event has no type or livemode")
        if livemode != self._livemode:
            change = Change("ignored", "an event of the other mode")
        elif kind not in WEBHOOK_EVENTS:
            change = Change("ignored", "an event type this endpoint does not use")
        else:
            change = WEBHOOK_EVENTS[kind].apply(self._customers, obj, livemode)
        logger.info(
            "webhook event handled",
            extra={
                "event_id": event.get("id"),
                "type": kind,
                "action": change.action,
                "reason": change.reason,
            },
        )
        count_event(change.action)
        return change


def _object_of(event: dict[str, Any]) -> dict[str, Any]:
    data = event.get("data")
    obj = data.get("object") if isinstance(data, dict) else None
    if not isinstance(obj, dict):
        raise EventMalformed("the event has no data.object")
    return obj


def count_event(action: str) -> None:
    """WebhookEvents by `action`, in a record of its own: the dimension must not reach other metrics."""
    by_action = EphemeralMetrics()
    by_action.add_dimension(name="action", value=action)
    by_action.add_metric(name="WebhookEvents", unit=MetricUnit.Count, value=1)
    by_action.flush_metrics()
