"""Stripe's objects as the emulator holds them, how each is made, and seeding for tests and `make dev`.

Every object carries the fields Stripe always sends (nullable ones as null), so a client reading the
emulator's answers reads what Stripe's would hold. Seeding sets up what the API cannot (a past_due
subscription, fixed ids, coupons, portal configurations, Accounts v2 accounts).
"""

from __future__ import annotations

import calendar
import copy
import secrets
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

StripeObject = dict[str, Any]

INTERVALS = ("day", "week", "month", "year")
# Accounts v2 as customers: `customer_account` on portal sessions, subscriptions (and their list filter) and
# Checkout Sessions, all first typed in stripe-python 14.1.0 (absent in 14.0.0, 2025-11-17.clover).
ACCOUNTS_SINCE = "2025-12-15.clover"


def new_id(prefix: str) -> str:
    return f"{prefix}_{secrets.token_hex(7)}"


def now() -> int:
    return int(time.time())


def wants(endpoint: StripeObject, event_type: str) -> bool:
    return endpoint["status"] == "enabled" and bool({"*", event_type} & set(endpoint["enabled_events"]))


def period_end(start: int, interval: str, count: int = 1) -> int:
    """One billing period after `start`, on the calendar as Stripe counts it (month ends clamp)."""
    if interval in ("day", "week"):
        return start + count * (86400 if interval == "day" else 7 * 86400)
    moment = datetime.fromtimestamp(start, UTC)
    months = moment.month - 1 + count * (12 if interval == "year" else 1)
    year, month = moment.year + months // 12, months % 12 + 1
    day = min(moment.day, calendar.monthrange(year, month)[1])
    return int(moment.replace(year=year, month=month, day=day).timestamp())


