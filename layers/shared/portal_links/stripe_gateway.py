"""The StripeClient and the handful of calls we make, typed with stripe's own params.

Transient failures (rate limits, 5xx, 409 lock conflicts, timeouts) are retried by stripe-python
(`max_network_retries`, honouring `Stripe-Should-Retry`) and then surface as `StripeUnavailable`.
Stripe's own error messages never leave this module: they are logged by code, not echoed.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import stripe
from aws_lambda_powertools import Logger

from portal_links.errors import StripeRejected, StripeUnavailable

if TYPE_CHECKING:
    from stripe.params import CustomerCreateParams
    from stripe.params.billing_portal import SessionCreateParams

    from portal_links.settings import StripeSettings

logger = Logger(child=True)
CONNECT_TIMEOUT_SECONDS = 2.0
# stripe-python's DEBUG lines carry response bodies, i.e. portal URLs; keep them off even at DEBUG log level.
logging.getLogger("stripe").setLevel(logging.INFO)


@dataclass(frozen=True)
class CreatedCustomer:
    id: str
    livemode: bool


@dataclass(frozen=True)
class SubscriptionItem:
    id: str
    price: str
    product: str
    quantity: int


@dataclass(frozen=True)
class Subscription:
    id: str
    customer: str
    status: str
    cancel_at_period_end: bool
    items: tuple[SubscriptionItem, ...]


class StripeGateway:
    def __init__(self, settings: StripeSettings, api_key: Callable[[], str]) -> None:
        self._settings = settings
        self._api_key = api_key
        self._client: stripe.StripeClient | None = None
        self._client_key: str | None = None

    def create_customer(self, params: CustomerCreateParams, idempotency_key: str) -> CreatedCustomer:
        with _translated_errors("customers.create"):
            customer = self._stripe().v1.customers.create(
                params=params, options={"idempotency_key": idempotency_key}
            )
        return CreatedCustomer(id=customer.id, livemode=bool(customer.livemode))

    def create_portal_session(self, params: SessionCreateParams) -> str:
        with _translated_errors("billing_portal.sessions.create"):
            session = self._stripe().v1.billing_portal.sessions.create(params=params)
        return str(session.url)

    def subscription(self, subscription_id: str) -> Subscription | None:
        """The subscription, or None if Stripe has no such subscription on this account."""
        try:
            with _translated_errors("subscriptions.retrieve"):
                found = self._stripe().v1.subscriptions.retrieve(subscription_id)
        except StripeRejected as error:
            cause = error.__cause__
            if isinstance(cause, stripe.InvalidRequestError) and cause.code == "resource_missing":
                return None
            raise
        return _subscription(found)

    def subscriptions_of(self, customer_id: str) -> list[Subscription]:
        with _translated_errors("subscriptions.list"):
            page = self._stripe().v1.subscriptions.list(params={"customer": customer_id, "limit": 100})
        return [_subscription(found) for found in page.data]

    def product_names(self, product_ids: set[str]) -> dict[str, str]:
        names = {}
        for product_id in sorted(product_ids):
            with _translated_errors("products.retrieve"):
                names[product_id] = str(self._stripe().v1.products.retrieve(product_id).name)
        return names

    def _stripe(self) -> stripe.StripeClient:
        # The key comes from Secrets Manager with a cache; a rotated key gets a new client.
        key = self._api_key()
        if self._client is None or key != self._client_key:
            base = {"api": self._settings.api_base} if self._settings.api_base else None
            self._client = stripe.StripeClient(
                key,
                stripe_version=self._settings.api_version,
                base_addresses=base,  # type: ignore[arg-type]
                max_network_retries=self._settings.max_network_retries,
                http_client=stripe.RequestsClient(
                    timeout=(CONNECT_TIMEOUT_SECONDS, self._settings.timeout_seconds)
                ),
            )
            self._client_key = key
        return self._client


def _subscription(found: stripe.Subscription) -> Subscription:
    items = tuple(
        SubscriptionItem(
            id=item.id,
            price=item.price.id,
            product=item.price.product if isinstance(item.price.product, str) else item.price.product.id,
            quantity=item.quantity or 1,
        )
        for item in found["items"].data
    )
    customer = found.customer if isinstance(found.customer, str) else found.customer.id
    return Subscription(found.id, customer, found.status, bool(found.cancel_at_period_end), items)


class _translated_errors:
    """Turns stripe-python exceptions into domain errors without carrying Stripe's message along."""

    def __init__(self, operation: str) -> None:
        self._operation = operation

    def __enter__(self) -> None:
        return None

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: object) -> None:
        if exc is None or not isinstance(exc, stripe.StripeError):
            return
        details = {
            "operation": self._operation,
            "stripe_status": exc.http_status,
            "stripe_code": exc.code,
            "stripe_request_id": exc.request_id,
        }
        transient = isinstance(exc, stripe.RateLimitError | stripe.APIConnectionError) or (
            isinstance(exc, stripe.APIError) and (exc.http_status or 500) >= 409
        )
        if transient:
            logger.warning("Stripe unavailable after retries", extra=details)
            raise StripeUnavailable("the payment provider is unavailable; try again shortly") from exc
        logger.error("Stripe rejected a request", extra=details)
        raise StripeRejected("the payment provider refused the request") from exc
