"""Wires the two pipelines for their handlers: each outside system's module builds its own client."""

from __future__ import annotations

import random
from typing import NamedTuple

import botocore.session

from portal_links.customers import CustomerTable
from portal_links.deadline import Deadline
from portal_links.http import PortalHttp
from portal_links.identity import Authenticator
from portal_links.portal import PortalService
from portal_links.settings import load_settings, load_webhook_settings
from portal_links.stripe_gateway import KeySource, StripeGateway, signing_secrets_source
from portal_links.webhooks import WebhookService


class Portal(NamedTuple):
    """Everything a container reuses across invocations: settings, clients, the JWKS cache."""

    service: PortalService
    http: PortalHttp
    customers: CustomerTable
    stripe: StripeGateway
    authenticator: Authenticator

    def prime(self) -> None:
        """SnapStart, before the snapshot: the first request's one-time work, with no request sent."""
        self.customers.prime()
        self.stripe.prime()

    def after_restore(self) -> None:
        """SnapStart: what copies restored from one snapshot must not share."""
        random.seed()  # botocore's and stripe-python's retry jitter draw from it
        self.customers.close_connections()
        self.stripe.after_restore()
        self.authenticator.forget_keys()


def compose_portal() -> Portal:
    settings = load_settings()
    deadline = Deadline(settings.request_deadline_seconds)
    # One session reads botocore's endpoint data once; plain botocore skips boto3's unused layers' imports.
    aws = botocore.session.get_session()
    authenticator = Authenticator.from_settings(settings.auth)
    customers = CustomerTable.from_settings(settings.customers_table, aws)
    stripe = StripeGateway.from_settings(settings.stripe, deadline, aws)
    service = PortalService(settings, authenticator, customers, stripe, deadline)
    return Portal(service, PortalHttp(settings), customers, stripe, authenticator)


class Webhooks(NamedTuple):
    """The webhook pipeline and what it holds: the table and the signing secrets; it never calls Stripe."""

    service: WebhookService
    customers: CustomerTable
    signing_secrets: KeySource

    def after_restore(self) -> None:
        self.customers.close_connections()
        self.signing_secrets.forget()


def compose_webhooks() -> Webhooks:
    settings = load_webhook_settings()
    aws = botocore.session.get_session()
    customers = CustomerTable.from_settings(settings.customers_table, aws)
    secrets = signing_secrets_source(settings, aws)
    return Webhooks(WebhookService(customers, secrets, settings.livemode), customers, secrets)
