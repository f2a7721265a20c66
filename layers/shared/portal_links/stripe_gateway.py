"""The StripeClient, its key source and the handful of calls we make, typed with stripe's own params.

Transient failures (rate limits, 5xx, 409 lock conflicts, timeouts, resets, a body that is not JSON) are
retried by stripe-python (`max_network_retries`, honouring `Stripe-Should-Retry`), every attempt sized to
the request's deadline, and then surface as `StripeUnavailable`. Stripe's own error messages never leave
this module: they are logged by code, not echoed.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, NamedTuple, Protocol

import stripe
from aws_lambda_powertools import Logger
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

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
from portal_links.priming import answered_locally

if TYPE_CHECKING:
    from botocore.session import Session as AwsSession
    from stripe import RequestOptions
    from stripe.params import CustomerCreateParams, SubscriptionListParams
    from stripe.params.billing_portal import SessionCreateParams

    from portal_links.customers import StripeParty
    from portal_links.settings import StripeSettings, WebhookSettings

logger = Logger(child=True)
CONNECT_TIMEOUT_SECONDS = 2.0
# Below this, an attempt cannot finish; stop instead of starting one that the gateway would cut off.
MIN_ATTEMPT_SECONDS = 0.25
KEY_PREFIXES = ("sk_", "rk_")
PAGE_SIZE = 100  # Stripe's largest list page
SIGNATURE_TOLERANCE_SECONDS = 300
CREATION_KEY_FIELD = "portal_links_creation_key"  # customer metadata: the reservation that made it
# Stripe's 400 (invalid_request_error, no code) while no default portal configuration is saved, in the
# older and the newer wording: "…until you save your customer portal settings…" and "No configuration
# provided and your … default configuration has not been created…".
PORTAL_NOT_SAVED = ("save your customer portal settings", "default configuration has not been created")
# stripe-python's DEBUG lines carry response bodies, i.e. portal URLs; keep them off even at DEBUG log level.
logging.getLogger("stripe").setLevel(logging.INFO)


class CreatedCustomer(NamedTuple):
    id: str
    livemode: bool


class SubscriptionItem(NamedTuple):
    id: str
    price: str
    product: str
    quantity: int


class Subscription(NamedTuple):
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
        self._answer: bytes | None = None

    def request(  # type: ignore[override]  # RequestsClient.request's own signature
        self, method: str, url: str, headers: Mapping[str, str] | None, post_data: Any = None
    ) -> tuple[bytes, int, Mapping[str, str]]:
        left = self._deadline.remaining()
        if left < MIN_ATTEMPT_SECONDS:
            raise stripe.APIConnectionError(  # type: ignore[no-untyped-call]
                "the request's deadline has passed", should_retry=False
            )
        if self._answer is not None:
            return self._answer, 200, {}
        self._timeout = (min(CONNECT_TIMEOUT_SECONDS, left), min(self._read_timeout, left))
        return super().request(method, url, headers, post_data)

    @contextmanager
    def answering(self, body: bytes) -> Iterator[None]:
        """Every request answered 200 with `body`, nothing sent: SnapStart priming only."""
        self._answer = body
        try:
            yield
        finally:
            self._answer = None

    def close_connections(self) -> None:
        """Drop the requests session and its pool; the next request opens its own connection."""
        session = getattr(self._thread_local, "session", None)
        if session is not None:
            session.close()
            self._thread_local.session = None


class KeySource(Protocol):
    def __call__(self) -> str: ...
    def forget(self) -> None: ...  # the next call reads the key again
    def prime(self) -> None: ...  # SnapStart: the first read's one-time work, without reading the key


class LocalKey:
    def __init__(self, key: str) -> None:
        self._key = key

    def __call__(self) -> str:
        return self._key

    def forget(self) -> None:
        return None

    def prime(self) -> None:
        return None


def secret_source(
    local: str | None, arn: str | None, max_age: int, aws: AwsSession, what: str, valid: Callable[[str], bool]
) -> KeySource:
    """A Stripe secret: the local value, or the Secrets Manager secret `arn`, cached for `max_age` seconds."""
    if local is not None:
        return LocalKey(local)
    assert arn is not None  # settings guarantee exactly one of the two
    config = Config(connect_timeout=2, read_timeout=3, retries={"mode": "standard", "max_attempts": 2})
    return SecretsManagerKey(aws.create_client("secretsmanager", config=config), arn, max_age, what, valid)


def stripe_key_source(settings: StripeSettings, aws: AwsSession) -> KeySource:
    """The API key: a secret (sk_…) or restricted (rk_…) key."""
    return secret_source(
        settings.api_key,
        settings.secret_arn,
        settings.key_max_age_seconds,
        aws,
        "Stripe key",
        lambda key: key.startswith(KEY_PREFIXES),
    )


def signing_secrets_source(settings: WebhookSettings, aws: AwsSession) -> KeySource:
    """The webhook signing secrets: one, or two while it is being rolled (apart by whitespace or commas)."""
    return secret_source(
        settings.signing_secret,
        settings.signing_secret_arn,
        settings.secret_max_age_seconds,
        aws,
        "webhook signing secret",
        lambda value: (
            1 <= len(secrets_in(value)) <= 2 and all(s.startswith("whsec_") for s in secrets_in(value))
        ),
    )


def secrets_in(value: str) -> list[str]:
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


class SecretsManagerKey:
    """A secret held in Secrets Manager, read again once it is `max_age` seconds old (rotation)."""

    def __init__(
        self,
        client: Any,
        secret_arn: str,
        max_age: float,
        what: str,
        valid: Callable[[str], bool],
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._client = client
        self._secret_arn = secret_arn
        self._max_age = max_age
        self._what = what
        self._valid = valid
        self._clock = clock
        self._key: str | None = None
        self._read_at = 0.0

    def __call__(self) -> str:
        now = self._clock()
        if self._key is None or now - self._read_at >= self._max_age:
            self._key, self._read_at = self._read(), now
        return self._key

    def forget(self) -> None:
        """The next call reads the secret again."""
        self._key = None

    def prime(self) -> None:
        with answered_locally(self._client, {"SecretString": "sk_priming"}):
            self._client.get_secret_value(SecretId=self._secret_arn)

    def _read(self) -> str:
        try:
            value = self._client.get_secret_value(SecretId=self._secret_arn).get("SecretString") or ""
        except (ClientError, BotoCoreError) as exc:
            reason = exc.response.get("Error", {}).get("Code") if isinstance(exc, ClientError) else None
            logger.error(
                f"the {self._what} could not be read from Secrets Manager",
                extra={"reason": reason or type(exc).__name__},
            )
            raise StripeUnavailable("the payment provider is unavailable; try again shortly") from None
        key = str(value).strip()
        if not self._valid(key):
            logger.error(
                f"the {self._what} secret does not hold what it should", extra={"secret": self._secret_arn}
            )
            raise StripeUnavailable("the payment provider is unavailable; try again shortly")
        return key


class StripeGateway:
    def __init__(self, settings: StripeSettings, api_key: KeySource, deadline: Deadline) -> None:
        self._settings = settings
        self._api_key = api_key
        self._http = DeadlineRequestsClient(settings.timeout_seconds, deadline)
        base = {"api": settings.api_base} if settings.api_base else None
        # Built once, so a SnapStart snapshot keeps it; every call brings the current key (rotation).
        self._client = stripe.StripeClient(
            "sk_given_per_request",
            stripe_version=settings.api_version,
            base_addresses=base,  # type: ignore[arg-type]
            max_network_retries=settings.max_network_retries,
            http_client=self._http,
        )

    @classmethod
    def from_settings(cls, settings: StripeSettings, deadline: Deadline, aws: AwsSession) -> StripeGateway:
        return cls(settings, stripe_key_source(settings, aws), deadline)

    def create_customer(self, params: CustomerCreateParams, idempotency_key: str) -> CreatedCustomer:
        with _translated_errors("customers.create"):
            customer = self._client.v1.customers.create(
                params=params, options=self._options(idempotency_key=idempotency_key)
            )
        return CreatedCustomer(id=customer.id, livemode=bool(customer.livemode))

    def create_portal_session(self, params: SessionCreateParams) -> str:
        """The session's URL; `CustomerGone` if Stripe has no such customer (deleted, or the other mode)."""
        try:
            with _translated_errors("billing_portal.sessions.create"):
                session = self._client.v1.billing_portal.sessions.create(
                    params=params, options=self._options()
                )
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
            found = self._client.v1.customers.search(
                params={"query": query, "limit": 1}, options=self._options()
            )
        if not found.data:
            return None
        return CreatedCustomer(id=found.data[0].id, livemode=bool(found.data[0].livemode))

    def livemode(self) -> bool:
        """Whether the key in use is a live-mode key (sk_live_…, rk_live_…): the mode of its customers."""
        return "_live_" in self._api_key()[:8]

    def subscription(self, subscription_id: str) -> Subscription | None:
        """The subscription, or None if Stripe has no such subscription on this account."""
        try:
            with _translated_errors("subscriptions.retrieve"):
                found = self._client.v1.subscriptions.retrieve(subscription_id, options=self._options())
        except StripeRejected as error:
            cause = error.__cause__
            if isinstance(cause, stripe.InvalidRequestError) and cause.code == "resource_missing":
                return None
            raise
        return _subscription(found)

    def subscriptions_of(self, party: StripeParty) -> list[Subscription]:
        params: SubscriptionListParams = {"limit": PAGE_SIZE}
        params[party.parameter] = party.id
        with _translated_errors("subscriptions.list"):
            page = self._client.v1.subscriptions.list(params=params, options=self._options())
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
        """One list call per 100 products: Stripe expands at most four levels, and a subscription list's
        `data.items.data.price.product` is five, so the names cannot come with the subscriptions."""
        ids, names = sorted(product_ids), {}
        for start in range(0, len(ids), PAGE_SIZE):
            with _translated_errors("products.list"):
                page = self._client.v1.products.list(
                    params={"ids": ids[start : start + PAGE_SIZE], "limit": PAGE_SIZE},
                    options=self._options(),
                )
            names.update({product.id: str(product.name) for product in page.data})
        return names

    def prime(self) -> None:
        """SnapStart, before the snapshot: each call we make, through stripe-python, answered here."""
        self._api_key.prime()
        v1, options = self._client.v1, _PRIMING_OPTIONS
        with self._http.answering(b'{"id": "bps_priming", "object": "billing_portal.session", "url": ""}'):
            v1.billing_portal.sessions.create(params={"customer": "cus_priming"}, options=options)
        with self._http.answering(b'{"id": "cus_priming", "object": "customer", "livemode": false}'):
            v1.customers.create(params={}, options=options)
        with self._http.answering(_PRIMING_SUBSCRIPTION):
            _subscription(v1.subscriptions.retrieve("sub_priming", options=options))
        with self._http.answering(b'{"object": "list", "data": [%s]}' % _PRIMING_SUBSCRIPTION):
            v1.subscriptions.list(options=options)
        with self._http.answering(b'{"object": "list", "data": [{"id": "prod_p", "object": "product"}]}'):
            v1.products.list(options=options)

    def after_restore(self) -> None:
        """A restored copy opens its own connections and reads the key again (it may have rotated)."""
        self._http.close_connections()
        self._api_key.forget()

    def _options(self, **options: str) -> RequestOptions:
        return {"api_key": self._api_key(), **options}  # type: ignore[typeddict-item]


_PRIMING_OPTIONS: RequestOptions = {"api_key": "sk_priming"}
_PRIMING_SUBSCRIPTION = (
    b'{"id": "sub_priming", "object": "subscription", "customer": "cus_priming", "status": "active", '
    b'"cancel_at_period_end": false, '
    b'"items": {"object": "list", "data": [{"id": "si_priming", "object": "subscription_item", '
    b'"price": {"id": "price_priming", "object": "price", "product": "prod_priming"}, "quantity": 1}]}}'
)


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
