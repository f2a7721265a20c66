"""POST /v1/billing_portal/sessions with Stripe's rules (shared/reference) and its API-version history.

What each API version added is one table, read from the stripe-python wheels that first carry each
addition (`stripe/_api_version.py`, `stripe/params/billing_portal/_session_create_params.py`): a request
pinned to an older version is refused the flow type or parameter, as Stripe refuses it.
"""

from __future__ import annotations

import re
import secrets
from dataclasses import dataclass, field
from typing import Any

from local.stripe_emulator.params import (
    ApiCall,
    Route,
    StripeRequestError,
    expect_enum,
    expect_integer,
    expect_list,
    expect_object,
    expect_string,
    expect_url,
    invalid,
    missing,
    no_such,
    require,
)
from local.stripe_emulator.state import ACCOUNTS_SINCE, Store, StripeObject, now

# The 47 locale values of the portal session (shared/reference/003).
LOCALES = frozenset(
    (
        "auto bg cs da de el en en-AU en-CA en-GB en-IE en-IN en-NZ en-SG es es-419 et fi fil fr fr-CA hr hu "
        "id it ja ko lt lv ms mt nb nl pl pt pt-BR ro ru sk sl sv th tr vi zh zh-HK zh-TW"
    ).split()
)
MAX_CUSTOM_MESSAGE = 500
ELIGIBLE_STATUSES = ("active", "trialing", "past_due")


# A flow type's `flow_data[<type>]` object: the keys it takes; EMPTY: it takes none, and the session's flow
# answers `<type>: {}`; NO_FIELD: it takes none, and the session's flow has no field of that name.
EMPTY: frozenset[str] = frozenset()
NO_FIELD = None


@dataclass(frozen=True)
class Added:
    flow_types: dict[str, frozenset[str] | None] = field(default_factory=dict)
    parameters: tuple[str, ...] = ()  # top-level session parameters, each also a field of the session


ALWAYS = ""  # an empty date sorts before every API version
ADDED_IN: dict[str, Added] = {
    ALWAYS: Added(
        flow_types={
            "payment_method_update": NO_FIELD,
            "subscription_cancel": frozenset({"subscription", "retention"}),
            "subscription_update": frozenset({"subscription"}),
            "subscription_update_confirm": frozenset({"subscription", "items", "discounts"}),
        },
        parameters=(
            "configuration",
            "customer",
            "expand",
            "flow_data",
            "locale",
            "on_behalf_of",
            "return_url",
        ),
    ),
    ACCOUNTS_SINCE: Added(parameters=("customer_account",)),  # stripe 14.1.0; absent in 14.0.0
    "2026-08-26.dahlia": Added(flow_types={"customer_update": EMPTY}),  # stripe 15.6.0; absent in 15.5.1
    "2026-10-28.endive": Added(  # stripe 16.1.0; absent in 16.0.0 (2026-09-30.endive)
        flow_types={"subscription_pause": frozenset({"subscription"})}, parameters=("after_expiration",)
    ),
}


def known_to(api_version: str) -> Added:
    """Everything a request pinned to `api_version` may use; versions compare by their date."""
    date = api_version[:10]
    entries = [added for since, added in ADDED_IN.items() if since[:10] <= date]
    return Added(
        flow_types={kind: keys for added in entries for kind, keys in added.flow_types.items()},
        parameters=tuple(name for added in entries for name in added.parameters),
    )


def create_session(store: Store, call: ApiCall) -> StripeObject:
    known = known_to(call.api_version)
    params = expect_object(call.params, "", set(known.parameters))
    customer_id, account = _party(store, params, "customer_account" in known.parameters)
    configuration = "bpc_default"
    if "configuration" in params:
        configuration = expect_string(params["configuration"], "configuration")
        if configuration not in store.configurations:
            raise no_such("billing portal configuration", configuration, "configuration")
    locale = expect_enum(params["locale"], "locale", LOCALES) if "locale" in params else None
    on_behalf_of = None
    if "on_behalf_of" in params:
        on_behalf_of = expect_string(params["on_behalf_of"], "on_behalf_of")
        if not re.fullmatch(r"acct_[A-Za-z0-9]+", on_behalf_of):
            raise no_such("account", on_behalf_of, "on_behalf_of")
    return_url = expect_url(params["return_url"], "return_url") if "return_url" in params else None
    after_expiration = _after_expiration(params["after_expiration"]) if "after_expiration" in params else None
    flow = _flow(store, params["flow_data"], customer_id, known) if "flow_data" in params else None
    session: StripeObject = {
        "id": f"bps_{secrets.token_hex(12)}",
        "object": "billing_portal.session",
        "after_expiration": after_expiration,
        "configuration": configuration,
        "created": now(),
        "customer": customer_id,
        "customer_account": account,
        "flow": flow,
        "livemode": False,
        "locale": locale,
        "on_behalf_of": on_behalf_of,
        "return_url": return_url,
        "url": f"{call.origin}/p/session/test_{secrets.token_urlsafe(24)}",
    }
    store.sessions[session["id"]] = session
    return session_view(session, known)


