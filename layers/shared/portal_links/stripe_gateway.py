"""The StripeClient, its key source and the handful of calls we make, typed with stripe's own params.

Transient failures (rate limits, 5xx, 409 lock conflicts, timeouts, resets, a body that is not JSON) are
retried by stripe-python (`max_network_retries`, honouring `Stripe-Should-Retry`), every attempt sized to
the request's deadline, and then surface as `StripeUnavailable`. Stripe's own error messages never leave
this module: they are logged by code, not echoed.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import stripe
from aws_lambda_powertools import Logger

from portal_links import api_versions
from portal_links.deadline import Deadline
from portal_links.errors import (
    CustomerGone,
    EventMalformed,
    PortalNotConfigured,
    SignatureInvalid,
    StripeRejected,
    StripeUnavailable,
)

if TYPE_CHECKING:
    from stripe.params import CustomerCreateParams, SubscriptionListParams
    from stripe.params.billing_portal import SessionCreateParams

    from portal_links.customers import StripeParty
    from portal_links.settings import StripeSettings, WebhookSettings

logger = Logger(child=True)
CONNECT_TIMEOUT_SECONDS = 2.0
# Below this, an attempt cannot finish; stop instead of starting one that the gateway would cut off.
MIN_ATTEMPT_SECONDS = 0.25
KEY_PREFIXES = ("sk_", "rk_")
SIGNATURE_TOLERANCE_SECONDS = 300
CREATION_KEY_FIELD = "portal_links_creation_key"  # customer metadata: the reservation that made it
# Stripe's 400 (invalid_request_error, no code) while no default portal configuration is saved, in the
# older and the newer wording: "…until you save your customer portal settings…" and "No configuration
# provided and your … default configuration has not been created…".
PORTAL_NOT_SAVED = ("save your customer portal settings", "default configuration has not been created")
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
    customer_account: str | None = None  # the Accounts v2 account the customer is, if it is one

    def belongs_to(self, party: StripeParty) -> bool:
        return party.id in (self.customer, self.customer_account)


class DeadlineRequestsClient(stripe.RequestsClient):
    """stripe-python's requests client with every attempt's timeouts cut to what the request has left."""

    def __init__(self, read_timeout: float, deadline: Deadline) -> None:
        super().__init__(timeout=(CONNECT_TIMEOUT_SECONDS, read_timeout))
        self._read_timeout = read_timeout
        self._deadline = deadline

    def request(  # type: ignore[override]  # RequestsClient.request's own signature
        self, method: str, url: str, headers: Mapping[str, str] | None, post_data: Any = None
    ) -> tuple[bytes, int, Mapping[str, str]]:
        left = self._deadline.remaining()
        if left < MIN_ATTEMPT_SECONDS:
            raise stripe.APIConnectionError(  # type: ignore[no-untyped-call]
                "the request's deadline has passed", should_retry=False
            )
        self._timeout = (min(CONNECT_TIMEOUT_SECONDS, left), min(self._read_timeout, left))
        return super().request(method, url, headers, post_data)


def secret_source(
    local: str | None, arn: str | None, max_age_seconds: int, what: str, valid: Callable[[str], bool]
) -> Callable[[], str]:
    """A Stripe secret: the local value, or the Secrets Manager secret `arn`, cached for `max_age_seconds`.
    A secret that cannot be read or is not `valid` makes the request a 503 and logs which one it was."""
    if local is not None:
        return lambda: local
    assert arn is not None  # settings guarantee exactly one of the two
    from aws_lambda_powertools.utilities.parameters import SecretsProvider
    from aws_lambda_powertools.utilities.parameters.exceptions import GetParameterError
    from botocore.config import Config

    provider = SecretsProvider(
        boto_config=Config(connect_timeout=2, read_timeout=3, retries={"mode": "standard", "max_attempts": 2})
    )

    def from_secrets_manager() -> str:
        try:
            value = str(provider.get(arn, max_age=max_age_seconds)).strip()
        except GetParameterError as exc:
            logger.error(f"the {what} could not be read from Secrets Manager", extra={"reason": str(exc)})
            raise StripeUnavailable("the payment provider is unavailable; try again shortly") from None
        if not valid(value):
            logger.error(f"the {what} secret does not hold what it should", extra={"secret": arn})
            raise StripeUnavailable("the payment provider is unavailable; try again shortly")
        return value

    return from_secrets_manager


def stripe_key_source(settings: StripeSettings) -> Callable[[], str]:
    """The API key: a secret (sk_…) or restricted (rk_…) key."""
    return secret_source(
        settings.api_key,
        settings.secret_arn,
        settings.key_max_age_seconds,
        "Stripe key",
        lambda key: key.startswith(KEY_PREFIXES),
    )


def signing_secrets_source(settings: WebhookSettings) -> Callable[[], list[str]]:
    """The webhook signing secrets: one, or two while it is being rolled (apart by whitespace or commas)."""
    read = secret_source(
        settings.signing_secret,
        settings.signing_secret_arn,
        settings.secret_max_age_seconds,
        "webhook signing secret",
        lambda value: (
            1 <= len(_secrets_in(value)) <= 2 and all(s.startswith("whsec_") for s in _secrets_in(value))
        ),
    )
    return lambda: _secrets_in(read())


def _secrets_in(value: str) -> list[str]:
    return value.replace(",", " ").split()


def verified_event(payload: str, signature: str | None, secrets: list[str]) -> dict[str, Any]:
    """The event in `payload` if `signature` (the Stripe-Signature header) is valid for any of `secrets`
    and at most five minutes old; stripe-python's own verifier checks every v1 signature in the header."""
    if not signature:
        raise SignatureInvalid("the Stripe-Signature header is missing")
    for secret in secrets:
        try:
            stripe.WebhookSignature.verify_header(
                payload, signature, secret, tolerance=SIGNATURE_TOLERANCE_SECONDS
            )
        except stripe.SignatureVerificationError:
            continue
        break
    else:
        raise SignatureInvalid("the Stripe-Signature header is not valid for this endpoint, or too old")
    try:
        event = json.loads(payload)
    except (ValueError, RecursionError):
        raise EventMalformed("the event is not JSON") from None
    if not isinstance(event, dict):
        raise EventMalformed("the event is not a JSON object")
    return event


