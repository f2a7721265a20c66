"""Customers, products, prices and subscriptions: the endpoints Stripe offers for them, with its rules.

Lists are newest first and paginate with `limit`, `starting_after` and `ending_before`. A subscription's
items always carry their full price (and plan); the price's product is an id unless expanded.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from local.stripe_emulator.params import (
    MAX_STRING,
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
    unknown,
)
from local.stripe_emulator.state import (
    ACCOUNTS_SINCE,
    INTERVALS,
    Store,
    StripeObject,
    now,
    schedule_cancellation,
)

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
ENDED = ("canceled", "incomplete_expired")
MAX_SUBSCRIPTION_ITEMS = 20

Reader = Callable[[Any, str], Any]  # (form value, parameter name) → the value to store
View = Callable[[Store, StripeObject, set[str]], StripeObject]


def text(max_length: int = MAX_STRING) -> Reader:
    return lambda value, param: expect_string(value, param, max_length)


def clearable(max_length: int = MAX_STRING) -> Reader:
    """Where Stripe's typed params allow `''`, an empty string unsets the field."""
    return lambda value, param: expect_clearable_string(value, param, max_length)


def email(value: Any, param: str) -> str:
    address = expect_string(value, param, 512)
    if not re.fullmatch(r"[^@\s]+@[^@\s]+", address):
        raise StripeRequestError(400, "Invalid email address", param=param, code="email_invalid")
    return address


def locales(value: Any, param: str) -> list[str]:
    return [expect_string(v, f"{param}[{i}]", 20) for i, v in enumerate(expect_list(value, param, 10))]


def read(params: dict[str, Any], readers: dict[str, Reader]) -> dict[str, Any]:
    return {name: reader(params[name], name) for name, reader in readers.items() if name in params}


@dataclass(frozen=True)
class Collection:
    """What retrieving, updating and listing one kind of object share."""

    kind: str
    plural: str  # its URL under /v1/ and its table in the store
    references: dict[str, str] = field(default_factory=dict)  # id field → the collection it expands to
    writable: dict[str, Reader] = field(default_factory=dict)  # besides metadata, on create and update
    filters: dict[str, Reader] = field(default_factory=dict)  # list parameters matched field by field
    nested: frozenset[str] = frozenset()  # deeper `expand[]` paths, which `shaped` must then render
    shaped: View | None = None

    @property
    def path(self) -> str:
        return f"/v1/{self.plural}"

    @property
    def expandable(self) -> frozenset[str]:
        return frozenset(self.references) | self.nested

    def objects(self, store: Store) -> dict[str, StripeObject]:
        table: dict[str, StripeObject] = getattr(store, self.plural)
        return table

    def view(self, store: Store, obj: StripeObject, expanded: set[str]) -> StripeObject:
        """The object as the API sends it: a copy, with each id field asked for in `expand[]` expanded."""
        result = copy.deepcopy(obj)
        for name, plural in self.references.items():
            if name in expanded and result[name] is not None:
                result[name] = copy.deepcopy(getattr(store, plural)[result[name]])
        return self.shaped(store, result, expanded) if self.shaped else result

    def find(self, store: Store, ident: str, param: str = "") -> StripeObject:
        found = self.objects(store).get(ident)
        if found is None or found.get("deleted"):
            raise no_such(self.kind, ident, param)
        return found

    def retrieve(self, store: Store, call: ApiCall) -> StripeObject:
        expanded = expansions(expect_object(call.params, "", {"expand"}), self.expandable)
        found = self.objects(store).get(call.ident)
        if found is not None and found.get("deleted"):
            return _deleted(found)
        return self.view(store, self.find(store, call.ident), expanded)

    def changes(self, found: StripeObject, params: dict[str, Any]) -> dict[str, Any]:
        """The writable fields `params` sets, all validated before any is applied."""
        changed = read(params, self.writable)
        if "metadata" in params:
            changed["metadata"] = expect_metadata(params["metadata"], found["metadata"])
        if "updated" in found:
            changed["updated"] = now()
        return changed

    def update(self, store: Store, call: ApiCall) -> StripeObject:
        params = expect_object(call.params, "", {*self.writable, "metadata", "expand"})
        expanded = expansions(params, self.expandable)
        found = self.find(store, call.ident)
        found.update(self.changes(found, params))
        return self.view(store, found, expanded)

    def list(
        self,
        store: Store,
        call: ApiCall,
        wanted: Callable[[StripeObject], bool] = bool,
        also: frozenset[str] = frozenset(),
    ) -> StripeObject:
        """A page of the objects whose fields match the filters given and that `wanted` keeps."""
        params = expect_object(call.params, "", {*LIST_PARAMETERS, *self.filters, *also})
        expanded = expansions(params, self.expandable, list_prefix="data.")
        asked = read(params, self.filters)
        found = [
            obj
            for obj in self.objects(store).values()
            if not obj.get("deleted") and all(obj[k] == v for k, v in asked.items()) and wanted(obj)
        ]
        return _page(call, found, self.path, self.kind, lambda obj: self.view(store, obj, expanded))


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


