"""The portal service: app user → Stripe customer → portal session URL; the one place steps are ordered."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import MetricUnit

from portal_links.customers import CustomerLink, CustomerTable, new_link
from portal_links.errors import NoBillingAccount
from portal_links.identity import AppUser, Authenticator, SigningKeys
from portal_links.redirects import ReturnUrls
from portal_links.settings import MissingCustomerPolicy, Settings
from portal_links.stripe_gateway import StripeGateway

if TYPE_CHECKING:
    from stripe.params import CustomerCreateParams
    from stripe.params.billing_portal import SessionCreateParams

logger = Logger(child=True)
metrics = Metrics()


@dataclass(frozen=True)
class PortalLinkRequest:
    """What the HTTP layer hands the service: the credential and the parameters the client may choose."""

    token: str | None
    return_to: str | None = None


class PortalService:
    def __init__(
        self,
        settings: Settings,
        authenticator: Authenticator,
        customers: CustomerTable,
        stripe: StripeGateway,
    ) -> None:
        self._settings = settings
        self._authenticator = authenticator
        self._customers = customers
        self._stripe = stripe
        self.return_urls = ReturnUrls(settings)

    def create_link(self, request: PortalLinkRequest) -> str:
        user = self._authenticator.authenticate(request.token)
        return_url = self.return_urls.resolve(request.return_to)
        customer = self.customer_for(user)
        params: SessionCreateParams = {"customer": customer.stripe_customer_id, "return_url": return_url}
        url = self._stripe.create_portal_session(params)
        metrics.add_metric(name="PortalSessionsCreated", unit=MetricUnit.Count, value=1)
        logger.info("portal session created", extra={"stripe_customer_id": customer.stripe_customer_id})
        return url

    def customer_for(self, user: AppUser) -> CustomerLink:
        """The user's Stripe customer, created exactly once even when first clicks race."""
        existing = self._customers.get(user.user_id)
        if existing is not None:
            return existing
        if self._settings.missing_customer is MissingCustomerPolicy.REFUSE:
            raise NoBillingAccount("there is no billing account for this user")
        params: CustomerCreateParams = {"metadata": {"app_user_id": user.user_id}}
        if user.email:
            params["email"] = user.email
        if user.name:
            params["name"] = user.name
        # Racing first clicks send the same key, so Stripe hands every one of them the same customer.
        created = self._stripe.create_customer(params, idempotency_key=customer_idempotency_key(user.user_id))
        stored = self._customers.put_if_absent(new_link(user.user_id, created.id, created.livemode))
        if stored.stripe_customer_id == created.id:
            metrics.add_metric(name="CustomersCreated", unit=MetricUnit.Count, value=1)
        else:
            logger.warning(
                "another Stripe customer is already linked to this user; keeping the stored one",
                extra={"stored_customer": stored.stripe_customer_id, "unlinked_customer": created.id},
            )
        return stored


def customer_idempotency_key(app_user_id: str) -> str:
    digest = hashlib.sha256(app_user_id.encode()).hexdigest()
    return f"portal-links-customer-{digest}"


def build_portal_service(settings: Settings) -> PortalService:
    """Everything a container reuses across invocations: clients, the JWKS cache, settings."""
    import boto3
    from botocore.config import Config

    dynamodb = boto3.client(
        "dynamodb",
        config=Config(connect_timeout=2, read_timeout=3, retries={"mode": "standard", "max_attempts": 3}),
    )
    return PortalService(
        settings,
        Authenticator(settings.auth, SigningKeys(settings.auth)),
        CustomerTable(dynamodb, settings.customers_table),
        StripeGateway(settings.stripe, _stripe_api_key(settings)),
    )


def _stripe_api_key(settings: Settings) -> Callable[[], str]:
    local_key = settings.stripe.api_key
    if local_key is not None:
        return lambda: local_key
    secret_arn = settings.stripe.secret_arn
    assert secret_arn is not None  # settings guarantee exactly one of the two

    def from_secrets_manager() -> str:
        from aws_lambda_powertools.utilities import parameters

        return parameters.get_secret(secret_arn, max_age=300).strip()

    return from_secrets_manager
