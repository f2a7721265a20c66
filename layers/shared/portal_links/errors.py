"""What can go wrong, in the domain's words: each error has a stable `code`; http maps it to a status."""

from __future__ import annotations

from typing import Any, ClassVar


class ConfigurationError(Exception):
    """A setting is missing or invalid; the message names it. Raised at cold start, never per request."""

    def __init__(self, setting: str, problem: str) -> None:
        super().__init__(f"{setting}: {problem}")
        self.setting = setting


class PortalError(Exception):
    code: ClassVar[str] = "internal_error"

    def __init__(self, detail: str, *, param: str | None = None, extra: dict[str, Any] | None = None) -> None:
        super().__init__(detail)
        self.detail = detail
        self.param = param
        self.extra = extra or {}


class Unauthenticated(PortalError):
    code = "unauthenticated"


class CsrfRejected(PortalError):
    code = "csrf_rejected"


class OrganizationRequired(PortalError):
    """Organization mode: the token names no organization (none is active, or it names several)."""

    code = "organization_required"


class BillingRoleRequired(PortalError):
    """Organization mode: the member's role in the organization may not open its billing portal."""

    code = "billing_role_required"


class InvalidParameter(PortalError):
    code = "invalid_parameter"


class UnknownParameter(PortalError):
    code = "unknown_parameter"


class NoBillingAccount(PortalError):
    code = "no_billing_account"


class RouteNotFound(PortalError):
    code = "not_found"


class UnknownFlow(PortalError):
    code = "unknown_flow"


class SubscriptionNotFound(PortalError):
    code = "subscription_not_found"


class NoSubscription(PortalError):
    code = "no_subscription"


class SubscriptionAmbiguous(PortalError):
    code = "subscription_ambiguous"


class SubscriptionNotCancelable(PortalError):
    code = "subscription_not_cancelable"


class SubscriptionNotUpdatable(PortalError):
    code = "subscription_not_updatable"


class UnchangedSubscription(PortalError):
    code = "subscription_unchanged"


class Unavailable(PortalError):
    """A dependency is down or slow; the client may retry after `retry_after` seconds."""

    retry_after: ClassVar[int] = 5


class StripeUnavailable(Unavailable):
    code = "stripe_unavailable"


class StoreUnavailable(Unavailable):
    code = "store_unavailable"


class IdentityProviderUnavailable(Unavailable):
    code = "identity_provider_unavailable"


class StripeRejected(PortalError):
    """Stripe refused a request we built; a bug or a misconfiguration, never the client's fault."""

    code = "stripe_rejected"


class CustomerGone(StripeRejected):
    """The mapped customer does not exist at Stripe (deleted, or made in the other mode): the link is stale.
    The pipeline replaces it; only if that fails too does the client see it, as stripe_rejected."""


class WebhookRefused(PortalError):
    """A webhook delivery Stripe must not retry as it is: answered 400 to Stripe, never seen by a browser."""


class SignatureInvalid(WebhookRefused):
    """A webhook request whose Stripe-Signature is missing, wrong, or older than the tolerance."""

    code = "signature_invalid"


class EventMalformed(WebhookRefused):
    """A signed webhook request whose body is not an event we can read."""

    code = "event_malformed"


class PortalNotConfigured(PortalError):
    """Stripe makes no portal session until the operator saves the portal settings in its Dashboard."""

    code = "portal_not_configured"
