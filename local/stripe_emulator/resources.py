"""Customers, products, prices and subscriptions: the endpoints Stripe offers for them, with its rules.

Lists are newest first and paginate with `limit`, `starting_after` and `ending_before`. A subscription's
items always carry their full price (and plan); the price's product is an id unless expanded.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Callable
from typing import Any

from local.stripe_emulator.params import (
    ApiCall,
    Route,
    StripeRequestError,
    expansions,
    expect_boolean,
    expect_clearable_string,
    expect_enum,
    expect_integer,
    expect_list,
    expect_metadata,
    expect_object,
    expect_string,
    invalid,
    missing,
    no_such,
    require,
)
from local.stripe_emulator.state import INTERVALS, Store, StripeObject, now, schedule_cancellation

LIST_PARAMETERS = frozenset({"limit", "starting_after", "ending_before", "expand"})
SUBSCRIPTION_STATUSES = (
    "active",
    "canceled",
    "incomplete",
    "incomplete_expired",
    "past_due",
    "paused",
    "trialing",
    "unpaid",
)
CHANGEABLE = ("active", "trialing", "past_due", "unpaid", "incomplete", "paused")
SUBSCRIPTION_EXPANSIONS = frozenset({"customer", "items.data.price.product"})
MAX_SUBSCRIPTION_ITEMS = 20
CUSTOMER_TEXT = {"email": 512, "name": 256, "description": 350, "phone": 20}


def _page(
    call: ApiCall,
    found: list[StripeObject],
    url: str,
    kind: str,
    render: Callable[[StripeObject], StripeObject],
) -> StripeObject:
    """One page of a list, newest first, as Stripe pages it."""
    params = call.params
    newest_first = found[::-1]  # the store keeps creation order
    ids = [obj["id"] for obj in newest_first]
    limit = expect_integer(params["limit"], "limit", 1, 100) if "limit" in params else 10
    if "starting_after" in params and "ending_before" in params:
        raise invalid("ending_before", "cannot be used together with starting_after")
    for cursor in ("starting_after", "ending_before"):
        if cursor in params and expect_string(params[cursor], cursor) not in ids:
            raise no_such(kind, params[cursor], cursor)
    if "starting_after" in params:
        window = newest_first[ids.index(params["starting_after"]) + 1 :]
        data, has_more = window[:limit], len(window) > limit
    elif "ending_before" in params:
        window = newest_first[: ids.index(params["ending_before"])]
        data, has_more = window[-limit:], len(window) > limit
    else:
        data, has_more = newest_first[:limit], len(newest_first) > limit
    return {"object": "list", "data": [render(obj) for obj in data], "has_more": has_more, "url": url}


def _deleted(obj: StripeObject) -> StripeObject:
    return {"id": obj["id"], "object": obj["object"], "deleted": True}


def _text_fields(params: dict[str, Any], limits: dict[str, int], *, clearable: bool) -> dict[str, Any]:
    read = expect_clearable_string if clearable else expect_string
    return {name: read(params[name], name, limit) for name, limit in limits.items() if name in params}


def _customer_fields(params: dict[str, Any], *, clearable: bool) -> dict[str, Any]:
    fields = _text_fields(params, CUSTOMER_TEXT, clearable=clearable)
    if fields.get("email") and not re.fullmatch(r"[^@\s]+@[^@\s]+", fields["email"]):
        raise StripeRequestError(400, "Invalid email address", param="email", code="email_invalid")
    if "preferred_locales" in params:
        locales = expect_list(params["preferred_locales"], "preferred_locales", max_items=10)
        fields["preferred_locales"] = [
            expect_string(locale, f"preferred_locales[{i}]", 20) for i, locale in enumerate(locales)
        ]
    return fields


def _customer(store: Store, customer_id: str, param: str = "") -> StripeObject:
    customer = store.live_customer(customer_id)
    if customer is None:
        raise no_such("customer", customer_id, param)
    return customer


def create_customer(store: Store, call: ApiCall) -> StripeObject:
    params = expect_object(call.params, "", {*CUSTOMER_TEXT, "metadata", "preferred_locales", "expand"})
    expansions(params, frozenset())
    fields = _customer_fields(params, clearable=False)
    metadata = expect_metadata(params["metadata"]) if "metadata" in params else None
    return store.create_customer(**fields, metadata=metadata)


def retrieve_customer(store: Store, call: ApiCall) -> StripeObject:
    expansions(expect_object(call.params, "", {"expand"}), frozenset())
    customer = store.customers.get(call.ident)
    if customer is None:
        raise no_such("customer", call.ident)
    return customer if not customer.get("deleted") else _deleted(customer)


def update_customer(store: Store, call: ApiCall) -> StripeObject:
    params = expect_object(call.params, "", {*CUSTOMER_TEXT, "metadata", "preferred_locales", "expand"})
    expansions(params, frozenset())
    customer = _customer(store, call.ident)
    fields = _customer_fields(params, clearable=True)
    if "metadata" in params:
        fields["metadata"] = expect_metadata(params["metadata"], customer["metadata"])
    customer.update(fields)
    return customer


def delete_customer(store: Store, call: ApiCall) -> StripeObject:
    expect_object(call.params, "", set())
    customer = _customer(store, call.ident)
    # Deleting a customer cancels its subscriptions at once.
    for subscription in store.subscriptions.values():
        if subscription["customer"] == customer["id"] and subscription["status"] not in ENDED:
            _end(subscription)
    customer["deleted"] = True
    return _deleted(customer)


def list_customers(store: Store, call: ApiCall) -> StripeObject:
    params = expect_object(call.params, "", {*LIST_PARAMETERS, "email"})
    expansions(params, frozenset(), list_prefix="data.")
    email = expect_string(params["email"], "email", 512) if "email" in params else None
    found = [c for c in store.customers.values() if not c.get("deleted") and email in (None, c["email"])]
    return _page(call, found, "/v1/customers", "customer", lambda c: c)


PRODUCT_WRITABLE = {"name", "active", "description", "metadata", "expand"}


def create_product(store: Store, call: ApiCall) -> StripeObject:
    params = expect_object(call.params, "", {*PRODUCT_WRITABLE, "id"})
    expansions(params, frozenset())
    name = expect_string(require(params, "name"), "name", 250)
    product_id = expect_string(params["id"], "id", 250) if "id" in params else None
    if product_id in store.products:
        raise StripeRequestError(
            400, f"Product already exists: {product_id}", param="id", code="resource_already_exists"
        )
    return store.create_product(
        name,
        product_id=product_id,
        active=expect_boolean(params["active"], "active") if "active" in params else True,
        description=expect_string(params["description"], "description") if "description" in params else None,
        metadata=expect_metadata(params["metadata"]) if "metadata" in params else None,
    )


def _product(store: Store, product_id: str, param: str = "") -> StripeObject:
    if product_id not in store.products:
        raise no_such("product", product_id, param)
    return store.products[product_id]


def _product_view(store: Store, product: StripeObject, expanded: set[str]) -> StripeObject:
    view = copy.deepcopy(product)
    if "default_price" in expanded and view["default_price"]:
        view["default_price"] = copy.deepcopy(store.prices[view["default_price"]])
    return view


def retrieve_product(store: Store, call: ApiCall) -> StripeObject:
    expanded = expansions(expect_object(call.params, "", {"expand"}), frozenset({"default_price"}))
    return _product_view(store, _product(store, call.ident), expanded)


def update_product(store: Store, call: ApiCall) -> StripeObject:
    params = expect_object(call.params, "", PRODUCT_WRITABLE)
    expanded = expansions(params, frozenset({"default_price"}))
    product = _product(store, call.ident)
    if "name" in params:
        product["name"] = expect_string(params["name"], "name", 250)
    if "active" in params:
        product["active"] = expect_boolean(params["active"], "active")
    if "description" in params:
        product["description"] = expect_clearable_string(params["description"], "description")
    if "metadata" in params:
        product["metadata"] = expect_metadata(params["metadata"], product["metadata"])
    product["updated"] = now()
    return _product_view(store, product, expanded)


def delete_product(store: Store, call: ApiCall) -> StripeObject:
    expect_object(call.params, "", set())
    product = _product(store, call.ident)
    if any(price["product"] == product["id"] for price in store.prices.values()):
        raise StripeRequestError(
            400, "This product cannot be deleted because it has one or more user-created prices."
        )
    del store.products[product["id"]]
    return _deleted(product)


def list_products(store: Store, call: ApiCall) -> StripeObject:
    params = expect_object(call.params, "", {*LIST_PARAMETERS, "active"})
    expanded = expansions(params, frozenset({"default_price"}), list_prefix="data.")
    active = expect_boolean(params["active"], "active") if "active" in params else None
    found = [p for p in store.products.values() if active in (None, p["active"])]
    return _page(call, found, "/v1/products", "product", lambda p: _product_view(store, p, expanded))


PRICE_WRITABLE = {"active", "metadata", "nickname", "lookup_key", "expand"}


def _price_view(store: Store, price: StripeObject, expanded: set[str]) -> StripeObject:
    view = copy.deepcopy(price)
    if "product" in expanded:
        view["product"] = copy.deepcopy(store.products[view["product"]])
    return view


def _price(store: Store, price_id: str, param: str = "") -> StripeObject:
    if price_id not in store.prices:
        raise no_such("price", price_id, param)
    return store.prices[price_id]


def _recurring(value: Any) -> tuple[str, int]:
    recurring = expect_object(value, "recurring", {"interval", "interval_count"})
    interval = expect_enum(require(recurring, "interval", "recurring"), "recurring[interval]", INTERVALS)
    count = (
        expect_integer(recurring["interval_count"], "recurring[interval_count]", 1, 365)
        if "interval_count" in recurring
        else 1
    )
    return interval, count


def create_price(store: Store, call: ApiCall) -> StripeObject:
    params = expect_object(
        call.params, "", {*PRICE_WRITABLE, "currency", "product", "unit_amount", "recurring"}
    )
    expanded = expansions(params, frozenset({"product"}))
    currency = expect_string(require(params, "currency"), "currency", 3)
    if not re.fullmatch(r"[a-z]{3}", currency):
        raise invalid("currency", "must be a three-letter ISO currency code in lowercase")
    product = _product(store, expect_string(require(params, "product"), "product"), "product")
    unit_amount = expect_integer(require(params, "unit_amount"), "unit_amount", 0, 99999999)
    interval, count = _recurring(params["recurring"]) if "recurring" in params else (None, 1)
    price = store.create_price(
        product["id"],
        unit_amount,
        currency,
        interval=interval,
        interval_count=count,
        active=expect_boolean(params["active"], "active") if "active" in params else True,
        nickname=expect_string(params["nickname"], "nickname") if "nickname" in params else None,
        lookup_key=expect_string(params["lookup_key"], "lookup_key", 200) if "lookup_key" in params else None,
        metadata=expect_metadata(params["metadata"]) if "metadata" in params else None,
    )
    return _price_view(store, price, expanded)


def retrieve_price(store: Store, call: ApiCall) -> StripeObject:
    expanded = expansions(expect_object(call.params, "", {"expand"}), frozenset({"product"}))
    return _price_view(store, _price(store, call.ident), expanded)


def update_price(store: Store, call: ApiCall) -> StripeObject:
    params = expect_object(call.params, "", PRICE_WRITABLE)
    expanded = expansions(params, frozenset({"product"}))
    price = _price(store, call.ident)
    if "active" in params:
        price["active"] = expect_boolean(params["active"], "active")
    for name in ("nickname", "lookup_key"):
        if name in params:
            price[name] = expect_clearable_string(params[name], name, 200)
    if "metadata" in params:
        price["metadata"] = expect_metadata(params["metadata"], price["metadata"])
    return _price_view(store, price, expanded)


def list_prices(store: Store, call: ApiCall) -> StripeObject:
    params = expect_object(call.params, "", {*LIST_PARAMETERS, "active", "product", "type", "currency"})
    expanded = expansions(params, frozenset({"product"}), list_prefix="data.")
    active = expect_boolean(params["active"], "active") if "active" in params else None
    product = expect_string(params["product"], "product") if "product" in params else None
    kind = expect_enum(params["type"], "type", ("one_time", "recurring")) if "type" in params else None
    currency = expect_string(params["currency"], "currency", 3) if "currency" in params else None
    found = [
        p
        for p in store.prices.values()
        if active in (None, p["active"])
        and product in (None, p["product"])
        and kind in (None, p["type"])
        and currency in (None, p["currency"])
    ]
    return _page(call, found, "/v1/prices", "price", lambda p: _price_view(store, p, expanded))


ENDED = ("canceled", "incomplete_expired")


def plan_of(price: StripeObject) -> StripeObject:
    """The legacy plan view Stripe still sends beside each subscription item's price."""
    recurring = price["recurring"]
    return {
        "id": price["id"],
        "object": "plan",
        "active": price["active"],
        "amount": price["unit_amount"],
        "amount_decimal": price["unit_amount_decimal"],
        "billing_scheme": price["billing_scheme"],
        "created": price["created"],
        "currency": price["currency"],
        "interval": recurring["interval"],
        "interval_count": recurring["interval_count"],
        "livemode": price["livemode"],
        "metadata": copy.deepcopy(price["metadata"]),
        "meter": None,
        "nickname": price["nickname"],
        "product": price["product"],
        "tiers_mode": None,
        "transform_usage": None,
        "trial_period_days": None,
        "usage_type": recurring["usage_type"],
    }