def _metadata(params: dict[str, Any]) -> dict[str, str] | None:
    return expect_metadata(params["metadata"]) if "metadata" in params else None


CUSTOMERS = Collection(
    "customer",
    "customers",
    writable={
        "email": email,
        "name": text(256),
        "description": text(350),
        "phone": text(20),
        "preferred_locales": locales,
    },
    filters={"email": text(512)},
)


def create_customer(store: Store, call: ApiCall) -> StripeObject:
    params = expect_object(call.params, "", {*CUSTOMERS.writable, "metadata", "expand"})
    expansions(params, CUSTOMERS.expandable)
    customer = store.create_customer(**read(params, CUSTOMERS.writable), metadata=_metadata(params))
    store.emit("customer.created", customer, call.api_version)
    return customer


def update_customer(store: Store, call: ApiCall) -> StripeObject:
    updated = CUSTOMERS.update(store, call)
    store.emit("customer.updated", CUSTOMERS.find(store, call.ident), call.api_version)
    return updated


def delete_customer(store: Store, call: ApiCall) -> StripeObject:
    expect_object(call.params, "", set())
    customer = CUSTOMERS.find(store, call.ident)
    # Deleting a customer cancels its subscriptions at once.
    for subscription in store.subscriptions.values():
        if subscription["customer"] == customer["id"] and subscription["status"] not in ENDED:
            _end(subscription)
    store.emit("customer.deleted", customer, call.api_version)
    customer["deleted"] = True
    return _deleted(customer)


# `field:'value'` clauses joined by AND or OR (not both), as Stripe's search query language writes them.
SEARCH_CLAUSE = re.compile(r"(email|name|phone|metadata\['([^'\\]{1,40})'\]):'((?:[^'\\]|\\.){0,500})'")


def search_customers(store: Store, call: ApiCall) -> StripeObject:
    """`GET /v1/customers/search`: exact matches on email, name, phone and metadata keys."""
    params = expect_object(call.params, "", {"query", "limit", "page", "expand"})
    query = expect_string(require(params, "query"), "query")
    limit = expect_integer(params["limit"], "limit", 1, 100) if "limit" in params else 10
    joiner = " OR " if " OR " in query else " AND "
    clauses = []
    for part in query.split(joiner):
        match = SEARCH_CLAUSE.fullmatch(part.strip())
        if match is None:
            raise invalid("query", f"the search query could not be parsed near {part.strip()[:40]!r}")
        field_name, metadata_key, value = match.groups()
        clauses.append((metadata_key, field_name, re.sub(r"\\(.)", r"\1", value)))

    def matches(customer: StripeObject, clause: tuple[str | None, str, str]) -> bool:
        metadata_key, field_name, value = clause
        held = customer["metadata"].get(metadata_key) if metadata_key else customer.get(field_name)
        return held == value

    combine = any if joiner == " OR " else all
    found = [
        c
        for c in store.customers.values()
        if not c.get("deleted") and combine(matches(c, clause) for clause in clauses)
    ][::-1]
    return {
        "object": "search_result",
        "data": [CUSTOMERS.view(store, c, set()) for c in found[:limit]],
        "has_more": len(found) > limit,
        "next_page": None,
        "url": "/v1/customers/search",
    }


PRODUCTS = Collection(
    "product",
    "products",
    {"default_price": "prices"},
    writable={"name": text(250), "active": expect_boolean, "description": clearable()},
    filters={"active": expect_boolean},
)


def create_product(store: Store, call: ApiCall) -> StripeObject:
    params = expect_object(call.params, "", {*PRODUCTS.writable, "id", "metadata", "expand"})
    expanded = expansions(params, PRODUCTS.expandable)
    fields = read(params, {**PRODUCTS.writable, "name": text(250), "description": text()})
    if "name" not in fields:
        raise missing("name")
    product_id = expect_string(params["id"], "id", 250) if "id" in params else None
    if product_id in store.products:
        raise StripeRequestError(
            400, f"Product already exists: {product_id}", param="id", code="resource_already_exists"
        )
    product = store.create_product(**fields, product_id=product_id, metadata=_metadata(params))
    return PRODUCTS.view(store, product, expanded)


