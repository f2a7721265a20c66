"""What an endpoint is handed, and Stripe's rules for reading it: form decoding, typed values, errors.

Strict like Stripe: unknown, missing or malformed parameters → 400 `invalid_request_error` naming the
parameter, at any depth.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from local.stripe_emulator.state import Store, StripeObject

MAX_STRING = 5000
MAX_METADATA_KEYS = 50
TIMESTAMP_MAX = 2**31 - 1


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


def no_such(kind: str, ident: str, param: str = "") -> StripeRequestError:
    """A missing object named by a parameter is a 400 on that parameter; one named by the URL is a 404."""
    return StripeRequestError(
        400 if param else 404, f"No such {kind}: '{ident}'", param=param or None, code="resource_missing"
    )


@dataclass(frozen=True)
class ApiCall:
    """One decoded API request as an endpoint sees it."""

    params: dict[str, Any]
    api_version: str
    origin: str  # where the emulator is served; session URLs point here
    ident: str = ""  # the object id from the URL path, if the route has one


Endpoint = Callable[[Store, ApiCall], StripeObject]


@dataclass(frozen=True)
class Route:
    method: str
    pattern: str  # a regular expression for the path; `(?P<ident>...)` captures an object id
    endpoint: Endpoint


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


def expect_object(value: Any, param: str, allowed: set[str] | frozenset[str]) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise invalid(param, "expected an object")
    for key in value:
        if key not in allowed:
            raise unknown(_name(param, key))
    return value


def require(params: dict[str, Any], name: str, prefix: str = "") -> Any:
    if name not in params:
        raise missing(_name(prefix, name))
    return params[name]


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


def expect_clearable_string(value: Any, param: str, max_length: int = MAX_STRING) -> str | None:
    """On update, an empty string unsets a nullable field."""
    return None if value == "" else expect_string(value, param, max_length)


def expect_enum(value: Any, param: str, allowed: tuple[str, ...] | frozenset[str]) -> str:
    text = expect_string(value, param)
    if text not in allowed:
        raise invalid(param, f"must be one of {', '.join(sorted(allowed))}")
    return text


def expect_integer(value: Any, param: str, low: int = 0, high: int = TIMESTAMP_MAX) -> int:
    if not isinstance(value, str) or not re.fullmatch(r"-?\d+", value):
        raise StripeRequestError(
            400, f"Invalid integer: {value}", param=param, code="parameter_invalid_integer"
        )
    number = int(value)
    if not low <= number <= high:
        raise invalid(param, f"must be between {low} and {high}")
    return number


def expect_boolean(value: Any, param: str) -> bool:
    if value not in ("true", "false"):
        raise StripeRequestError(400, f"Invalid boolean: {value}", param=param, code="parameter_invalid")
    return bool(value == "true")


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


def expect_metadata(value: Any, current: dict[str, str] | None = None) -> dict[str, str]:
    """Stripe merges metadata on update; an empty value removes its key."""
    if not isinstance(value, dict):
        raise invalid("metadata", "expected an object")
    merged = dict(current or {})
    for key, text in value.items():
        if len(key) > 40 or not isinstance(text, str) or len(text) > 500:
            raise invalid(f"metadata[{key}]", "keys ≤ 40 characters, values ≤ 500 characters")
        if text == "":
            merged.pop(key, None)
        else:
            merged[key] = text
    if len(merged) > MAX_METADATA_KEYS:
        raise invalid("metadata", f"at most {MAX_METADATA_KEYS} keys")
    return merged


def expansions(params: dict[str, Any], allowed: frozenset[str], list_prefix: str = "") -> set[str]:
    """The `expand[]` paths asked for, each one Stripe can expand on this object."""
    raw = params.get("expand") or []
    values = list(raw.values()) if isinstance(raw, dict) else raw if isinstance(raw, list) else [raw]
    found = set()
    for value in values:
        if not isinstance(value, str) or value.count(".") >= 4:
            raise invalid("expand", "You cannot expand more than 4 levels of a property")
        path = value.removeprefix(list_prefix)
        if path not in allowed or not value.startswith(list_prefix):
            raise StripeRequestError(400, f"This property cannot be expanded ({value}).", param="expand")
        found.add(path)
    return found