def subscription_view(store: Store, subscription: StripeObject, expanded: set[str]) -> StripeObject:
    items = []
    for item in subscription["items"]:
        price = _price_view(store, store.prices[item["price"]], set())
        if "items.data.price.product" in expanded:
            price["product"] = copy.deepcopy(store.products[price["product"]])
        items.append({**copy.deepcopy(item), "price": price, "plan": plan_of(store.prices[item["price"]])})
    view = {
        **copy.deepcopy(subscription),
        "items": {
            "object": "list",
            "data": items,
            "has_more": False,
            "url": f"/v1/subscription_items?subscription={subscription['id']}",
        },
    }
    if "customer" in expanded:
        view["customer"] = copy.deepcopy(store.customers[subscription["customer"]])
    return view


def _subscription(store: Store, subscription_id: str) -> StripeObject:
    if subscription_id not in store.subscriptions:
        raise no_such("subscription", subscription_id)
    return store.subscriptions[subscription_id]


def _items(store: Store, value: Any) -> list[tuple[str, int]]:
    items = expect_list(value, "items", MAX_SUBSCRIPTION_ITEMS)
    if not items:
        raise missing("items")
    result = []
    for index, raw in enumerate(items):
        param = f"items[{index}]"
        item = expect_object(raw, param, {"price", "quantity"})
        price = _price(
            store, expect_string(require(item, "price", param), f"{param}[price]"), f"{param}[price]"
        )
        if not price["active"] or price["recurring"] is None:
            raise invalid(f"{param}[price]", "must be an active recurring price")
        quantity = expect_integer(item["quantity"], f"{param}[quantity]") if "quantity" in item else 1
        result.append((price["id"], quantity))
    prices = [store.prices[price_id] for price_id, _ in result]
    shapes = {(p["currency"], p["recurring"]["interval"], p["recurring"]["interval_count"]) for p in prices}
    if len(shapes) > 1:
        raise invalid(
            "items", "Currency and interval fields must match across all plans on this subscription."
        )
    return result