def session_view(session: StripeObject, known: Added) -> StripeObject:
    """The session as a request pinned to some version sees it: no field that version lacks."""
    view = {k: v for k, v in session.items() if k not in _version_fields() or k in known.parameters}
    if session["flow"] is not None:
        flow = session["flow"]
        view["flow"] = {
            k: v for k, v in flow.items() if k in ("type", "after_completion") or k in known.flow_types
        }
    return view


def _version_fields() -> set[str]:
    return {name for since, added in ADDED_IN.items() if since != ALWAYS for name in added.parameters}


def _party(store: Store, params: dict[str, Any], accounts_known: bool) -> tuple[str, str | None]:
    """The customer the session is for: `customer`, or on newer versions an Accounts v2 account."""
    if not accounts_known:
        customer_id = expect_string(require(params, "customer"), "customer")
    else:
        given = [name for name in ("customer", "customer_account") if name in params]
        if len(given) != 1:
            raise StripeRequestError(
                400,
                "You must pass exactly one of `customer` or `customer_account`.",
                param=given[-1] if given else "customer",
                code="parameter_invalid" if given else "parameter_missing",
            )
        if given == ["customer_account"]:
            account = expect_string(params["customer_account"], "customer_account")
            if account not in store.accounts:
                raise no_such("account", account, "customer_account")
            return store.accounts[account], account
        customer_id = expect_string(params["customer"], "customer")
    if store.live_customer(customer_id) is None:
        raise no_such("customer", customer_id, "customer")
    return customer_id, None


def _after_expiration(value: Any) -> StripeObject:
    """As stripe-python 16.1.0 types it: `type: customer_login`, optional `customer_login.expires_at`."""
    expiration = expect_object(value, "after_expiration", {"type", "customer_login"})
    expect_enum(
        require(expiration, "type", "after_expiration"), "after_expiration[type]", ("customer_login",)
    )
    expires_at = None
    if "customer_login" in expiration:
        param = "after_expiration[customer_login]"
        login = expect_object(expiration["customer_login"], param, {"expires_at"})
        if "expires_at" in login:
            expires_at = expect_integer(login["expires_at"], f"{param}[expires_at]")
    return {"type": "customer_login", "customer_login": {"expires_at": expires_at}}


def _flow(store: Store, value: Any, customer_id: str, known: Added) -> StripeObject:
    subjects = {kind: keys for kind, keys in known.flow_types.items() if keys}
    flow = expect_object(value, "flow_data", {"type", "after_completion", *subjects})
    flow_type = expect_enum(require(flow, "type", "flow_data"), "flow_data[type]", tuple(known.flow_types))
    for name in subjects:
        if name in flow and name != flow_type:
            raise invalid(f"flow_data[{name}]", f"only allowed when flow_data[type]={name}")
    result: StripeObject = {
        "type": flow_type,
        "after_completion": _after_completion(flow.get("after_completion")),
        **{kind: None for kind, keys in sorted(known.flow_types.items()) if keys is not NO_FIELD},
    }
    if known.flow_types[flow_type] == EMPTY:
        result[flow_type] = {}
    if flow_type in subjects:
        subject = expect_object(
            require(flow, flow_type, "flow_data"), f"flow_data[{flow_type}]", subjects[flow_type]
        )
        result[flow_type] = _flow_subject(store, flow_type, subject, customer_id)
    return result


def _after_completion(value: Any) -> StripeObject:
    if value is None:
        return {"type": "portal_homepage", "hosted_confirmation": None, "redirect": None}
    prefix = "flow_data[after_completion]"
    after = expect_object(value, prefix, {"type", "hosted_confirmation", "redirect"})
    kind = expect_enum(
        require(after, "type", prefix),
        f"{prefix}[type]",
        ("hosted_confirmation", "portal_homepage", "redirect"),
    )
    result: StripeObject = {"type": kind, "hosted_confirmation": None, "redirect": None}
    for name in ("hosted_confirmation", "redirect"):
        if name in after and kind != name:
            raise invalid(f"{prefix}[{name}]", f"only allowed when type={name}")
    if kind == "redirect":
        redirect = expect_object(require(after, "redirect", prefix), f"{prefix}[redirect]", {"return_url"})
        return_url = require(redirect, "return_url", f"{prefix}[redirect]")
        result["redirect"] = {"return_url": expect_url(return_url, f"{prefix}[redirect][return_url]")}
    if kind == "hosted_confirmation" and "hosted_confirmation" in after:
        param = f"{prefix}[hosted_confirmation]"
        confirmation = expect_object(after["hosted_confirmation"], param, {"custom_message"})
        message = None
        if "custom_message" in confirmation:
            message = expect_string(
                confirmation["custom_message"], f"{param}[custom_message]", MAX_CUSTOM_MESSAGE
            )
        result["hosted_confirmation"] = {"custom_message": message}
    return result


