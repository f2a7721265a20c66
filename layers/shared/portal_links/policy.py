"""The operator's portal policy: which flows are enabled and everything about them the server decides.

Read from a JSON document (PORTAL_POLICY_FILE, or PORTAL_POLICY itself for local runs) at cold start.
Every key is checked; an unknown key or a bad value fails the cold start with a ConfigurationError naming
the key, e.g. `policy.flows.<flow>.after_completion.custom_message`. Which flows exist, which keys each
takes and from which API version comes from the flow table (flows.FLOWS), handed in by the caller.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import Any, Literal, NamedTuple, Protocol, cast

from portal_links import api_versions
from portal_links.errors import ConfigurationError
from portal_links.locales import STRIPE_LOCALES

AfterCompletionType = Literal["redirect", "hosted_confirmation", "portal_homepage"]
MAX_CUSTOM_MESSAGE = 500
# A recovery window for expired sessions, relative to each session (a fixed date in a policy would rot):
# at least an hour, at most a year; Stripe documents no bounds of its own.
MIN_RECOVERY_SECONDS = 3600
MAX_RECOVERY_SECONDS = 365 * 86400
STRIPE_ID = re.compile(r"^[A-Za-z0-9_\-]{1,255}$")


class AfterCompletion(NamedTuple):
    type: AfterCompletionType
    return_url: str | None = None
    custom_message: str | None = None


@dataclass(frozen=True)
class AfterExpiration:
    """`customer_login`: a user who opens an expired portal link verifies their e-mail address by code and
    gets a new session; until `expires_in_seconds` after the session was made, or with no deadline."""

    expires_in_seconds: int | None = None


@dataclass(frozen=True)
class Discount:
    coupon: str | None = None
    promotion_code: str | None = None


class FlowPolicy(NamedTuple):
    enabled: bool
    configuration: str | None = None
    after_completion: AfterCompletion | None = None
    retention_coupon: str | None = None
    # a plan change: allow-listed target price → the discount the server attaches, if any
    prices: Mapping[str, Discount | None] = MappingProxyType({})
    min_quantity: int = 1
    max_quantity: int = 1


class FlowSpec(Protocol):
    """What the policy reader needs to know of a flow table entry."""

    @property
    def name(self) -> str: ...
    @property
    def policy_keys(self) -> frozenset[str]: ...
    @property
    def required_policy_keys(self) -> frozenset[str]: ...
    @property
    def enabled_by_default(self) -> bool: ...
    @property
    def since_api_version(self) -> str | None: ...
    def available_on(self, api_version: str) -> bool: ...


class PortalPolicy(NamedTuple):
    flows: Mapping[str, FlowPolicy] = MappingProxyType({})  # every flow of the table, in its order
    homepage_configuration: str | None = None
    on_behalf_of: str | None = None
    default_locale: str = "auto"
    after_expiration: AfterExpiration | None = None

    def enabled_flows(self) -> list[str]:
        return [name for name, flow in self.flows.items() if flow.enabled]


def load_policy(
    path: str | None,
    url_allowed: Callable[[str], bool],
    flows: Iterable[FlowSpec],
    api_version: str,
    *,
    inline: str | None = None,
) -> PortalPolicy:
    """The policy in `path` or the document `inline` (defaults if neither); `url_allowed` vets redirects."""
    document: Any = {}
    if inline is not None:
        document = _parsed(inline, "PORTAL_POLICY", "the document")
    elif path is not None:
        try:
            text = Path(path).read_text()
        except OSError as exc:
            raise ConfigurationError("PORTAL_POLICY_FILE", f"cannot read {path}: {exc.strerror}") from None
        document = _parsed(text, "PORTAL_POLICY_FILE", path)
    return _Reader(url_allowed, {flow.name: flow for flow in flows}, api_version).policy(document)


def _parsed(text: str, setting: str, source: str) -> Any:
    try:
        return json.loads(text)
    except ValueError as exc:
        raise ConfigurationError(setting, f"{source} is not valid JSON: {exc}") from None


class _Reader:
    def __init__(
        self, url_allowed: Callable[[str], bool], table: dict[str, FlowSpec], api_version: str
    ) -> None:
        self._url_allowed = url_allowed
        self._table = table
        self._api_version = api_version

    def policy(self, document: Any) -> PortalPolicy:
        root = _object(
            document, "policy", {"flows", "homepage", "on_behalf_of", "default_locale", "after_expiration"}
        )
        homepage = _object(root.get("homepage", {}), "policy.homepage", {"configuration"})
        flows_doc = _object(root.get("flows", {}), "policy.flows", set(self._table))
        flows = {name: self.flow(spec, flows_doc.get(name)) for name, spec in self._table.items()}
        locale = root.get("default_locale", "auto")
        if locale not in STRIPE_LOCALES:
            raise ConfigurationError("policy.default_locale", "must be one of Stripe's portal locales")
        on_behalf_of = _optional_id(root, "on_behalf_of", "policy", prefix="acct_")
        return PortalPolicy(
            flows=flows,
            homepage_configuration=_optional_id(homepage, "configuration", "policy.homepage", prefix="bpc_"),
            on_behalf_of=on_behalf_of,
            default_locale=locale,
            after_expiration=self.after_expiration(root.get("after_expiration"), "policy.after_expiration"),
        )

    def after_expiration(self, value: Any, where: str) -> AfterExpiration | None:
        if value is None:
            return None
        expiration = _object(value, where, {"type", "customer_login"})
        if not api_versions.has(self._api_version, api_versions.AFTER_EXPIRATION):
            raise ConfigurationError(
                where,
                f"needs STRIPE_API_VERSION {api_versions.AFTER_EXPIRATION} or later "
                f"(pinned: {self._api_version})",
            )
        if expiration.get("type") != "customer_login":
            raise ConfigurationError(f"{where}.type", "must be customer_login")
        login = _object(
            expiration.get("customer_login", {}), f"{where}.customer_login", {"expires_in_seconds"}
        )
        seconds = login.get("expires_in_seconds")
        if seconds is not None and (
            isinstance(seconds, bool)
            or not isinstance(seconds, int)
            or not MIN_RECOVERY_SECONDS <= seconds <= MAX_RECOVERY_SECONDS
        ):
            raise ConfigurationError(
                f"{where}.customer_login.expires_in_seconds",
                f"must be a whole number of seconds from {MIN_RECOVERY_SECONDS} to {MAX_RECOVERY_SECONDS}",
            )
        return AfterExpiration(expires_in_seconds=seconds)

    def flow(self, spec: FlowSpec, value: Any) -> FlowPolicy:
        where = f"policy.flows.{spec.name}"
        if value is None:
            value = {"enabled": spec.enabled_by_default}
        flow = _object(value, where, {"enabled", "configuration", "after_completion"} | spec.policy_keys)
        enabled = flow.get("enabled", True)
        if not isinstance(enabled, bool):
            raise ConfigurationError(f"{where}.enabled", "must be true or false")
        if enabled and not spec.available_on(self._api_version):
            raise ConfigurationError(
                f"{where}.enabled",
                f"needs STRIPE_API_VERSION {spec.since_api_version} or later (pinned: {self._api_version})",
            )
        for key in sorted(spec.required_policy_keys):
            if enabled and not flow.get(key):
                raise ConfigurationError(f"{where}.{key}", "is required when the flow is enabled")
        prices, low, high = self.prices(flow, where)
        return FlowPolicy(
            enabled=enabled,
            configuration=_optional_id(flow, "configuration", where, prefix="bpc_"),
            after_completion=self.after_completion(flow.get("after_completion"), f"{where}.after_completion"),
            retention_coupon=_optional_id(flow, "retention_coupon", where),
            prices=prices,
            min_quantity=low,
            max_quantity=high,
        )

    def after_completion(self, value: Any, where: str) -> AfterCompletion | None:
        if value is None:
            return None
        after = _object(value, where, {"type", "return_url", "custom_message"})
        kind = after.get("type")
        if kind not in ("redirect", "hosted_confirmation", "portal_homepage"):
            raise ConfigurationError(
                f"{where}.type", "must be redirect, hosted_confirmation or portal_homepage"
            )
        return_url = after.get("return_url")
        message = after.get("custom_message")
        if kind == "redirect":
            if not isinstance(return_url, str) or not self._url_allowed(return_url):
                raise ConfigurationError(f"{where}.return_url", "must be a URL on one of ALLOWED_ORIGINS")
        elif return_url is not None:
            raise ConfigurationError(f"{where}.return_url", "only applies to type redirect")
        if message is not None:
            if kind != "hosted_confirmation":
                raise ConfigurationError(
                    f"{where}.custom_message", "only applies to type hosted_confirmation"
                )
            if not isinstance(message, str) or not message.strip() or len(message) > MAX_CUSTOM_MESSAGE:
                raise ConfigurationError(
                    f"{where}.custom_message", f"must be 1 to {MAX_CUSTOM_MESSAGE} characters"
                )
        return AfterCompletion(
            type=cast(AfterCompletionType, kind), return_url=return_url, custom_message=message
        )

    def prices(self, flow: dict[str, Any], where: str) -> tuple[dict[str, Discount | None], int, int]:
        """A plan change allow-list: target price → the discount the server attaches; quantity bounds."""
        prices_doc = _object(flow.get("prices", {}), f"{where}.prices", None)
        prices: dict[str, Discount | None] = {}
        for price, discount_doc in prices_doc.items():
            key = f"{where}.prices.{price}"
            if not price.startswith("price_") or not STRIPE_ID.match(price):
                raise ConfigurationError(key, "must be a Stripe price id (price_…)")
            discount = _object(discount_doc, key, {"coupon", "promotion_code"})
            if len(discount) > 1:
                raise ConfigurationError(key, "set at most one of coupon or promotion_code")
            prices[price] = (
                Discount(
                    coupon=_optional_id(discount, "coupon", key),
                    promotion_code=_optional_id(discount, "promotion_code", key, prefix="promo_"),
                )
                if discount
                else None
            )
        quantity = _object(flow.get("quantity", {}), f"{where}.quantity", {"min", "max"})
        low, high = quantity.get("min", 1), quantity.get("max", 1)
        for bound, number in (("min", low), ("max", high)):
            if isinstance(number, bool) or not isinstance(number, int) or not 1 <= number <= 10_000:
                raise ConfigurationError(
                    f"{where}.quantity.{bound}", "must be a whole number from 1 to 10000"
                )
        if low > high:
            raise ConfigurationError(f"{where}.quantity.min", "must not exceed quantity.max")
        return prices, low, high


def _object(value: Any, where: str, allowed: set[str] | None) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise ConfigurationError(where, "must be a JSON object")
    if allowed is not None:
        for key in value:
            if key not in allowed:
                raise ConfigurationError(
                    f"{where}.{key}", f"is not a known key (known: {', '.join(sorted(allowed))})"
                )
    return value


def _optional_id(document: dict[str, Any], key: str, where: str, prefix: str = "") -> str | None:
    value = document.get(key)
    if value is None:
        return None
    if not isinstance(value, str) or not value.startswith(prefix) or not STRIPE_ID.match(value):
        expected = f"a Stripe id ({prefix}…)" if prefix else "a Stripe id"
        raise ConfigurationError(f"{where}.{key}", f"must be {expected}")
    return value