def create_subscription(store: Store, call: ApiCall) -> StripeObject:
    params = expect_object(
        call.params,
        "",
        {
            "customer",
            "items",
            "metadata",
            "description",
            "cancel_at_period_end",
            "trial_period_days",
            "payment_behavior",
            "expand",
        },
    )
    expanded = expansions(params, SUBSCRIPTION_EXPANSIONS)
    customer = _customer(store, expect_string(require(params, "customer"), "customer"), "customer")
    items = _items(store, require(params, "items"))
    trial_days = (
        expect_integer(params["trial_period_days"], "trial_period_days", 1, 730)
        if "trial_period_days" in params
        else None
    )
    behavior = (
        expect_enum(
            params["payment_behavior"],
            "payment_behavior",
            ("allow_incomplete", "default_incomplete", "error_if_incomplete", "pending_if_incomplete"),
        )
        if "payment_behavior" in params
        else "allow_incomplete"
    )
    # The emulator holds no payment methods: only a trial or a deliberately incomplete start can begin.
    if trial_days is None and behavior != "default_incomplete":
        raise StripeRequestError(
            400,
            "This customer has no attached payment source or default payment method. "
            "Please consider adding a default payment method.",
            code="resource_missing",
        )
    subscription = store.create_subscription(
        customer["id"],
        items,
        status="trialing" if trial_days else "incomplete",
        cancel_at_period_end=(
            expect_boolean(params["cancel_at_period_end"], "cancel_at_period_end")
            if "cancel_at_period_end" in params
            else False
        ),
        description=expect_string(params["description"], "description", 500)
        if "description" in params
        else None,
        metadata=expect_metadata(params["metadata"]) if "metadata" in params else None,
        trial_days=trial_days,
    )
    return subscription_view(store, subscription, expanded)


