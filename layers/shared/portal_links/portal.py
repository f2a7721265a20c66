"""The portal pipeline: app user → Stripe customer → portal session URL; the one place steps are ordered.

authenticate → resolve the flow → check parameters → vet values → customer → subscription → session.
A caller without valid credentials learns nothing else, whatever else is wrong with the request.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from typing import TYPE_CHECKING, NamedTuple, Protocol

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import MetricUnit

from portal_links.customers import CustomerLink, CustomerTable, new_link
from portal_links.deadline import Deadline
from portal_links.errors import (
    NoBillingAccount,
    NoSubscription,
    SubscriptionAmbiguous,
    SubscriptionNotFound,
    UnknownFlow,
    UnknownParameter,
)
from portal_links.flows import COMMON_PARAMETERS, FLOWS, Flow, PlanChange, checked_subscription_id
from portal_links.identity import AppUser, Authenticator
from portal_links.locales import negotiate_locale
from portal_links.settings import MissingCustomerPolicy, Settings
from portal_links.stripe_gateway import StripeGateway, Subscription

if TYPE_CHECKING:
    from stripe.params import CustomerCreateParams
    from stripe.params.billing_portal import SessionCreateParams

logger = Logger(child=True)
metrics = Metrics()


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
        flow = self._flow(request.flow_name)
        params = self._checked_parameters(request.parameters(), flow)
        vetted = self._vet(params, request.accept_language, flow)
        if flow is not None and flow.needs_subscription:
            customer = self._existing_customer(user)
            subscription = self._subscription_for(flow, customer, vetted.subscription_id)
        else:
            customer, subscription = self.customer_for(user), None
        url = self._stripe.create_portal_session(self._session_params(customer, flow, subscription, vetted))
        metrics.add_metric(name="PortalSessionsCreated", unit=MetricUnit.Count, value=1)
        logger.info(
            "portal session created",
            extra={
                "stripe_customer_id": customer.stripe_customer_id,
                "flow": flow.name if flow else "homepage",
            },
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
        params: SessionCreateParams = {
            "customer": customer.stripe_customer_id,
            "return_url": vetted.return_url,
        }
        configuration = flow_policy.configuration if flow_policy else self._policy.homepage_configuration
        if configuration:
            params["configuration"] = configuration
        if self._policy.on_behalf_of:
            params["on_behalf_of"] = self._policy.on_behalf_of
        if vetted.locale != "auto":
            params["locale"] = vetted.locale
        if flow is not None and flow_policy is not None:
            params["flow_data"] = flow.flow_data(flow_policy, subscription, vetted.change)
        return params

    def _existing_customer(self, user: AppUser) -> CustomerLink:
        # A user without a customer has no subscription either; nothing is created for them.
        link = self._customers.get(user.user_id)
        if link is None:
            raise NoSubscription("there is no subscription for this account")
        return link

    def _subscription_for(self, flow: Flow, customer: CustomerLink, requested: str | None) -> Subscription:
        assert flow.eligibility is not None  # only flows about a subscription come here
        if requested is not None:
            found = self._stripe.subscription(requested)
            if found is None or found.customer != customer.stripe_customer_id:
                raise SubscriptionNotFound(
                    "there is no such subscription for this account", param="subscription"
                )
            if not flow.eligibility.suits(found):
                raise flow.eligibility.refusal(
                    f"the subscription cannot go through {flow.name} in its current state"
                )
            return found
        subscriptions = self._stripe.subscriptions_of(customer.stripe_customer_id)
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
