"""The portal pipeline: app user → Stripe customer → portal session URL; the one place steps are ordered.

authenticate → resolve the flow → check parameters → vet values → customer → subscription → session.
A caller without valid credentials learns nothing else, whatever else is wrong with the request.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import TYPE_CHECKING, NamedTuple, Protocol

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import EphemeralMetrics, MetricUnit

from portal_links.customers import BillingSubject, CustomerLink, CustomerTable, Reservation, Row
from portal_links.deadline import Deadline
from portal_links.errors import (
    CustomerGone,
    NoBillingAccount,
    NoSubscription,
    StoreUnavailable,
    SubscriptionAmbiguous,
    SubscriptionNotFound,
    UnknownFlow,
    UnknownParameter,
)
from portal_links.flows import COMMON_PARAMETERS, FLOWS, Flow, PlanChange, checked_subscription_id
from portal_links.identity import AppUser, Authenticator
from portal_links.locales import negotiate_locale
from portal_links.settings import MissingCustomerPolicy, Settings
from portal_links.stripe_gateway import CREATION_KEY_FIELD, CreatedCustomer, StripeGateway, Subscription

if TYPE_CHECKING:
    from stripe.params import CustomerCreateParams
    from stripe.params.billing_portal import SessionCreateParams
    from stripe.params.billing_portal._session_create_params import SessionCreateParamsAfterExpiration

logger = Logger(child=True)
metrics = Metrics()
# Stripe keeps an idempotency key for 24 hours; a reservation this old may have outlived the key of the
# creation it stands for, so its customer is looked up by the key in its metadata before making one.
RECOVER_AFTER_SECONDS = 23 * 3600
MAX_ROW_CHANGES = 4  # a click that keeps meeting other requests' writes gives up with a 503
HOMEPAGE = "homepage"  # the `flow` of a session without flow_data, in logs and metrics


class PortalRequest(Protocol):
    """What the HTTP edge hands the pipeline. Each part is read when the pipeline gets to it."""

    @property
    def flow_name(self) -> str | None: ...  # None: the portal homepage
    @property
    def accept_language(self) -> str | None: ...
    @property
    def time_left_seconds(self) -> float | None: ...
    def token(self) -> str | None: ...
    def check_origin(self) -> None: ...  # refuses a cookie-carried request from another site
    def parameters(self) -> Mapping[str, str]: ...  # refuses a body or query that cannot be read


class _Vetted(NamedTuple):
    return_url: str
    locale: str
    subscription_id: str | None
    change: PlanChange | None


class PortalService:
    def __init__(
        self,
        settings: Settings,
        authenticator: Authenticator,
        customers: CustomerTable,
        stripe: StripeGateway,
        deadline: Deadline,
    ) -> None:
        self._settings = settings
        self._policy = settings.policy
        self._authenticator = authenticator
        self._customers = customers
        self._stripe = stripe
        self._deadline = deadline
        self._return_urls = settings.return_urls()

    def create_link(self, request: PortalRequest) -> str:
        self._deadline.start(request.time_left_seconds)
        user = self._authenticator.authenticate(request.token())
        request.check_origin()
        subject = self._authenticator.billing_subject(user)  # organization mode: refuses other roles
        flow = self._flow(request.flow_name)
        params = self._checked_parameters(request.parameters(), flow)
        vetted = self._vet(params, request.accept_language, flow)
        if flow is not None and flow.needs_subscription:
            customer = self._existing_customer(subject)
            self._stripe.check_nameable(customer.party)
            subscription = self._subscription_for(flow, customer, vetted.subscription_id)
        else:
            customer, subscription = self.customer_for(subject, user), None
            self._stripe.check_nameable(customer.party)
        try:
            url = self._stripe.create_portal_session(
                self._session_params(customer, flow, subscription, vetted)
            )
        except CustomerGone:
            if subscription is not None:
                raise
            customer = self.customer_for(subject, user, gone=customer.stripe_customer_id)
            url = self._stripe.create_portal_session(self._session_params(customer, flow, None, vetted))
        flow_name = flow.name if flow else HOMEPAGE
        metrics.add_metric(name="PortalSessionsCreated", unit=MetricUnit.Count, value=1)
        count_session_of(flow_name)
        logger.info(
            "portal session created",
            extra={"stripe_customer_id": customer.stripe_customer_id, "flow": flow_name},
        )
        return url

    def _flow(self, name: str | None) -> Flow | None:
        if name is None:
            return None
        flow = FLOWS.get(name)
        enabled = self._policy.enabled_flows()
        if flow is None or name not in enabled:
            raise UnknownFlow(
                f"there is no portal flow {name[:64]!r} here; enabled flows: {', '.join(enabled) or 'none'}",
                extra={"enabled_flows": enabled},
            )
        return flow

    @staticmethod
    def _checked_parameters(params: Mapping[str, str], flow: Flow | None) -> Mapping[str, str]:
        allowed = flow.parameters if flow is not None else COMMON_PARAMETERS
        for name in params:
            if name not in allowed:
                raise UnknownParameter(f"{name[:64]!r} is not a parameter of this endpoint", param=name[:64])
        return params

    def _vet(self, params: Mapping[str, str], accept_language: str | None, flow: Flow | None) -> _Vetted:
        """Everything the client sent, checked before anything is read or written."""
        return _Vetted(
            return_url=self._return_urls.resolve(params.get("return_to")),
            locale=negotiate_locale(params.get("locale"), accept_language, self._policy.default_locale),
            subscription_id=checked_subscription_id(params.get("subscription")),
            change=flow.vetted(self._policy.flows[flow.name], params) if flow is not None else None,
        )

    def _session_params(
        self, customer: CustomerLink, flow: Flow | None, subscription: Subscription | None, vetted: _Vetted
    ) -> SessionCreateParams:
        flow_policy = self._policy.flows[flow.name] if flow else None
        params: SessionCreateParams = {"return_url": vetted.return_url}
        params[customer.party.parameter] = customer.party.id
        configuration = flow_policy.configuration if flow_policy else self._policy.homepage_configuration
        if configuration:
            params["configuration"] = configuration
        if self._policy.on_behalf_of:
            params["on_behalf_of"] = self._policy.on_behalf_of
        if vetted.locale != "auto":
            params["locale"] = vetted.locale
        expiration = self._policy.after_expiration
        if expiration is not None:
            after: SessionCreateParamsAfterExpiration = {"type": "customer_login"}
            if expiration.expires_in_seconds is not None:
                after["customer_login"] = {"expires_at": int(time.time()) + expiration.expires_in_seconds}
            params["after_expiration"] = after
        if flow is not None and flow_policy is not None:
            params["flow_data"] = flow.flow_data(flow_policy, subscription, vetted.change)
        return params

    def _existing_customer(self, subject: BillingSubject) -> CustomerLink:
        # Without a customer in this mode there is no subscription either; nothing is created for them.
        row = self._customers.get(subject.key)
        if not isinstance(row, CustomerLink) or row.livemode != self._stripe.livemode():
            raise NoSubscription("there is no subscription for this account")
        return row

    def _subscription_for(self, flow: Flow, customer: CustomerLink, requested: str | None) -> Subscription:
        assert flow.eligibility is not None  # only flows about a subscription come here
        if requested is not None:
            found = self._stripe.subscription(requested)
            if found is None or not found.belongs_to(customer.party):
                raise SubscriptionNotFound(
                    "there is no such subscription for this account", param="subscription"
                )
            if not flow.eligibility.suits(found):
                raise flow.eligibility.refusal(
                    f"the subscription cannot go through {flow.name} in its current state"
                )
            return found
        subscriptions = self._stripe.subscriptions_of(customer.party)
        candidates = [s for s in subscriptions if flow.eligibility.suits(s)]
        if not candidates:
            raise NoSubscription(f"there is no subscription that {flow.name} applies to")
        if len(candidates) > 1:
            names = self._stripe.product_names({item.product for s in candidates for item in s.items})
            listing = [
                {"id": s.id, "products": [names.get(item.product, item.product) for item in s.items]}
                for s in candidates
            ]
            raise SubscriptionAmbiguous(
                "several subscriptions match; send the one you mean as subscription",
                param="subscription",
                extra={"subscriptions": listing},
            )
        return candidates[0]

    def customer_for(self, subject: BillingSubject, user: AppUser, gone: str | None = None) -> CustomerLink:
        """The subject's Stripe customer: made exactly once even when first clicks race, found again when
        its row write failed, and replaced when the mapped one is `gone` or of the other mode."""
        livemode = self._stripe.livemode()  # reads the key first: a key that cannot be read writes nothing
        row: Row | None = self._customers.get(subject.key)
        for _ in range(MAX_ROW_CHANGES):
            if isinstance(row, CustomerLink):
                if row.stripe_customer_id != gone and row.livemode == livemode:
                    return row
                self._refuse_unless_creating()
                logger.warning(
                    "the mapped Stripe customer is stale; replacing it",
                    extra={"stale_customer": row.stripe_customer_id, "stale_livemode": row.livemode},
                )
                metrics.add_metric(name="StaleCustomersReplaced", unit=MetricUnit.Count, value=1)
                row = self._customers.reserve(subject.key, user.user_id, user.email, replacing=row)
            elif row is None:
                self._refuse_unless_creating()
                row = self._customers.reserve(subject.key, user.user_id, user.email)
            else:
                created = self._recover_or_create(subject, user, row)
                row = self._customers.complete(row, created.id, created.livemode)
                if isinstance(row, CustomerLink) and row.stripe_customer_id == created.id:
                    metrics.add_metric(name="CustomersCreated", unit=MetricUnit.Count, value=1)
        if isinstance(row, CustomerLink) and row.stripe_customer_id != gone:
            return row
        raise StoreUnavailable("the customer mapping kept changing under this request")

    def _refuse_unless_creating(self) -> None:
        if self._settings.missing_customer is MissingCustomerPolicy.REFUSE:
            raise NoBillingAccount("there is no billing account for this user")

    def _recover_or_create(
        self, subject: BillingSubject, user: AppUser, reservation: Reservation
    ) -> CreatedCustomer:
        if reservation.age_seconds() > RECOVER_AFTER_SECONDS:
            found = self._stripe.customer_made_with(reservation.creation_key)
            if found is not None:
                logger.warning(
                    "recovered a customer whose row write had failed", extra={"customer": found.id}
                )
                metrics.add_metric(name="CustomersRecovered", unit=MetricUnit.Count, value=1)
                return found
        # The reservation's maker, not this click's user: an organization's racing admins send one request
        # (a reservation from before makers were kept is this click's).
        maker = reservation.reserved_by or user.user_id
        email = reservation.reserved_by_email if reservation.reserved_by else user.email
        params: CustomerCreateParams = {
            "metadata": {**subject.metadata(made_by=maker), CREATION_KEY_FIELD: reservation.creation_key}
        }
        if email:
            params["email"] = email
        if subject.is_the_user and user.name:
            params["name"] = user.name
        # Every request holding this reservation sends the same key, so Stripe makes one customer for all.
        return self._stripe.create_customer(params, idempotency_key=customer_idempotency_key(reservation))


def count_session_of(flow_name: str) -> None:
    """PortalSessionsCreated by `flow`, in a record of its own: the dimension must not reach other metrics."""
    by_flow = EphemeralMetrics()
    by_flow.add_dimension(name="flow", value=flow_name)
    by_flow.add_metric(name="PortalSessionsCreated", unit=MetricUnit.Count, value=1)
    by_flow.flush_metrics()


def customer_idempotency_key(reservation: Reservation) -> str:
    return f"portal-links-customer-{reservation.creation_key}"