def retrieve_subscription(store: Store, call: ApiCall) -> StripeObject:
    expanded = expansions(expect_object(call.params, "", {"expand"}), SUBSCRIPTION_EXPANSIONS)
    return subscription_view(store, _subscription(store, call.ident), expanded)


def _cancellation_details(value: Any) -> dict[str, str | None]:
    details = expect_object(value, "cancellation_details", {"comment", "feedback"})
    feedback = details.get("feedback") or None
    if feedback is not None:
        feedback = expect_enum(
            feedback,
            "cancellation_details[feedback]",
            (
                "customer_service",
                "low_quality",
                "missing_features",
                "other",
                "switched_service",
                "too_complex",
                "too_expensive",
                "unused",
            ),
        )
    comment = (
        expect_clearable_string(details["comment"], "cancellation_details[comment]", 5000)
        if "comment" in details
        else None
    )
    return {"comment": comment, "feedback": feedback}


def update_subscription(store: Store, call: ApiCall) -> StripeObject:
    params = expect_object(
        call.params, "", {"cancel_at_period_end", "cancellation_details", "description", "metadata", "expand"}
    )
    expanded = expansions(params, SUBSCRIPTION_EXPANSIONS)
    subscription = _subscription(store, call.ident)
    if subscription["status"] in ENDED and set(params) - {"cancellation_details", "metadata", "expand"}:
        raise StripeRequestError(
            400, "A canceled subscription can only update its cancellation_details and metadata."
        )
    if "cancel_at_period_end" in params:
        schedule_cancellation(
            subscription, expect_boolean(params["cancel_at_period_end"], "cancel_at_period_end")
        )
    if "cancellation_details" in params:
        subscription["cancellation_details"].update(_cancellation_details(params["cancellation_details"]))
    if "description" in params:
        subscription["description"] = expect_clearable_string(params["description"], "description", 500)
    if "metadata" in params:
        subscription["metadata"] = expect_metadata(params["metadata"], subscription["metadata"])
    return subscription_view(store, subscription, expanded)