def delete_product(store: Store, call: ApiCall) -> StripeObject:
    expect_object(call.params, "", set())
    product = PRODUCTS.find(store, call.ident)
    if any(price["product"] == product["id"] for price in store.prices.values()):
        raise StripeRequestError(
            400, "This product cannot be deleted because it has one or more user-created prices."
        )
    del store.products[product["id"]]
    return _deleted(product)


PRICES = Collection(
    "price",
    "prices",
    {"product": "products"},
    writable={"active": expect_boolean, "nickname": text(), "lookup_key": text(200)},
    filters={
        "active": expect_boolean,
        "product": text(),
        "type": lambda value, param: expect_enum(value, param, ("one_time", "recurring")),
        "currency": text(3),
    },
)


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
        call.params,
        "",
        {*PRICES.writable, "metadata", "expand", "currency", "product", "unit_amount", "recurring"},
    )
    expanded = expansions(params, PRICES.expandable)
    currency = expect_string(require(params, "currency"), "currency", 3)
    if not re.fullmatch(r"[a-z]{3}", currency):
        raise invalid("currency", "must be a three-letter ISO currency code in lowercase")
    product = PRODUCTS.find(store, expect_string(require(params, "product"), "product"), "product")
    unit_amount = expect_integer(require(params, "unit_amount"), "unit_amount", 0, 99999999)
    interval, count = _recurring(params["recurring"]) if "recurring" in params else (None, 1)
    price = store.create_price(
        product["id"],
        unit_amount,
        currency,
        interval=interval,
        interval_count=count,
        metadata=_metadata(params),
        **read(params, PRICES.writable),
    )
    return PRICES.view(store, price, expanded)


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


def _with_items(store: Store, subscription: StripeObject, expanded: set[str]) -> StripeObject:
    """Items as Stripe lists them on a subscription: each with its full price and its plan."""
    price_expansions = {"product"} if "items.data.price.product" in expanded else set()
    data = [
        {
            **item,
            "price": PRICES.view(store, store.prices[item["price"]], price_expansions),
            "plan": plan_of(store.prices[item["price"]]),
        }
        for item in subscription["items"]
    ]
    url = f"/v1/subscription_items?subscription={subscription['id']}"
    return {**subscription, "items": {"object": "list", "data": data, "has_more": False, "url": url}}


SUBSCRIPTIONS = Collection(
    "subscription",
    "subscriptions",
    {"customer": "customers"},
    writable={"description": clearable(500), "cancel_at_period_end": expect_boolean},
    filters={"customer": text()},
    nested=frozenset({"items.data.price.product"}),
    shaped=_with_items,
)


def _items(store: Store, value: Any) -> list[tuple[str, int]]:
    items = expect_list(value, "items", MAX_SUBSCRIPTION_ITEMS)
    if not items:
        raise missing("items")
    result = []
    for index, raw in enumerate(items):
        param = f"items[{index}]"
        item = expect_object(raw, param, {"price", "quantity"})
        price_id = expect_string(require(item, "price", param), f"{param}[price]")
        price = PRICES.find(store, price_id, f"{param}[price]")
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
            *SUBSCRIPTIONS.writable,
            "customer",
            "items",
            "metadata",
            "trial_period_days",
            "payment_behavior",
            "expand",
        },
    )
    expanded = expansions(params, SUBSCRIPTIONS.expandable)
    customer = CUSTOMERS.find(store, expect_string(require(params, "customer"), "customer"), "customer")
    items = _items(store, require(params, "items"))
    trial_days = (
        expect_integer(params["trial_period_days"], "trial_period_days", 1, 730)
        if "trial_period_days" in params
        else None
    )
    behaviors = ("allow_incomplete", "default_incomplete", "error_if_incomplete", "pending_if_incomplete")
    behavior = (
        expect_enum(params["payment_behavior"], "payment_behavior", behaviors)
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
        metadata=_metadata(params),
        trial_days=trial_days,
        **read(params, {**SUBSCRIPTIONS.writable, "description": text(500)}),
    )
    return SUBSCRIPTIONS.view(store, subscription, expanded)


FEEDBACK = (
    "customer_service",
    "low_quality",
    "missing_features",
    "other",
    "switched_service",
    "too_complex",
    "too_expensive",
    "unused",
)


def _cancellation_details(value: Any) -> dict[str, str | None]:
    param = "cancellation_details"
    details = expect_object(value, param, {"comment", "feedback"})
    feedback = details.get("feedback") or None
    comment = details.get("comment") or None
    return {
        "comment": None if comment is None else expect_string(comment, f"{param}[comment]"),
        "feedback": None if feedback is None else expect_enum(feedback, f"{param}[feedback]", FEEDBACK),
    }


