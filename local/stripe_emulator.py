"""A Stripe-compatible HTTP server for the endpoints Portal Links calls, on 127.0.0.1.

Form-encoded like Stripe, strict like Stripe (unknown, missing or malformed parameters → 400
`invalid_request_error` naming the parameter), stateful for customers and subscriptions, honouring
`Idempotency-Key` (a concurrent duplicate gets 409 with `Stripe-Should-Retry: true`, a finished one is
replayed), with fault injection (status, delay) for tests. The billing-portal rules follow
shared/reference: required sub-objects per flow type, enums, lengths, unknown keys at any depth.

Run standalone: `python -m local.stripe_emulator --port 12111`.
"""

from __future__ import annotations

import argparse
import html
import json
import re
import secrets
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from local.server import LocalServer, Reply, serve_in_background

# The 47 locale values of the portal session (shared/reference/003).
LOCALES = frozenset(
    (
        "auto bg cs da de el en en-AU en-CA en-GB en-IE en-IN en-NZ en-SG es es-419 et fi fil fr fr-CA hr hu "
        "id it ja ko lt lv ms mt nb nl pl pt pt-BR ro ru sk sl sv th tr vi zh zh-HK zh-TW"
    ).split()
)
CLASSIC_FLOW_TYPES = (
    "payment_method_update",
    "subscription_cancel",
    "subscription_update",
    "subscription_update_confirm",
)
NEWER_FLOW_TYPES = ("customer_update", "subscription_pause")
# API versions from this date on know the newer flow types and `after_expiration` (customer_update arrived
# in 2026-08-26.dahlia; subscription_pause is gated on the same date here).
NEWER_FLOWS_SINCE = "2026-08-26"
DEFAULT_API_VERSION = "2026-10-28.endive"
MAX_STRING = 5000
MAX_CUSTOM_MESSAGE = 500
ID_PATTERN = re.compile(r"^[A-Za-z0-9_]+$")