def _end(subscription: StripeObject) -> None:
    moment = now()
    subscription.update(status="canceled", canceled_at=moment, ended_at=moment, cancel_at_period_end=False)
    subscription["cancellation_details"]["reason"] = "cancellation_requested"


def cancel_subscription(store: Store, call: ApiCall) -> StripeObject:
    params = expect_object(call.params, "", {"cancellation_details", "invoice_now", "prorate", "expand"})
    expanded = expansions(params, SUBSCRIPTION_EXPANSIONS)
    subscription = _subscription(store, call.ident)
    for flag in ("invoice_now", "prorate"):
        if flag in params:
            expect_boolean(params[flag], flag)
    details = (
        _cancellation_details(params["cancellation_details"]) if "cancellation_details" in params else {}
    )
    # Stripe treats an ended subscription as gone for cancellation.
    if subscription["status"] in ENDED:
        raise no_such("subscription", subscription["id"])
    _end(subscription)
    subscription["cancellation_details"].update(details)
    return subscription_view(store, subscription, expanded)


def list_subscriptions(store: Store, call: ApiCall) -> StripeObject:
    params = expect_object(call.params, "", {*LIST_PARAMETERS, "customer", "status", "price"})
    expanded = expansions(params, SUBSCRIPTION_EXPANSIONS, list_prefix="data.")
    customer = expect_string(params["customer"], "customer") if "customer" in params else None
    price = expect_string(params["price"], "price") if "price" in params else None
    status = (
        expect_enum(params["status"], "status", (*SUBSCRIPTION_STATUSES, "all", "ended"))
        if "status" in params
        else None
    )

    def wanted(subscription: StripeObject) -> bool:
        if status is None:
            return bool(subscription["status"] != "canceled")
        if status == "ended":
            return bool(subscription["status"] in ENDED)
        return status in ("all", subscription["status"])

    found = [
        s
        for s in store.subscriptions.values()
        if customer in (None, s["customer"])
        and (price is None or any(item["price"] == price for item in s["items"]))
        and wanted(s)
    ]
    return _page(
        call, found, "/v1/subscriptions", "subscription", lambda s: subscription_view(store, s, expanded)
    )


ID = r"(?P<ident>[^/]+)"
ROUTES = (
    Route("POST", "/v1/customers", create_customer),
    Route("GET", "/v1/customers", list_customers),
    Route("GET", f"/v1/customers/{ID}", retrieve_customer),
    Route("POST", f"/v1/customers/{ID}", update_customer),
    Route("DELETE", f"/v1/customers/{ID}", delete_customer),
    Route("POST", "/v1/products", create_product),
    Route("GET", "/v1/products", list_products),
    Route("GET", f"/v1/products/{ID}", retrieve_product),
    Route("POST", f"/v1/products/{ID}", update_product),
    Route("DELETE", f"/v1/products/{ID}", delete_product),
    Route("POST", "/v1/prices", create_price),
    Route("GET", "/v1/prices", list_prices),
    Route("GET", f"/v1/prices/{ID}", retrieve_price),
    Route("POST", f"/v1/prices/{ID}", update_price),
    Route("POST", "/v1/subscriptions", create_subscription),
    Route("GET", "/v1/subscriptions", list_subscriptions),
    Route("GET", f"/v1/subscriptions/{ID}", retrieve_subscription),
    Route("POST", f"/v1/subscriptions/{ID}", update_subscription),
    Route("DELETE", f"/v1/subscriptions/{ID}", cancel_subscription),
)