@dataclass
class Store:
    """Every object the emulator holds, by id; callers hold the emulator's lock."""

    customers: dict[str, StripeObject] = field(default_factory=dict)
    products: dict[str, StripeObject] = field(default_factory=dict)
    prices: dict[str, StripeObject] = field(default_factory=dict)
    subscriptions: dict[str, StripeObject] = field(default_factory=dict)
    sessions: dict[str, StripeObject] = field(default_factory=dict)
    accounts: dict[str, str] = field(default_factory=dict)  # Accounts v2 id → its customer's id
    configurations: set[str] = field(default_factory=set)
    coupons: set[str] = field(default_factory=set)
    promotion_codes: set[str] = field(default_factory=set)
    events: dict[str, StripeObject] = field(default_factory=dict)
    webhook_endpoints: dict[str, StripeObject] = field(default_factory=dict)
    outbox: list[str] = field(default_factory=list)  # event ids not yet handed to delivery

    def emit(self, event_type: str, obj: StripeObject, api_version: str) -> StripeObject:
        """An event about `obj` as it is now, queued for every webhook endpoint that wants it."""
        event: StripeObject = {
            "id": new_id("evt"),
            "object": "event",
            "api_version": api_version,
            "created": now(),
            "data": {"object": copy.deepcopy(obj)},
            "livemode": False,
            "pending_webhooks": sum(1 for e in self.webhook_endpoints.values() if wants(e, event_type)),
            "request": {"id": None, "idempotency_key": None},
            "type": event_type,
        }
        self.events[event["id"]] = event
        self.outbox.append(event["id"])
        return event

    def live_customer(self, customer_id: str) -> StripeObject | None:
        customer = self.customers.get(customer_id)
        return None if customer is None or customer.get("deleted") else customer

    def create_customer(
        self,
        *,
        email: str | None = None,
        name: str | None = None,
        description: str | None = None,
        phone: str | None = None,
        metadata: dict[str, str] | None = None,
        preferred_locales: list[str] | None = None,
        customer_account: str | None = None,
    ) -> StripeObject:
        customer: StripeObject = {
            "id": new_id("cus"),
            "object": "customer",
            "address": None,
            "balance": 0,
            "created": now(),
            "currency": None,
            "default_source": None,
            "delinquent": False,
            "description": description,
            "discount": None,
            "email": email,
            "invoice_prefix": secrets.token_hex(4).upper(),
            "invoice_settings": {
                "custom_fields": None,
                "default_payment_method": None,
                "footer": None,
                "rendering_options": None,
            },
            "livemode": False,
            "metadata": metadata or {},
            "name": name,
            "next_invoice_sequence": 1,
            "phone": phone,
            "preferred_locales": preferred_locales or [],
            "shipping": None,
            "tax_exempt": "none",
            "test_clock": None,
        }
        if customer_account is not None:
            customer["customer_account"] = customer_account
        self.customers[customer["id"]] = customer
        return customer

    def create_product(
        self,
        name: str,
        *,
        product_id: str | None = None,
        active: bool = True,
        description: str | None = None,
        metadata: dict[str, str] | None = None,
    ) -> StripeObject:
        created = now()
        product: StripeObject = {
            "id": product_id or new_id("prod"),
            "object": "product",
            "active": active,
            "created": created,
            "default_price": None,
            "description": description,
            "images": [],
            "livemode": False,
            "marketing_features": [],
            "metadata": metadata or {},
            "name": name,
            "package_dimensions": None,
            "shippable": None,
            "statement_descriptor": None,
            "tax_code": None,
            "type": "service",
            "unit_label": None,
            "updated": created,
            "url": None,
        }
        self.products[product["id"]] = product
        return product

    def create_price(
        self,
        product: str,
        unit_amount: int,
        currency: str,
        *,
        interval: str | None,
        interval_count: int = 1,
        price_id: str | None = None,
        active: bool = True,
        nickname: str | None = None,
        lookup_key: str | None = None,
        metadata: dict[str, str] | None = None,
    ) -> StripeObject:
        recurring = None
        if interval is not None:
            recurring = {
                "interval": interval,
                "interval_count": interval_count,
                "meter": None,
                "trial_period_days": None,
                "usage_type": "licensed",
            }
        price: StripeObject = {
            "id": price_id or new_id("price"),
            "object": "price",
            "active": active,
            "billing_scheme": "per_unit",
            "created": now(),
            "currency": currency,
            "custom_unit_amount": None,
            "livemode": False,
            "lookup_key": lookup_key,
            "metadata": metadata or {},
            "nickname": nickname,
            "product": product,
            "recurring": recurring,
            "tax_behavior": "unspecified",
            "tiers_mode": None,
            "transform_quantity": None,
            "type": "recurring" if recurring else "one_time",
            "unit_amount": unit_amount,
            "unit_amount_decimal": str(unit_amount),
        }
        self.prices[price["id"]] = price
        return price

    def create_subscription(
        self,
        customer_id: str,
        items: list[tuple[str, int]],
        *,
        status: str,
        cancel_at_period_end: bool = False,
        description: str | None = None,
        metadata: dict[str, str] | None = None,
        trial_days: int | None = None,
    ) -> StripeObject:
        """A subscription to (price id, quantity) items, which share one currency and interval."""
        subscription_id = new_id("sub")
        start = now()
        first = self.prices[items[0][0]]
        recurring = first["recurring"]
        end = (
            start + trial_days * 86400
            if trial_days
            else period_end(start, recurring["interval"], recurring["interval_count"])
        )
        subscription: StripeObject = {
            "id": subscription_id,
            "object": "subscription",
            "application": None,
            "application_fee_percent": None,
            "automatic_tax": {"disabled_reason": None, "enabled": False, "liability": None},
            "billing_cycle_anchor": end if trial_days else start,
            "billing_cycle_anchor_config": None,
            "billing_mode": {"flexible": None, "type": "classic"},
            "billing_schedules": [],
            "billing_thresholds": None,
            "cancel_at": None,
            "cancel_at_period_end": False,
            "canceled_at": None,
            "cancellation_details": {"comment": None, "feedback": None, "reason": None},
            "collection_method": "charge_automatically",
            "created": start,
            "currency": first["currency"],
            "customer": customer_id,
            "customer_account": self.customers[customer_id].get("customer_account"),
            "days_until_due": None,
            "default_payment_method": None,
            "default_source": None,
            "default_tax_rates": [],
            "description": description,
            "discounts": [],
            "ended_at": None,
            "invoice_settings": {"account_tax_ids": None, "issuer": {"type": "self"}},
            "items": [
                {
                    "id": new_id("si"),
                    "object": "subscription_item",
                    "billing_thresholds": None,
                    "created": start,
                    "current_period_end": end,
                    "current_period_start": start,
                    "discounts": [],
                    "metadata": {},
                    "price": price_id,
                    "quantity": quantity,
                    "subscription": subscription_id,
                    "tax_rates": [],
                }
                for price_id, quantity in items
            ],
            "latest_invoice": None,
            "livemode": False,
            "managed_payments": None,
            "metadata": metadata or {},
            "next_pending_invoice_item_invoice": None,
            "on_behalf_of": None,
            "pause_collection": None,
            "payment_settings": {
                "payment_method_options": None,
                "payment_method_types": None,
                "save_default_payment_method": "off",
            },
            "pending_invoice_item_interval": None,
            "pending_setup_intent": None,
            "pending_update": None,
            "schedule": None,
            "start_date": start,
            "status": status,
            "test_clock": None,
            "transfer_data": None,
            "trial_end": end if trial_days else None,
            "trial_settings": {"end_behavior": {"missing_payment_method": "create_invoice"}},
            "trial_start": start if trial_days else None,
        }
        self.subscriptions[subscription_id] = subscription
        if cancel_at_period_end:
            schedule_cancellation(subscription, True)
        return subscription