def _flow_subject(store: Store, flow_type: str, subject: dict[str, Any], customer_id: str) -> StripeObject:
    prefix = f"flow_data[{flow_type}]"
    subscription_id = expect_string(require(subject, "subscription", prefix), f"{prefix}[subscription]")
    subscription = store.subscriptions.get(subscription_id)
    if subscription is None or subscription["customer"] != customer_id:
        raise no_such("subscription", subscription_id, f"{prefix}[subscription]")
    if subscription["status"] not in ELIGIBLE_STATUSES:
        raise invalid(f"{prefix}[subscription]", f"a {subscription['status']} subscription cannot be changed")
    if flow_type == "subscription_cancel" and subscription["cancel_at_period_end"]:
        raise invalid(f"{prefix}[subscription]", "the subscription is already set to cancel")
    result: StripeObject = {"subscription": subscription_id}
    if flow_type == "subscription_cancel":
        result["retention"] = _retention(store, subject.get("retention"), prefix)
    if flow_type == "subscription_update_confirm":
        result["items"] = _items(store, subject, subscription, prefix)
        result["discounts"] = _discounts(store, subject.get("discounts"), prefix)
    return result


def _retention(store: Store, value: Any, prefix: str) -> StripeObject | None:
    if value is None:
        return None
    param = f"{prefix}[retention]"
    retention = expect_object(value, param, {"type", "coupon_offer"})
    expect_enum(require(retention, "type", param), f"{param}[type]", ("coupon_offer",))
    offer = expect_object(require(retention, "coupon_offer", param), f"{param}[coupon_offer]", {"coupon"})
    coupon_param = f"{param}[coupon_offer][coupon]"
    coupon = expect_string(require(offer, "coupon", f"{param}[coupon_offer]"), coupon_param)
    if coupon not in store.coupons:
        raise no_such("coupon", coupon, coupon_param)
    return {"type": "coupon_offer", "coupon_offer": {"coupon": coupon}}


def _items(
    store: Store, subject: dict[str, Any], subscription: StripeObject, prefix: str
) -> list[StripeObject]:
    items = expect_list(require(subject, "items", prefix), f"{prefix}[items]", max_items=1)
    if not items:
        raise missing(f"{prefix}[items]")
    if len(subscription["items"]) != 1:
        raise invalid(f"{prefix}[items]", "subscriptions with multiple items are not updatable")
    [current] = subscription["items"]
    result = []
    for index, raw in enumerate(items):
        param = f"{prefix}[items][{index}]"
        item = expect_object(raw, param, {"id", "price", "quantity"})
        item_id = expect_string(require(item, "id", param), f"{param}[id]")
        if item_id != current["id"]:
            raise no_such("subscription item", item_id, f"{param}[id]")
        entry: StripeObject = {"id": item_id}
        if "price" in item:
            price = expect_string(item["price"], f"{param}[price]")
            if price not in store.prices:
                raise no_such("price", price, f"{param}[price]")
            if not store.prices[price]["active"] or not store.prices[price]["recurring"]:
                raise invalid(f"{param}[price]", "must be an active recurring price")
            entry["price"] = price
        if "quantity" in item:
            entry["quantity"] = expect_integer(item["quantity"], f"{param}[quantity]", low=1)
        unchanged_price = entry.get("price", current["price"]) == current["price"]
        if unchanged_price and entry.get("quantity", current["quantity"]) == current["quantity"]:
            raise invalid(param, "the update would not change the subscription")
        result.append(entry)
    return result


def _discounts(store: Store, value: Any, prefix: str) -> list[StripeObject] | None:
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
        known = store.coupons if name == "coupon" else store.promotion_codes
        if expect_string(code, f"{param}[{name}]") not in known:
            raise no_such(name.replace("_", " "), code, f"{param}[{name}]")
        result.append({name: code})
    return result


ROUTES = (Route("POST", "/v1/billing_portal/sessions", create_session),)