class StripeRequestError(Exception):
    def __init__(
        self,
        status: int,
        message: str,
        *,
        param: str | None = None,
        code: str | None = None,
        kind: str = "invalid_request_error",
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status, self.message, self.param, self.code, self.kind = status, message, param, code, kind
        self.headers = headers or {}

    def body(self) -> dict[str, Any]:
        error: dict[str, Any] = {"type": self.kind, "message": self.message}
        if self.param:
            error["param"] = self.param
        if self.code:
            error["code"] = self.code
        return {"error": error}


def unknown(param: str) -> StripeRequestError:
    return StripeRequestError(
        400, f"Received unknown parameter: {param}", param=param, code="parameter_unknown"
    )


def missing(param: str) -> StripeRequestError:
    return StripeRequestError(400, f"Missing required param: {param}.", param=param, code="parameter_missing")


def invalid(param: str, why: str) -> StripeRequestError:
    return StripeRequestError(400, f"Invalid {param}: {why}", param=param, code="parameter_invalid")


def no_such(kind: str, ident: str, param: str) -> StripeRequestError:
    return StripeRequestError(
        400 if param else 404, f"No such {kind}: '{ident}'", param=param or None, code="resource_missing"
    )


def decode_form(pairs: list[tuple[str, str]]) -> dict[str, Any]:
    """`a[b][0][c]=v` → {"a": {"b": {"0": {"c": "v"}}}}; arrays are read where a list is expected."""
    root: dict[str, Any] = {}
    for key, value in pairs:
        head, _, rest = key.partition("[")
        path = [head, *re.findall(r"([^\[\]]*)\]", "[" + rest)] if rest else [head]
        node = root
        for part in path[:-1]:
            child = node.setdefault(part, {})
            if not isinstance(child, dict):
                raise invalid(key, "mixes a value and an object")
            node = child
        leaf = path[-1] if path[-1] != "" else str(len(node))
        if leaf in node:
            raise invalid(key, "given more than once")
        node[leaf] = value
    return root


def _name(prefix: str, key: str | int) -> str:
    return f"{prefix}[{key}]" if prefix else str(key)


def expect_object(value: Any, param: str, allowed: set[str]) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise invalid(param, "expected an object")
    for key in value:
        if key not in allowed:
            raise unknown(_name(param, key))
    return value


def expect_string(value: Any, param: str, max_length: int = MAX_STRING) -> str:
    if not isinstance(value, str):
        raise invalid(param, "expected a string")
    if value == "":
        raise StripeRequestError(
            400, f"You passed an empty string for '{param}'.", param=param, code="parameter_invalid_empty"
        )
    if len(value) > max_length:
        raise invalid(param, f"must be at most {max_length} characters")
    return value


def expect_enum(value: Any, param: str, allowed: tuple[str, ...] | frozenset[str]) -> str:
    text = expect_string(value, param)
    if text not in allowed:
        raise invalid(param, f"must be one of {', '.join(sorted(allowed))}")
    return text


def expect_integer(value: Any, param: str, low: int = 0, high: int = 2**31 - 1) -> int:
    if not isinstance(value, str) or not re.fullmatch(r"-?\d+", value):
        raise StripeRequestError(
            400, f"Invalid integer: {value}", param=param, code="parameter_invalid_integer"
        )
    number = int(value)
    if not low <= number <= high:
        raise invalid(param, f"must be between {low} and {high}")
    return number


def expect_url(value: Any, param: str) -> str:
    text = expect_string(value, param)
    parts = urlsplit(text)
    if parts.scheme not in ("http", "https") or not parts.netloc or any(ch.isspace() for ch in text):
        raise StripeRequestError(400, "Not a valid URL", param=param, code="url_invalid")
    return text


def expect_list(value: Any, param: str, max_items: int) -> list[Any]:
    if isinstance(value, dict) and all(key.isdigit() for key in value):
        value = [value[key] for key in sorted(value, key=int)]
    if not isinstance(value, list) or any(item is None for item in value):
        raise invalid(param, "expected an array")
    if len(value) > max_items:
        raise invalid(param, f"accepts at most {max_items} item(s)")
    return value


def new_id(prefix: str) -> str:
    return f"{prefix}_{secrets.token_hex(7)}"


@dataclass
class Fault:
    method: str
    path: str
    status: int = 500  # 0: only delay the request, then handle it normally
    delay: float = 0.0
    remaining: int = 1
    should_retry: bool | None = None
    error_type: str = "api_error"


@dataclass
class RecordedRequest:
    method: str
    path: str
    params: dict[str, Any]
    idempotency_key: str | None
    stripe_version: str | None
    status: int = 0


@dataclass
class EmulatorState:
    customers: dict[str, dict[str, Any]] = field(default_factory=dict)
    subscriptions: dict[str, dict[str, Any]] = field(default_factory=dict)
    prices: dict[str, dict[str, Any]] = field(default_factory=dict)
    products: dict[str, dict[str, Any]] = field(default_factory=dict)
    configurations: set[str] = field(default_factory=set)
    coupons: set[str] = field(default_factory=set)
    promotion_codes: set[str] = field(default_factory=set)
    sessions: dict[str, dict[str, Any]] = field(default_factory=dict)
    requests: list[RecordedRequest] = field(default_factory=list)
    faults: list[Fault] = field(default_factory=list)
    latency: dict[str, float] = field(default_factory=dict)
    idempotency: dict[str, tuple[str, int, dict[str, Any]] | None] = field(default_factory=dict)


class StripeEmulator:
    """The emulator's state and rules; `serve()` puts it on 127.0.0.1."""

    def __init__(self, public_url: str = "") -> None:
        self.lock = threading.RLock()
        self.state = EmulatorState()
        self.public_url = public_url
        self._server: LocalServer | None = None

    def reset(self) -> None:
        with self.lock:
            self.state = EmulatorState()

    def add_product(self, name: str, product_id: str | None = None) -> str:
        product_id = product_id or new_id("prod")
        with self.lock:
            self.state.products[product_id] = {
                "id": product_id,
                "object": "product",
                "name": name,
                "active": True,
            }
        return product_id

    def add_price(
        self,
        product: str,
        unit_amount: int,
        interval: str = "month",
        price_id: str | None = None,
        currency: str = "usd",
    ) -> str:
        price_id = price_id or new_id("price")
        with self.lock:
            self.state.prices[price_id] = {
                "id": price_id,
                "object": "price",
                "product": product,
                "unit_amount": unit_amount,
                "currency": currency,
                "recurring": {"interval": interval},
                "active": True,
            }
        return price_id

    def add_customer(
        self, email: str | None = None, name: str | None = None, metadata: dict[str, str] | None = None
    ) -> str:
        with self.lock:
            return str(
                self._create_customer({"email": email, "name": name, "metadata": metadata or {}})["id"]
            )

    def add_subscription(
        self,
        customer: str,
        prices: list[str],
        status: str = "active",
        quantity: int = 1,
        cancel_at_period_end: bool = False,
    ) -> str:
        subscription_id = new_id("sub")
        with self.lock:
            items = [
                {"id": new_id("si"), "object": "subscription_item", "price": price, "quantity": quantity}
                for price in prices
            ]
            self.state.subscriptions[subscription_id] = {
                "id": subscription_id,
                "object": "subscription",
                "customer": customer,
                "status": status,
                "cancel_at_period_end": cancel_at_period_end,
                "items": items,
                "livemode": False,
                "created": int(time.time()),
            }
        return subscription_id

    def add_configuration(self, configuration_id: str) -> None:
        with self.lock:
            self.state.configurations.add(configuration_id)

    def add_coupon(self, coupon_id: str) -> None:
        with self.lock:
            self.state.coupons.add(coupon_id)

    def add_promotion_code(self, promotion_code_id: str) -> None:
        with self.lock:
            self.state.promotion_codes.add(promotion_code_id)

    def inject_fault(
        self,
        method: str,
        path: str,
        status: int = 500,
        *,
        delay: float = 0.0,
        times: int = 1,
        should_retry: bool | None = None,
        error_type: str = "api_error",
    ) -> None:
        with self.lock:
            self.state.faults.append(Fault(method, path, status, delay, times, should_retry, error_type))

    def set_latency(self, method: str, path: str, seconds: float) -> None:
        with self.lock:
            self.state.latency[f"{method} {path}"] = seconds

    def requests_to(self, method: str, path: str) -> list[RecordedRequest]:
        with self.lock:
            return [r for r in self.state.requests if r.method == method and r.path == path]

    def handle(
        self, method: str, path: str, pairs: list[tuple[str, str]], headers: dict[str, str]
    ) -> tuple[int, dict[str, Any], dict[str, str]]:
        """One API request → (status, JSON body, extra headers)."""
        key = headers.get("idempotency-key")
        record = RecordedRequest(method, path, {}, key, headers.get("stripe-version"))
        with self.lock:
            self.state.requests.append(record)
            fault = self._take_fault(method, path)
            latency = self.state.latency.get(f"{method} {path}", 0.0)
        if fault is not None:
            time.sleep(fault.delay)
            if fault.status >= 400:
                extra = (
                    {}
                    if fault.should_retry is None
                    else {"Stripe-Should-Retry": "true" if fault.should_retry else "false"}
                )
                error = StripeRequestError(
                    fault.status, "Injected fault", kind=fault.error_type, headers=extra
                )
                record.status = error.status
                return error.status, error.body(), error.headers
        try:
            self._authenticate(headers)
            params = decode_form(pairs)
            record.params = params
            status, body, extra = self._idempotent(
                method, path, params, key=key, latency=latency, headers=headers
            )
        except StripeRequestError as error:
            status, body, extra = error.status, error.body(), error.headers
        record.status = status
        return status, body, extra

    def _take_fault(self, method: str, path: str) -> Fault | None:
        for fault in self.state.faults:
            if fault.method == method and fault.path == path and fault.remaining > 0:
                fault.remaining -= 1
                return fault
        return None

    def _authenticate(self, headers: dict[str, str]) -> None:
        scheme, _, api_key = headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not re.fullmatch(r"(sk|rk)_test_[A-Za-z0-9_]+", api_key):
            raise StripeRequestError(401, "Invalid API Key provided.")

    def _idempotent(
        self,
        method: str,
        path: str,
        params: dict[str, Any],
        key: str | None,
        latency: float,
        headers: dict[str, str],
    ) -> tuple[int, dict[str, Any], dict[str, str]]:
        if method != "POST" or not key:
            time.sleep(latency)
            with self.lock:
                return self._route(method, path, params, headers)
        fingerprint = json.dumps([method, path, params], sort_keys=True)
        with self.lock:
            if key in self.state.idempotency:
                stored = self.state.idempotency[key]
                if stored is None:
                    raise StripeRequestError(
                        409,
                        "There is currently another in-progress request using this Idempotent Key.",
                        kind="idempotency_error",
                        code="idempotency_key_in_use",
                        headers={"Stripe-Should-Retry": "true"},
                    )
                if stored[0] != fingerprint:
                    raise StripeRequestError(
                        400,
                        "Keys for idempotent requests can only be used with the same parameters "
                        "they were first used with.",
                        kind="idempotency_error",
                    )
                return stored[1], stored[2], {"Idempotent-Replayed": "true"}
            self.state.idempotency[key] = None
        try:
            time.sleep(latency)
            with self.lock:
                status, body, extra = self._route(method, path, params, headers)
        except StripeRequestError as error:
            status, body, extra = error.status, error.body(), error.headers
        with self.lock:
            self.state.idempotency[key] = (fingerprint, status, body)
        return status, body, extra

    def _route(
        self, method: str, path: str, params: dict[str, Any], headers: dict[str, str]
    ) -> tuple[int, dict[str, Any], dict[str, str]]:
        routes: dict[tuple[str, str], Callable[[dict[str, Any], dict[str, str]], dict[str, Any]]] = {
            ("POST", "/v1/customers"): lambda p, _h: self._create_customer_params(p),
            ("POST", "/v1/billing_portal/sessions"): self._create_session,
            ("GET", "/v1/subscriptions"): lambda p, _h: self._list_subscriptions(p),
            ("GET", "/v1/customers"): lambda p, _h: self._list_customers(p),
            ("GET", "/v1/products"): lambda p, _h: self._list_products(p),
        }
        if (method, path) in routes:
            return 200, routes[(method, path)](params, headers), {}
        match = re.fullmatch(r"/v1/(customers|subscriptions|products)/([A-Za-z0-9_]+)", path)
        if method == "GET" and match:
            expect_object(params, "", {"expand"})
            collection, ident = match.groups()
            found = getattr(self.state, collection).get(ident)
            if found is None:
                raise no_such(collection.rstrip("s"), ident, "")
            if collection == "subscriptions":
                return 200, self._subscription_view(found, _expansions(params)), {}
            return 200, found, {}
        raise StripeRequestError(404, f"Unrecognized request URL ({method}: {path}).")

    def _create_customer_params(self, params: dict[str, Any]) -> dict[str, Any]:
        expect_object(params, "", {"email", "name", "metadata", "description", "preferred_locales"})
        if "email" in params:
            email = expect_string(params["email"], "email", 512)
            if not re.fullmatch(r"[^@\s]+@[^@\s]+", email):
                raise StripeRequestError(400, "Invalid email address", param="email", code="email_invalid")
        if "name" in params:
            expect_string(params["name"], "name", 256)
        metadata = params.get("metadata", {})
        if not isinstance(metadata, dict) or len(metadata) > 50:
            raise invalid("metadata", "expected an object of at most 50 keys")
        for meta_key, meta_value in metadata.items():
            if len(meta_key) > 40 or not isinstance(meta_value, str) or len(meta_value) > 500:
                raise invalid(f"metadata[{meta_key}]", "keys ≤ 40 characters, values ≤ 500 characters")
        return self._create_customer(params)

    def _create_customer(self, params: dict[str, Any]) -> dict[str, Any]:
        customer = {
            "id": new_id("cus"),
            "object": "customer",
            "email": params.get("email"),
            "name": params.get("name"),
            "metadata": params.get("metadata", {}),
            "livemode": False,
            "created": int(time.time()),
        }
        self.state.customers[customer["id"]] = customer
        return customer

    def _create_session(self, params: dict[str, Any], headers: dict[str, str]) -> dict[str, Any]:
        version = headers.get("stripe-version") or DEFAULT_API_VERSION
        newer = version >= NEWER_FLOWS_SINCE
        allowed = {"customer", "configuration", "flow_data", "locale", "on_behalf_of", "return_url", "expand"}
        if newer:
            allowed |= {"after_expiration", "customer_account"}
        expect_object(params, "", allowed)
        if "customer" not in params:
            raise missing("customer")
        customer_id = expect_string(params["customer"], "customer")
        if customer_id not in self.state.customers:
            raise no_such("customer", customer_id, "customer")
        configuration = None
        if "configuration" in params:
            configuration = expect_string(params["configuration"], "configuration")
            if configuration not in self.state.configurations:
                raise no_such("billing portal configuration", configuration, "configuration")
        locale = expect_enum(params["locale"], "locale", LOCALES) if "locale" in params else None
        on_behalf_of = None
        if "on_behalf_of" in params:
            on_behalf_of = expect_string(params["on_behalf_of"], "on_behalf_of")
            if not re.fullmatch(r"acct_[A-Za-z0-9]+", on_behalf_of):
                raise no_such("account", on_behalf_of, "on_behalf_of")
        return_url = expect_url(params["return_url"], "return_url") if "return_url" in params else None
        if "after_expiration" in params:
            expiration = expect_object(
                params["after_expiration"], "after_expiration", {"type", "customer_login"}
            )
            expect_enum(expiration.get("type"), "after_expiration[type]", ("customer_login",))
        flow = None
        if "flow_data" in params:
            flow = self._validate_flow(params["flow_data"], customer_id, newer)
        session_id = new_id("bps")
        session = {
            "id": session_id,
            "object": "billing_portal.session",
            "configuration": configuration or "bpc_default",
            "created": int(time.time()),
            "customer": customer_id,
            "flow": flow,
            "livemode": False,
            "locale": locale,
            "on_behalf_of": on_behalf_of,
            "return_url": return_url,
            "url": f"{self.public_url}/p/session/test_{secrets.token_urlsafe(24)}",
        }
        self.state.sessions[session_id] = session
        return session

    def _validate_flow(self, value: Any, customer_id: str, newer: bool) -> dict[str, Any]:
        types = CLASSIC_FLOW_TYPES + (NEWER_FLOW_TYPES if newer else ())
        subobjects = {"subscription_cancel", "subscription_update", "subscription_update_confirm"}
        if newer:
            subobjects.add("subscription_pause")
        flow = expect_object(value, "flow_data", {"type", "after_completion"} | subobjects)
        if "type" not in flow:
            raise missing("flow_data[type]")
        flow_type = expect_enum(flow["type"], "flow_data[type]", types)
        for name in subobjects:
            if name in flow and name != flow_type:
                raise invalid(f"flow_data[{name}]", f"only allowed when flow_data[type]={name}")
        result: dict[str, Any] = {"type": flow_type, **dict.fromkeys(sorted(subobjects))}
        result["after_completion"] = self._validate_after_completion(flow.get("after_completion"))
        if flow_type in subobjects:
            if flow_type not in flow:
                raise missing(f"flow_data[{flow_type}]")
            result[flow_type] = self._validate_flow_subject(flow_type, flow[flow_type], customer_id)
        return result

    def _validate_after_completion(self, value: Any) -> dict[str, Any]:
        if value is None:
            return {"type": "portal_homepage", "hosted_confirmation": None, "redirect": None}
        prefix = "flow_data[after_completion]"
        after = expect_object(value, prefix, {"type", "hosted_confirmation", "redirect"})
        if "type" not in after:
            raise missing(f"{prefix}[type]")
        kind = expect_enum(
            after["type"], f"{prefix}[type]", ("hosted_confirmation", "portal_homepage", "redirect")
        )
        result: dict[str, Any] = {"type": kind, "hosted_confirmation": None, "redirect": None}
        for name in ("hosted_confirmation", "redirect"):
            if name in after and kind != name:
                raise invalid(f"{prefix}[{name}]", f"only allowed when type={name}")
        if kind == "redirect":
            if "redirect" not in after:
                raise missing(f"{prefix}[redirect]")
            redirect = expect_object(after["redirect"], f"{prefix}[redirect]", {"return_url"})
            if "return_url" not in redirect:
                raise missing(f"{prefix}[redirect][return_url]")
            result["redirect"] = {
                "return_url": expect_url(redirect["return_url"], f"{prefix}[redirect][return_url]")
            }
        if kind == "hosted_confirmation" and "hosted_confirmation" in after:
            confirmation = expect_object(
                after["hosted_confirmation"], f"{prefix}[hosted_confirmation]", {"custom_message"}
            )
            message = None
            if "custom_message" in confirmation:
                message = expect_string(
                    confirmation["custom_message"],
                    f"{prefix}[hosted_confirmation][custom_message]",
                    MAX_CUSTOM_MESSAGE,
                )
            result["hosted_confirmation"] = {"custom_message": message}
        return result

    def _validate_flow_subject(self, flow_type: str, value: Any, customer_id: str) -> dict[str, Any]:
        prefix = f"flow_data[{flow_type}]"
        allowed = {
            "subscription_cancel": {"subscription", "retention"},
            "subscription_pause": {"subscription"},
            "subscription_update": {"subscription"},
            "subscription_update_confirm": {"subscription", "items", "discounts"},
        }[flow_type]
        subject = expect_object(value, prefix, allowed)
        if "subscription" not in subject:
            raise missing(f"{prefix}[subscription]")
        subscription_id = expect_string(subject["subscription"], f"{prefix}[subscription]")
        subscription = self.state.subscriptions.get(subscription_id)
        if subscription is None or subscription["customer"] != customer_id:
            raise no_such("subscription", subscription_id, f"{prefix}[subscription]")
        if subscription["status"] not in ("active", "trialing", "past_due"):
            raise invalid(
                f"{prefix}[subscription]", f"a {subscription['status']} subscription cannot be changed"
            )
        if flow_type == "subscription_cancel" and subscription["cancel_at_period_end"]:
            raise invalid(f"{prefix}[subscription]", "the subscription is already set to cancel")
        result: dict[str, Any] = {"subscription": subscription_id}
        if flow_type == "subscription_cancel":
            result["retention"] = self._validate_retention(subject.get("retention"), prefix)
        if flow_type == "subscription_update_confirm":
            result["items"] = self._validate_items(subject, subscription, prefix)
            result["discounts"] = self._validate_discounts(subject.get("discounts"), prefix)
        return result

    def _validate_retention(self, value: Any, prefix: str) -> dict[str, Any] | None:
        if value is None:
            return None
        retention = expect_object(value, f"{prefix}[retention]", {"type", "coupon_offer"})
        if "type" not in retention:
            raise missing(f"{prefix}[retention][type]")
        expect_enum(retention["type"], f"{prefix}[retention][type]", ("coupon_offer",))
        if "coupon_offer" not in retention:
            raise missing(f"{prefix}[retention][coupon_offer]")
        offer = expect_object(retention["coupon_offer"], f"{prefix}[retention][coupon_offer]", {"coupon"})
        if "coupon" not in offer:
            raise missing(f"{prefix}[retention][coupon_offer][coupon]")
        coupon = expect_string(offer["coupon"], f"{prefix}[retention][coupon_offer][coupon]")
        if coupon not in self.state.coupons:
            raise no_such("coupon", coupon, f"{prefix}[retention][coupon_offer][coupon]")
        return {"type": "coupon_offer", "coupon_offer": {"coupon": coupon}}

    def _validate_items(
        self, subject: dict[str, Any], subscription: dict[str, Any], prefix: str
    ) -> list[dict[str, Any]]:
        if "items" not in subject:
            raise missing(f"{prefix}[items]")
        items = expect_list(subject["items"], f"{prefix}[items]", max_items=1)
        if not items:
            raise missing(f"{prefix}[items]")
        if len(subscription["items"]) != 1:
            raise invalid(f"{prefix}[items]", "subscriptions with multiple items are not updatable")
        result = []
        for index, raw in enumerate(items):
            param = f"{prefix}[items][{index}]"
            item = expect_object(raw, param, {"id", "price", "quantity"})
            if "id" not in item:
                raise missing(f"{param}[id]")
            item_id = expect_string(item["id"], f"{param}[id]")
            if item_id not in {existing["id"] for existing in subscription["items"]}:
                raise no_such("subscription item", item_id, f"{param}[id]")
            entry: dict[str, Any] = {"id": item_id}
            if "price" in item:
                price = expect_string(item["price"], f"{param}[price]")
                if price not in self.state.prices:
                    raise no_such("price", price, f"{param}[price]")
                if not self.state.prices[price]["active"] or not self.state.prices[price]["recurring"]:
                    raise invalid(f"{param}[price]", "must be an active recurring price")
                entry["price"] = price
            if "quantity" in item:
                entry["quantity"] = expect_integer(item["quantity"], f"{param}[quantity]", low=1)
            [current] = subscription["items"]
            unchanged_price = entry.get("price", current["price"]) == current["price"]
            if unchanged_price and entry.get("quantity", current["quantity"]) == current["quantity"]:
                raise invalid(param, "the update would not change the subscription")
            result.append(entry)
        return result

    def _validate_discounts(self, value: Any, prefix: str) -> list[dict[str, Any]] | None:
        if value is None:
            return None
        discounts = expect_list(value, f"{prefix}[discounts]", max_items=1)
        result = []
        for index, raw in enumerate(discounts):
            param = f"{prefix}[discounts][{index}]"
            discount = expect_object(raw, param, {"coupon", "promotion_code"})
            if len(discount) != 1:
                raise invalid(param, "set exactly one of coupon or promotion_code")
            name, code = next(iter(discount.items()))
            known = self.state.coupons if name == "coupon" else self.state.promotion_codes
            if expect_string(code, f"{param}[{name}]") not in known:
                raise no_such(name.replace("_", " "), code, f"{param}[{name}]")
            result.append({name: code})
        return result

    def _list_customers(self, params: dict[str, Any]) -> dict[str, Any]:
        expect_object(params, "", {"email", "limit"})
        limit = expect_integer(params["limit"], "limit", 1, 100) if "limit" in params else 10
        found = [c for c in self.state.customers.values() if params.get("email") in (None, c["email"])]
        return {
            "object": "list",
            "url": "/v1/customers",
            "has_more": len(found) > limit,
            "data": found[:limit],
        }

    def _list_products(self, params: dict[str, Any]) -> dict[str, Any]:
        expect_object(params, "", {"ids", "limit"})
        limit = expect_integer(params["limit"], "limit", 1, 100) if "limit" in params else 10
        ids = None
        if "ids" in params:  # Stripe documents no cap on `ids`; a page holds at most `limit` of them
            ids = {
                expect_string(i, f"ids[{n}]") for n, i in enumerate(expect_list(params["ids"], "ids", 10_000))
            }
        found = [p for p in self.state.products.values() if ids is None or p["id"] in ids]
        return {
            "object": "list",
            "url": "/v1/products",
            "has_more": len(found) > limit,
            "data": found[:limit],
        }

    def _list_subscriptions(self, params: dict[str, Any]) -> dict[str, Any]:
        expect_object(params, "", {"customer", "status", "limit", "expand"})
        customer = expect_string(params.get("customer", ""), "customer") if "customer" in params else None
        status = params.get("status")
        statuses = (
            "active",
            "all",
            "canceled",
            "ended",
            "incomplete",
            "incomplete_expired",
            "past_due",
            "paused",
            "trialing",
            "unpaid",
        )
        if status is not None:
            expect_enum(status, "status", statuses)
        limit = expect_integer(params["limit"], "limit", 1, 100) if "limit" in params else 10
        found = [
            s
            for s in self.state.subscriptions.values()
            if (customer is None or s["customer"] == customer)
            and (status in (None, "all") or s["status"] == status)
            and (status is not None or s["status"] != "canceled")
        ]
        expansions = _expansions(params, list_prefix="data.")
        data = [self._subscription_view(s, expansions) for s in found[:limit]]
        return {"object": "list", "url": "/v1/subscriptions", "has_more": len(found) > limit, "data": data}

    def _subscription_view(self, subscription: dict[str, Any], expansions: set[str]) -> dict[str, Any]:
        # As on Stripe, an item's price is always a full object; its product is an id unless expanded.
        items = []
        for item in subscription["items"]:
            price = dict(self.state.prices[item["price"]])
            if "items.data.price.product" in expansions:
                price["product"] = self.state.products[price["product"]]
            items.append({**item, "price": price})
        return {**subscription, "items": {"object": "list", "data": items, "has_more": False}}

    @contextmanager
    def serving(self, port: int = 0) -> Iterator[StripeEmulator]:
        self.serve(port)
        try:
            yield self
        finally:
            self.shutdown()

    def serve(self, port: int = 0) -> str:
        self._server = serve_in_background(self._respond, "stripe-emulator", port)
        actual = f"http://127.0.0.1:{self._server.server_address[1]}"
        self.public_url = self.public_url or actual
        return actual

    def _respond(self, method: str, raw_path: str, headers: dict[str, str], body: bytes) -> Reply:
        parts = urlsplit(raw_path)
        if method == "GET" and parts.path.startswith("/p/session/"):
            status, page = self.portal_page(parts.path)
            return Reply(status, page.encode(), [("Content-Type", "text/html; charset=utf-8")])
        pairs = parse_qsl(parts.query, keep_blank_values=True)
        pairs += parse_qsl(body.decode(errors="replace"), keep_blank_values=True)
        status, payload, extra = self.handle(method, parts.path, pairs, headers)
        reply_headers = [("Content-Type", "application/json"), ("Request-Id", new_id("req")), *extra.items()]
        return Reply(status, json.dumps(payload).encode(), reply_headers)

    def shutdown(self) -> None:
        if self._server is not None:
            self._server.stop()
            self._server = None

    @property
    def url(self) -> str:
        assert self._server is not None, "call serve() first"
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def portal_page(self, path: str) -> tuple[int, str]:
        """What a person sees at a session URL: the session the service asked for, and ways out."""
        url = f"{self.public_url}{path}"
        with self.lock:
            session = next((s for s in self.state.sessions.values() if s["url"] == url), None)
        if session is None:
            return (
                404,
                "<!doctype html><title>Session expired</title><h1>This portal session has expired</h1>",
            )
        flow = session["flow"] or {}
        after = flow.get("after_completion") or {}
        subject = next((flow[k] for k in flow if k.startswith("subscription") and flow[k]), None) or {}
        rows = {
            "Customer": session["customer"],
            "Flow": flow.get("type", "homepage"),
            "Subscription": subject.get("subscription", "—"),
            "After completion": (after.get("redirect") or {}).get("return_url") or after.get("type", "—"),
            "Return URL": session["return_url"] or "—",
            "Locale": session["locale"] or "auto",
            "Configuration": session["configuration"],
        }
        confirm = flow.get("subscription_update_confirm") or {}
        if confirm:
            [item] = confirm["items"]
            discounts = ", ".join(v for d in confirm.get("discounts") or [] for v in d.values())
            rows["Change to"] = (
                f"{item.get('price', 'same price')}, quantity {item.get('quantity', 'unchanged')}"
            )
            rows["Discount"] = discounts or "—"
        retention = (flow.get("subscription_cancel") or {}).get("retention")
        if retention:
            rows["Retention offer"] = retention["coupon_offer"]["coupon"]
        done = (after.get("redirect") or {}).get("return_url") or session["return_url"] or "#"
        table = "".join(
            f"<tr><th>{html.escape(k)}</th><td data-field='{html.escape(k)}'>{html.escape(str(v))}</td></tr>"
            for k, v in rows.items()
        )
        page = (
            "<!doctype html><html><head><meta charset='utf-8'><title>Customer portal (emulated)</title>"
            "<style>body{font-family:system-ui;margin:3rem auto;max-width:40rem}th{text-align:left;"
            "padding-right:1rem}a{display:inline-block;margin:1rem 1rem 0 0}</style></head><body>"
            "<h1>Customer portal <small>(Stripe emulator)</small></h1>"
            f"<table>{table}</table>"
            f"<a id='return' href='{html.escape(session['return_url'] or '#')}'>Return to the app</a>"
            f"<a id='complete' href='{html.escape(done)}'>Complete the flow</a></body></html>"
        )
        return 200, page


def _expansions(params: dict[str, Any], list_prefix: str = "") -> set[str]:
    raw = params.get("expand") or []
    values = list(raw.values()) if isinstance(raw, dict) else raw if isinstance(raw, list) else [raw]
    for value in values:
        if not isinstance(value, str) or value.count(".") >= 4:
            raise invalid("expand", "You cannot expand more than 4 levels of a property")
    return {value.removeprefix(list_prefix) for value in values}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=12111)
    args = parser.parse_args()
    emulator = StripeEmulator()
    print(f"Stripe emulator on {emulator.serve(args.port)}", flush=True)
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        emulator.shutdown()


if __name__ == "__main__":
    main()