def schedule_cancellation(subscription: StripeObject, at_period_end: bool) -> None:
    """`cancel_at_period_end` as Stripe applies it: the end date and the request time, or neither."""
    subscription["cancel_at_period_end"] = at_period_end
    subscription["cancel_at"] = subscription["items"][0]["current_period_end"] if at_period_end else None
    subscription["canceled_at"] = now() if at_period_end else None
    subscription["cancellation_details"] = {
        "comment": None,
        "feedback": None,
        "reason": "cancellation_requested" if at_period_end else None,
    }


class StripeState:
    """Stripe's state behind one lock, with the seeding the API has no endpoint for."""

    def __init__(self) -> None:
        self.lock = threading.RLock()
        self.store = Store()

    def reset(self) -> None:
        with self.lock:
            self.store = Store()

    def add_product(self, name: str, product_id: str | None = None) -> str:
        with self.lock:
            return str(self.store.create_product(name, product_id=product_id)["id"])

    def add_price(
        self,
        product: str,
        unit_amount: int,
        interval: str | None = "month",
        price_id: str | None = None,
        currency: str = "usd",
    ) -> str:
        """A price of `product`; `interval=None` makes it one-time."""
        with self.lock:
            price = self.store.create_price(
                product, unit_amount, currency, interval=interval, price_id=price_id
            )
            return str(price["id"])

    def add_customer(
        self, email: str | None = None, name: str | None = None, metadata: dict[str, str] | None = None
    ) -> str:
        with self.lock:
            return str(self.store.create_customer(email=email, name=name, metadata=metadata)["id"])

    def add_account(self, account_id: str | None = None) -> str:
        """An Accounts v2 account configured as a customer; Stripe keeps a customer object for it."""
        account_id = account_id or f"acct_{secrets.token_hex(8)}"
        with self.lock:
            customer = self.store.create_customer(customer_account=account_id)
            self.store.accounts[account_id] = customer["id"]
        return account_id

    def add_subscription(
        self,
        customer: str,
        prices: list[str],
        status: str = "active",
        quantity: int = 1,
    ) -> str:
        """Any status, as Stripe's billing would have left it; `customer` may be an account id."""
        with self.lock:
            customer_id = self.store.accounts.get(customer, customer)
            items = [(price, quantity) for price in prices]
            subscription = self.store.create_subscription(customer_id, items, status=status)
            if status in ("canceled", "incomplete_expired"):
                subscription["canceled_at"] = subscription["ended_at"] = subscription["created"]
            return str(subscription["id"])

    def add_configuration(self, configuration_id: str) -> None:
        with self.lock:
            self.store.configurations.add(configuration_id)

    def add_coupon(self, coupon_id: str) -> None:
        with self.lock:
            self.store.coupons.add(coupon_id)

    def add_promotion_code(self, promotion_code_id: str) -> None:
        with self.lock:
            self.store.promotion_codes.add(promotion_code_id)
