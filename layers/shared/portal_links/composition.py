"""Wires the portal pipeline for the handler: each outside system's module builds its own client."""

from __future__ import annotations

import random
from typing import NamedTuple

import botocore.session

from portal_links.customers import CustomerTable
from portal_links.deadline import Deadline
from portal_links.http import PortalHttp
from portal_links.identity import Authenticator, SigningKeys
from portal_links.portal import PortalService
from portal_links.settings import load_settings
from portal_links.stripe_gateway import StripeGateway


class Portal(NamedTuple):
    """Everything a container reuses across invocations: settings, clients, the JWKS cache."""

    service: PortalService
    http: PortalHttp
    customers: CustomerTable
    stripe: StripeGateway
    signing_keys: SigningKeys

    def prime(self) -> None:
        """SnapStart, before the snapshot: the first request's one-time work, with no request sent."""
        self.customers.prime()
        self.stripe.prime()

    def after_restore(self) -> None:
        """SnapStart: what copies restored from one snapshot must not share."""
        random.seed()  # botocore's and stripe-python's retry jitter draw from it
        self.customers.close_connections()
        self.stripe.after_restore()
        self.signing_keys.forget()


def compose_portal() -> Portal:
    settings = load_settings()
    deadline = Deadline(settings.request_deadline_seconds)
    # One session reads botocore's endpoint data once; plain botocore skips boto3's unused layers' imports.
    aws = botocore.session.get_session()
    signing_keys = SigningKeys(settings.auth)
    customers = CustomerTable.from_settings(settings.customers_table, aws)
    stripe = StripeGateway.from_settings(settings.stripe, deadline, aws)
    service = PortalService(settings, Authenticator(settings.auth, signing_keys), customers, stripe, deadline)
    return Portal(service, PortalHttp(settings), customers, stripe, signing_keys)
