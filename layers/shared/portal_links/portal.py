"""The portal service: app user → Stripe customer → portal session URL; the one place steps are ordered."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import MetricUnit

from portal_links.customers import CustomerLink, CustomerTable, new_link
from portal_links.errors import (
    ConfigurationError,
    NoBillingAccount,
    NoSubscription,
    SubscriptionAmbiguous,
    SubscriptionNotFound,
    UnknownFlow,
)
from portal_links.flows import (
    FLOWS,
    HOMEPAGE_PARAMETERS,
    Flow,
    PlanChange,
    available_on,
    build_flow_data,
    checked_subscription_id,
    parse_plan_change,
)
from portal_links.identity import AppUser, Authenticator, SigningKeys
from portal_links.locales import negotiate_locale
from portal_links.settings import MissingCustomerPolicy, Settings
from portal_links.stripe_gateway import StripeGateway, Subscription

if TYPE_CHECKING:
    from stripe.params import CustomerCreateParams
    from stripe.params.billing_portal import SessionCreateParams

logger = Logger(child=True)
metrics = Metrics()


@dataclass(frozen=True)
class PortalLinkRequest:
    """What the HTTP layer hands the service: the credential and the parameters the client may choose."""

    token: str | None
    flow: str | None = None  # None: the portal homepage
    return_to: str | None = None
    locale: str | None = None
    accept_language: str | None = None
    subscription: str | None = None
    price: str | None = None
    quantity: str | None = None


@dataclass(frozen=True)
class _Vetted:
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
    ) -> None:
        self._settings = settings
        self._policy = settings.policy
        self._authenticator = authenticator
        self._customers = customers
        self._stripe = stripe
        self._return_urls = settings.return_urls()
        for name in self._policy.enabled_flows():
            if not available_on(FLOWS[name], settings.stripe.api_version):
                raise ConfigurationError(
                    f"policy.flows.{name}.enabled",
                    f"needs STRIPE_API_VERSION {FLOWS[name].since_api_version} or later "
                    f"(pinned: {settings.stripe.api_version})",
                )

    def parameters_for(self, flow_name: str | None) -> frozenset[str]:
        """What the client may send to this endpoint; an unknown or disabled flow is refused here."""
        return HOMEPAGE_PARAMETERS if flow_name is None else self._flow(flow_name).parameters

    def create_link(self, request: PortalLinkRequest) -> str:
        user = self._authenticator.authenticate(request.token)
        flow = self._flow(request.flow) if request.flow else None
        vetted = self._vet(request, flow)
        if flow is not None and flow.needs_subscription:
            customer = self._existing_customer(user)
            subscription = self._subscription_for(flow, customer, vetted.subscription_id)
        else:
            customer, subscription = self.customer_for(user), None
        url = self._stripe.create_portal_session(self._session_params(customer, flow, subscription, vetted))
        metrics.add_metric(name="PortalSessionsCreated", unit=MetricUnit.Count, value=1)
        flow_name = flow.name if flow else "homepage"
        logger.info(
            "portal session created",
            extra={"stripe_customer_id": customer.stripe_customer_id, "flow": flow_name},
        )
        return url

    def _vet(self, request: PortalLinkRequest, flow: Flow | None) -> _Vetted:
        """Everything the client sent, checked before anything is read or written."""
        change = None
        if flow is not None and flow.name == "subscription_update_confirm":
            change = parse_plan_change(self._policy.flows[flow.name], request.price, request.quantity)
        return _Vetted(
            return_url=self._return_urls.resolve(request.return_to),
            locale=negotiate_locale(request.locale, request.accept_language, self._policy.default_locale),
            subscription_id=checked_subscription_id(request.subscription),
            change=change,
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
            params["flow_data"] = build_flow_data(flow, flow_policy, subscription, vetted.change)
        return params

    def _flow(self, name: str) -> Flow:
        flow = FLOWS.get(name)
        enabled = self._policy.enabled_flows()
        if flow is None or name not in enabled:
            raise UnknownFlow(
                f"there is no portal flow {name!r} here; enabled flows: {', '.join(enabled) or 'none'}",
                extra={"enabled_flows": enabled},
            )
        return flow

    def _existing_customer(self, user: AppUser) -> CustomerLink:
        # A user without a customer has no subscription either; nothing is created for them.
        link = self._customers.get(user.user_id)
        if link is None:
            raise NoSubscription("there is no subscription for this account")
        return link

    def _subscription_for(self, flow: Flow, customer: CustomerLink, requested: str | None) -> Subscription:
        if requested is not None:
            found = self._stripe.subscription(requested)
            if found is None or found.customer != customer.stripe_customer_id:
                raise SubscriptionNotFound(
                    "there is no such subscription for this account", param="subscription"
                )
            if not flow.suits(found):
                raise flow.refusal(f"the subscription cannot go through {flow.name} in its current state")
            return found
        candidates = [s for s in self._stripe.subscriptions_of(customer.stripe_customer_id) if flow.suits(s)]
        if not candidates:
            raise NoSubscription(f"there is no subscription that {flow.name} applies to")
        if len(candidates) > 1:
            names = self._stripe.product_names({item.product for s in candidates for item in s.items})
            listing = [
                {"id": s.id, "products": [names[item.product] for item in s.items]} for s in candidates
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