def update_subscription(store: Store, call: ApiCall) -> StripeObject:
    params = expect_object(
        call.params, "", {*SUBSCRIPTIONS.writable, "cancellation_details", "metadata", "expand"}
    )
    expanded = expansions(params, SUBSCRIPTIONS.expandable)
    subscription = SUBSCRIPTIONS.find(store, call.ident)
    if subscription["status"] in ENDED and set(params) - {"cancellation_details", "metadata", "expand"}:
        raise StripeRequestError(
            400, "A canceled subscription can only update its cancellation_details and metadata."
        )
    changes = SUBSCRIPTIONS.changes(subscription, params)
    details = (
        _cancellation_details(params["cancellation_details"]) if "cancellation_details" in params else {}
    )
    ending = changes.pop("cancel_at_period_end", None)
    subscription.update(changes)
    if ending is not None:
        schedule_cancellation(subscription, ending)
    subscription["cancellation_details"].update(details)
    return SUBSCRIPTIONS.view(store, subscription, expanded)


def _end(subscription: StripeObject) -> None:
    moment = now()
    subscription.update(status="canceled", canceled_at=moment, ended_at=moment, cancel_at_period_end=False)
    subscription["cancellation_details"]["reason"] = "cancellation_requested"


def cancel_subscription(store: Store, call: ApiCall) -> StripeObject:
    params = expect_object(call.params, "", {"cancellation_details", "invoice_now", "prorate", "expand"})
    expanded = expansions(params, SUBSCRIPTIONS.expandable)
    subscription = SUBSCRIPTIONS.find(store, call.ident)
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
    return SUBSCRIPTIONS.view(store, subscription, expanded)


def list_subscriptions(store: Store, call: ApiCall) -> StripeObject:
    params = call.params
    accounts_known = call.api_version[:10] >= ACCOUNTS_SINCE[:10]
    if "customer_account" in params and not accounts_known:
        raise unknown("customer_account")
    account = (
        expect_string(params["customer_account"], "customer_account")
        if "customer_account" in params
        else None
    )
    price = expect_string(params["price"], "price") if "price" in params else None
    status = (
        expect_enum(params["status"], "status", (*SUBSCRIPTION_STATUSES, "all", "ended"))
        if "status" in params
        else None
    )

    def wanted(subscription: StripeObject) -> bool:
        if account is not None and subscription["customer_account"] != account:
            return False
        if price is not None and all(item["price"] != price for item in subscription["items"]):
            return False
        if status is None:
            return bool(subscription["status"] != "canceled")
        if status == "ended":
            return bool(subscription["status"] in ENDED)
        return status in ("all", subscription["status"])

    also = {"price", "status"} | ({"customer_account"} if accounts_known else set())
    return SUBSCRIPTIONS.list(store, call, wanted, also=frozenset(also))


def list_products(store: Store, call: ApiCall) -> StripeObject:
    """`GET /v1/products`, with Stripe's `ids` filter: only the products with these ids."""
    ids = None
    if "ids" in call.params:
        ids = {
            expect_string(i, f"ids[{n}]")
            for n, i in enumerate(expect_list(call.params["ids"], "ids", 10_000))
        }
    return PRODUCTS.list(
        store, call, lambda product: ids is None or product["id"] in ids, also=frozenset({"ids"})
    )


ID = r"(?P<ident>[^/]+)"


def collection_routes(collection: Collection) -> tuple[Route, ...]:
    return (
        Route("GET", collection.path, collection.list),
        Route("GET", f"{collection.path}/{ID}", collection.retrieve),
        Route("POST", f"{collection.path}/{ID}", collection.update),
    )


ROUTES = (
    Route("POST", "/v1/customers", create_customer),
    Route("GET", "/v1/customers/search", search_customers),
    Route("POST", f"/v1/customers/{ID}", update_customer),
    *collection_routes(CUSTOMERS),
    Route("DELETE", f"/v1/customers/{ID}", delete_customer),
    Route("POST", "/v1/products", create_product),
    Route("GET", "/v1/products", list_products),
    *collection_routes(PRODUCTS),
    Route("DELETE", f"/v1/products/{ID}", delete_product),
    Route("POST", "/v1/prices", create_price),
    *collection_routes(PRICES),
    Route("POST", "/v1/subscriptions", create_subscription),
    Route("GET", "/v1/subscriptions", list_subscriptions),
    Route("GET", f"/v1/subscriptions/{ID}", SUBSCRIPTIONS.retrieve),
    Route("POST", f"/v1/subscriptions/{ID}", update_subscription),
    Route("DELETE", f"/v1/subscriptions/{ID}", cancel_subscription),
)