class StripeGateway:
    def __init__(self, settings: StripeSettings, api_key: Callable[[], str], deadline: Deadline) -> None:
        self._settings = settings
        self._api_key = api_key
        self._deadline = deadline
        self._client: stripe.StripeClient | None = None
        self._client_key: str | None = None

    @classmethod
    def from_settings(cls, settings: StripeSettings, deadline: Deadline) -> StripeGateway:
        return cls(settings, stripe_key_source(settings), deadline)

    def create_customer(self, params: CustomerCreateParams, idempotency_key: str) -> CreatedCustomer:
        with _translated_errors("customers.create"):
            customer = self._stripe().v1.customers.create(
                params=params, options={"idempotency_key": idempotency_key}
            )
        return CreatedCustomer(id=customer.id, livemode=bool(customer.livemode))

    def create_portal_session(self, params: SessionCreateParams) -> str:
        """The session's URL; `CustomerGone` if Stripe has no such customer (deleted, or the other mode)."""
        try:
            with _translated_errors("billing_portal.sessions.create"):
                session = self._stripe().v1.billing_portal.sessions.create(params=params)
        except StripeRejected as error:
            cause = error.__cause__
            missing = isinstance(cause, stripe.InvalidRequestError) and cause.code == "resource_missing"
            if missing and getattr(cause, "param", None) == "customer":
                raise CustomerGone("the mapped Stripe customer no longer exists") from cause
            raise
        return str(session.url)

    def customer_made_with(self, creation_key: str) -> CreatedCustomer | None:
        """The customer whose metadata holds `creation_key`, found through Stripe's customer search."""
        query = f"metadata['{CREATION_KEY_FIELD}']:'{creation_key}'"
        with _translated_errors("customers.search"):
            found = self._stripe().v1.customers.search(params={"query": query, "limit": 1})
        return (
            CreatedCustomer(id=found.data[0].id, livemode=bool(found.data[0].livemode))
            if found.data
            else None
        )

    def livemode(self) -> bool:
        """Whether the key in use is a live-mode key (sk_live_…, rk_live_…): the mode of its customers."""
        return "_live_" in self._api_key()[:8]

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

    def subscriptions_of(self, party: StripeParty) -> list[Subscription]:
        params: SubscriptionListParams = {"limit": 100}
        params[party.parameter] = party.id
        with _translated_errors("subscriptions.list"):
            page = self._stripe().v1.subscriptions.list(params=params)
        return [_subscription(found) for found in page.data]

    def check_nameable(self, party: StripeParty) -> None:
        """Refuse, before any request, a party the pinned API version cannot name: a link to an Accounts v2
        account while STRIPE_API_VERSION predates `customer_account`. The operator's to fix, so a 503
        without Retry-After (portal_not_configured), and the log says what to set."""
        if not api_versions.has(self._settings.api_version, party.since_api_version):
            logger.error(
                "the mapping names an Accounts v2 account, which this Stripe API version cannot name",
                extra={
                    "parameter": party.parameter,
                    "pinned": self._settings.api_version,
                    "fix": f"set STRIPE_API_VERSION to {party.since_api_version} or later",
                },
            )
            raise PortalNotConfigured(
                "the billing portal is not set up for this account yet; the operator must update the"
                " Stripe API version"
            )

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
                http_client=DeadlineRequestsClient(self._settings.timeout_seconds, self._deadline),
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
    # Older API versions have no customer_account field at all.
    account = getattr(found, "customer_account", None)
    return Subscription(found.id, customer, found.status, bool(found.cancel_at_period_end), items, account)


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
        # APIError: 409 conflicts, 5xx, and any answer whose body is not Stripe's JSON (even a 200).
        transient = isinstance(exc, stripe.RateLimitError | stripe.APIConnectionError | stripe.APIError)
        if transient:
            logger.warning("Stripe unavailable after retries", extra=details)
            raise StripeUnavailable("the payment provider is unavailable; try again shortly") from exc
        if _portal_not_saved(exc):
            logger.error(
                "Stripe refuses portal sessions until the customer portal settings are saved in its Dashboard"
                " (Settings > Billing > Customer portal, in the same mode as the key)",
                extra=details,
            )
            raise PortalNotConfigured(
                "the billing portal is not set up yet; the operator must save the customer portal settings"
                " in the Stripe Dashboard"
            ) from exc
        logger.error("Stripe rejected a request", extra=details)
        raise StripeRejected("the payment provider refused the request") from exc


def _portal_not_saved(exc: stripe.StripeError) -> bool:
    message = (exc.user_message or "").lower()
    return isinstance(exc, stripe.InvalidRequestError) and any(text in message for text in PORTAL_NOT_SAVED)
