"""The portal's deep-link flows: one table, one entry per flow, holding everything about it.

An entry says what the client may send, which subscriptions the flow applies to and the refusal otherwise,
the first Stripe API version that has it, the policy keys it takes, how the client's values are vetted and
how its `flow_data` is built. Policy validation, the portal pipeline, the demo page, the events and the
README's flow table derive from `FLOWS`; tests check the emulator against it. Adding a flow is one entry
here plus its tests.

Everything in `flow_data` comes from the operator's policy and from Stripe's own view of the subscription;
the client only picks the flow, which subscription (checked), and for update_confirm an allow-listed price
and a bounded quantity.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, NamedTuple

from portal_links import api_versions
from portal_links.errors import (
    InvalidParameter,
    PortalError,
    SubscriptionNotCancelable,
    SubscriptionNotUpdatable,
    UnchangedSubscription,
)
from portal_links.policy import AfterCompletion, FlowPolicy

if TYPE_CHECKING:
    from stripe.params.billing_portal._session_create_params import (
        SessionCreateParamsFlowData,
        SessionCreateParamsFlowDataAfterCompletion,
    )

    from portal_links.stripe_gateway import Subscription

COMMON_PARAMETERS = frozenset({"return_to", "locale"})
SUBSCRIPTION_ID = re.compile(r"sub_[A-Za-z0-9]{1,250}")
PRICE_ID = re.compile(r"price_[A-Za-z0-9_]{1,250}")
QUANTITY = re.compile(r"[0-9]{1,9}")


class PlanChange(NamedTuple):
    """A client's requested target for a plan change, parsed and vetted before any I/O."""

    price: str | None
    quantity: int | None


class Eligibility(NamedTuple):
    """Which subscriptions a flow applies to, and the error when the named one does not qualify."""

    statuses: frozenset[str]
    refusal: type[PortalError]
    already_canceling_qualifies: bool = True

    def suits(self, subscription: Subscription) -> bool:
        if subscription.status not in self.statuses:
            return False
        return self.already_canceling_qualifies or not subscription.cancel_at_period_end


# The flow's own values, from the policy and the vetted client choice, for the subject it acts on.
Vetter = Callable[[FlowPolicy, Mapping[str, str]], PlanChange | None]
FlowDataBuilder = Callable[
    [FlowPolicy, "Subscription | None", "PlanChange | None"], "SessionCreateParamsFlowData"
]


class Flow(NamedTuple):
    name: str
    title: str  # what a button for it says (demo page, README)
    summary: str  # one line for the README's flow table
    build: FlowDataBuilder
    parameters: frozenset[str] = COMMON_PARAMETERS
    eligibility: Eligibility | None = None  # None: the flow is not about a subscription
    since_api_version: str | None = None
    policy_keys: frozenset[str] = frozenset()  # beyond enabled, configuration, after_completion
    required_policy_keys: frozenset[str] = frozenset()  # needed when the flow is enabled
    enabled_by_default: bool = True
    vet: Vetter | None = None

    @property
    def needs_subscription(self) -> bool:
        return self.eligibility is not None

    def available_on(self, api_version: str) -> bool:
        return api_versions.has(api_version, self.since_api_version)

    def vetted(self, policy: FlowPolicy, params: Mapping[str, str]) -> PlanChange | None:
        return self.vet(policy, params) if self.vet is not None else None

    def flow_data(
        self, policy: FlowPolicy, subscription: Subscription | None, change: PlanChange | None
    ) -> SessionCreateParamsFlowData:
        data = self.build(policy, subscription, change)
        if policy.after_completion is not None:
            data["after_completion"] = _after_completion(policy.after_completion)
        return data


def checked_subscription_id(value: str | None) -> str | None:
    if value is not None and not SUBSCRIPTION_ID.fullmatch(value):
        raise InvalidParameter("subscription must be a subscription id (sub_…)", param="subscription")
    return value


def _plan_change(policy: FlowPolicy, params: Mapping[str, str]) -> PlanChange:
    price, quantity = params.get("price"), params.get("quantity")
    if price is not None and (not PRICE_ID.fullmatch(price) or price not in policy.prices):
        raise InvalidParameter("price is not one of the plans you can switch to", param="price")
    amount = None
    if quantity is not None:
        if (
            not QUANTITY.fullmatch(quantity)
            or not policy.min_quantity <= int(quantity) <= policy.max_quantity
        ):
            raise InvalidParameter(
                f"quantity must be a whole number from {policy.min_quantity} to {policy.max_quantity}",
                param="quantity",
            )
        amount = int(quantity)
    return PlanChange(price, amount)


def _after_completion(after: AfterCompletion) -> SessionCreateParamsFlowDataAfterCompletion:
    result: SessionCreateParamsFlowDataAfterCompletion = {"type": after.type}
    if after.type == "redirect" and after.return_url is not None:
        result["redirect"] = {"return_url": after.return_url}
    if after.type == "hosted_confirmation" and after.custom_message is not None:
        result["hosted_confirmation"] = {"custom_message": after.custom_message}
    return result


