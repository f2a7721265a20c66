"""Wires the two pipelines for their handlers: each outside system's module builds its own client."""

from __future__ import annotations

from portal_links.customers import CustomerTable
from portal_links.deadline import Deadline
from portal_links.http import PortalHttp
from portal_links.identity import Authenticator
from portal_links.portal import PortalService
from portal_links.settings import load_settings, load_webhook_settings
from portal_links.stripe_gateway import StripeGateway, signing_secrets_source
from portal_links.webhooks import WebhookService


def compose_portal() -> tuple[PortalService, PortalHttp]:
    """Everything a container reuses across invocations: settings, clients, the JWKS cache."""
    settings = load_settings()
    deadline = Deadline(settings.request_deadline_seconds)
    service = PortalService(
        settings,
        Authenticator.from_settings(settings.auth),
        CustomerTable.from_settings(settings.customers_table),
        StripeGateway.from_settings(settings.stripe, deadline),
        deadline,
    )
    return service, PortalHttp(settings)


def compose_webhooks() -> WebhookService:
    """The webhook pipeline: the table and the signing secrets; it never calls Stripe."""
    settings = load_webhook_settings()
    return WebhookService(
        CustomerTable.from_settings(settings.customers_table),
        signing_secrets_source(settings),
        settings.livemode,
    )
