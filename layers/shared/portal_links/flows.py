"""The deep-link flows: a table from flow name to what the client may send and how `flow_data` is built.

Everything in `flow_data` comes from the operator's policy and from Stripe's own view of the subscription;
the client only picks the flow, which subscription (checked), and for update_confirm an allow-listed price
and a bounded quantity.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

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
HOMEPAGE_PARAMETERS = COMMON_PARAMETERS
CANCELABLE = frozenset({"active", "trialing", "past_due"})
UPDATABLE = frozenset({"active", "trialing"})
SUBSCRIPTION_ID = re.compile(r"^sub_[A-Za-z0-9]{1,250}$")
PRICE_ID = re.compile(r"^price_[A-Za-z0-9_]{1,250}$")
QUANTITY = re.compile(r"^[0-9]{1,9}$")


@dataclass(frozen=True)
class PlanChange:
    """subscription_update_confirm's requested target, parsed and vetted before any I/O."""

    price: str | None
    quantity: int | None


@dataclass(frozen=True)
class Flow:
    name: str
    parameters: frozenset[str]
    statuses: frozenset[str] = frozenset()  # empty: the flow is not about a subscription
    refusal: type[PortalError] = SubscriptionNotUpdatable
    since_api_version: str | None = None

    @property
    def needs_subscription(self) -> bool:
        return bool(self.statuses)

    def suits(self, subscription: Subscription) -> bool:
        if subscription.status not in self.statuses:
            return False
        return not (self.name == "subscription_cancel" and subscription.cancel_at_period_end)


_SUBSCRIPTION = COMMON_PARAMETERS | {"subscription"}
FLOWS = {
    flow.name: flow
    for flow in (
        Flow("payment_method_update", COMMON_PARAMETERS),
        Flow("subscription_cancel", _SUBSCRIPTION, CANCELABLE, SubscriptionNotCancelable),
        Flow("subscription_update", _SUBSCRIPTION, UPDATABLE),
        Flow("subscription_update_confirm", _SUBSCRIPTION | {"price", "quantity"}, UPDATABLE),
        # Newer API versions only (customer_update: 2026-08-26.dahlia changelog).
        Flow("customer_update", COMMON_PARAMETERS, since_api_version="2026-08-26"),
        Flow("subscription_pause", _SUBSCRIPTION, frozenset({"active"}), since_api_version="2026-08-26"),
    )
}


def available_on(flow: Flow, api_version: str) -> bool:
    return flow.since_api_version is None or api_version >= flow.since_api_version


def checked_subscription_id(value: str | None) -> str | None:
    if value is not None and not SUBSCRIPTION_ID.match(value):
        raise InvalidParameter("subscription must be a subscription id (sub_…)", param="subscription")
    return value


def parse_plan_change(policy: FlowPolicy, price: str | None, quantity: str | None) -> PlanChange:
    if price is not None and (not PRICE_ID.match(price) or price not in policy.prices):
        raise InvalidParameter("price is not one of the plans you can switch to", param="price")
    amount = None
    if quantity is not None:
        if not QUANTITY.match(quantity) or not policy.min_quantity <= int(quantity) <= policy.max_quantity:
            raise InvalidParameter(
                f"quantity must be a whole number from {policy.min_quantity} to {policy.max_quantity}",
                param="quantity",
            )
        amount = int(quantity)
    return PlanChange(price, amount)


def build_flow_data(
    flow: Flow, policy: FlowPolicy, subscription: Subscription | None, change: PlanChange | None
) -> SessionCreateParamsFlowData:
    data: SessionCreateParamsFlowData = {"type": flow.name}
    if policy.after_completion is not None:
        data["after_completion"] = _after_completion(policy.after_completion)
    builder = _SUBJECT_BUILDERS.get(flow.name)
    if builder is not None:
        assert subscription is not None  # the service resolves it for every subscription flow
        builder(data, policy, subscription, change or PlanChange(None, None))
    return data


def _after_completion(after: AfterCompletion) -> SessionCreateParamsFlowDataAfterCompletion:
    result: SessionCreateParamsFlowDataAfterCompletion = {"type": after.type}
    if after.type == "redirect" and after.return_url is not None:
        result["redirect"] = {"return_url": after.return_url}
    if after.type == "hosted_confirmation" and after.custom_message is not None:
        result["hosted_confirmation"] = {"custom_message": after.custom_message}
    return result


def _cancel(data: SessionCreateParamsFlowData, policy: FlowPolicy, sub: Subscription, _: PlanChange) -> None:
    data["subscription_cancel"] = {"subscription": sub.id}
    if policy.retention_coupon is not None:
        data["subscription_cancel"]["retention"] = {
            "type": "coupon_offer",
            "coupon_offer": {"coupon": policy.retention_coupon},
        }


def _update(data: SessionCreateParamsFlowData, _: FlowPolicy, sub: Subscription, __: PlanChange) -> None:
    data["subscription_update"] = {"subscription": sub.id}


def _pause(data: SessionCreateParamsFlowData, _: FlowPolicy, sub: Subscription, __: PlanChange) -> None:
    data["subscription_pause"] = {"subscription": sub.id}


def _update_confirm(
    data: SessionCreateParamsFlowData, policy: FlowPolicy, sub: Subscription, change: PlanChange
) -> None:
    if len(sub.items) != 1:
        raise SubscriptionNotUpdatable("only single-item subscriptions can be changed this way")
    [item] = sub.items
    price = change.price or item.price
    quantity = change.quantity or item.quantity
    if price not in policy.prices:
        raise InvalidParameter("name the plan to switch to", param="price")
    if (price, quantity) == (item.price, item.quantity):
        raise UnchangedSubscription("the subscription already has this plan and quantity")
    data["subscription_update_confirm"] = {
        "subscription": sub.id,
        "items": [{"id": item.id, "price": price, "quantity": quantity}],
    }
    discount = policy.prices[price]
    if discount is not None and discount.coupon is not None:
        data["subscription_update_confirm"]["discounts"] = [{"coupon": discount.coupon}]
    elif discount is not None and discount.promotion_code is not None:
        data["subscription_update_confirm"]["discounts"] = [{"promotion_code": discount.promotion_code}]


if TYPE_CHECKING:
    _SubjectBuilder = Callable[[SessionCreateParamsFlowData, FlowPolicy, Subscription, PlanChange], None]

_SUBJECT_BUILDERS: dict[str, _SubjectBuilder] = {
    "subscription_cancel": _cancel,
    "subscription_update": _update,
    "subscription_update_confirm": _update_confirm,
    "subscription_pause": _pause,
}