def _subscription(subscription: Subscription | None) -> Subscription:
    assert subscription is not None  # the pipeline resolves one for every flow with an eligibility
    return subscription


def _payment_method_update(
    _: FlowPolicy, __: Subscription | None, ___: PlanChange | None
) -> SessionCreateParamsFlowData:
    return {"type": "payment_method_update"}


def _customer_update(
    _: FlowPolicy, __: Subscription | None, ___: PlanChange | None
) -> SessionCreateParamsFlowData:
    return {"type": "customer_update"}


def _cancel(
    policy: FlowPolicy, sub: Subscription | None, _: PlanChange | None
) -> SessionCreateParamsFlowData:
    data: SessionCreateParamsFlowData = {
        "type": "subscription_cancel",
        "subscription_cancel": {"subscription": _subscription(sub).id},
    }
    if policy.retention_coupon is not None:
        data["subscription_cancel"]["retention"] = {
            "type": "coupon_offer",
            "coupon_offer": {"coupon": policy.retention_coupon},
        }
    return data


def _update(_: FlowPolicy, sub: Subscription | None, __: PlanChange | None) -> SessionCreateParamsFlowData:
    return {"type": "subscription_update", "subscription_update": {"subscription": _subscription(sub).id}}


def _pause(_: FlowPolicy, sub: Subscription | None, __: PlanChange | None) -> SessionCreateParamsFlowData:
    return {"type": "subscription_pause", "subscription_pause": {"subscription": _subscription(sub).id}}


def _update_confirm(
    policy: FlowPolicy, sub: Subscription | None, change: PlanChange | None
) -> SessionCreateParamsFlowData:
    subscription, change = _subscription(sub), change or PlanChange(None, None)
    if len(subscription.items) != 1:
        raise SubscriptionNotUpdatable("only single-item subscriptions can be changed this way")
    [item] = subscription.items
    price = change.price or item.price
    quantity = change.quantity or item.quantity
    if price not in policy.prices:
        raise InvalidParameter("name the plan to switch to", param="price")
    if (price, quantity) == (item.price, item.quantity):
        raise UnchangedSubscription("the subscription already has this plan and quantity")
    data: SessionCreateParamsFlowData = {
        "type": "subscription_update_confirm",
        "subscription_update_confirm": {
            "subscription": subscription.id,
            "items": [{"id": item.id, "price": price, "quantity": quantity}],
        },
    }
    discount = policy.prices[price]
    if discount is not None and discount.coupon is not None:
        data["subscription_update_confirm"]["discounts"] = [{"coupon": discount.coupon}]
    elif discount is not None and discount.promotion_code is not None:
        data["subscription_update_confirm"]["discounts"] = [{"promotion_code": discount.promotion_code}]
    return data


_CANCELABLE = Eligibility(
    frozenset({"active", "trialing", "past_due"}),
    SubscriptionNotCancelable,
    already_canceling_qualifies=False,
)
_UPDATABLE = Eligibility(frozenset({"active", "trialing"}), SubscriptionNotUpdatable)
_WITH_SUBSCRIPTION = COMMON_PARAMETERS | {"subscription"}

FLOWS: dict[str, Flow] = {
    flow.name: flow
    for flow in (
        Flow(
            "payment_method_update",
            "Update card",
            "Add or replace the default payment method.",
            _payment_method_update,
        ),
        Flow(
            "subscription_cancel",
            "Cancel plan",
            "Cancel a subscription (with the policy's retention coupon offer, if any).",
            _cancel,
            parameters=_WITH_SUBSCRIPTION,
            eligibility=_CANCELABLE,
            policy_keys=frozenset({"retention_coupon"}),
        ),
        Flow(
            "subscription_update",
            "Change plan",
            "Choose another plan among those the portal configuration offers.",
            _update,
            parameters=_WITH_SUBSCRIPTION,
            eligibility=_UPDATABLE,
        ),
        Flow(
            "subscription_update_confirm",
            "Switch plan",
            "Confirm a change to an allow-listed price and quantity, with the policy's discount.",
            _update_confirm,
            parameters=_WITH_SUBSCRIPTION | {"price", "quantity"},
            eligibility=_UPDATABLE,
            policy_keys=frozenset({"prices", "quantity"}),
            required_policy_keys=frozenset({"prices"}),
            enabled_by_default=False,
            vet=_plan_change,
        ),
        Flow(
            "customer_update",
            "Update billing details",
            "Edit the billing address, e-mail and tax ids.",
            _customer_update,
            since_api_version="2026-08-26.dahlia",
            enabled_by_default=False,
        ),
        Flow(
            "subscription_pause",
            "Pause plan",
            "Pause an active subscription.",
            _pause,
            parameters=_WITH_SUBSCRIPTION,
            eligibility=Eligibility(frozenset({"active"}), SubscriptionNotUpdatable),
            since_api_version="2026-10-28.endive",
            enabled_by_default=False,
        ),
    )
}
