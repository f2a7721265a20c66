"""HTTP in and out: reading a portal request, negotiation (303 vs JSON), security headers, errors → status.

Browser navigations never see JSON: success is a 303 to the portal, a missing sign-in a 303 to the sign-in
page, any other failure a 303 back to the app with `?portal_error=<code>`. `fetch()` callers that ask for
JSON get `{"url": ...}` or an RFC 9457 problem document.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl

from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.utilities.data_classes import APIGatewayProxyEventV2

from portal_links.errors import (
    CsrfRejected,
    InvalidParameter,
    NoBillingAccount,
    NoSubscription,
    PortalError,
    RouteNotFound,
    StripeRejected,
    SubscriptionAmbiguous,
    SubscriptionNotCancelable,
    SubscriptionNotFound,
    SubscriptionNotUpdatable,
    Unauthenticated,
    Unavailable,
    UnchangedSubscription,
    UnknownFlow,
    UnknownParameter,
)
from portal_links.portal import PortalLinkRequest
from portal_links.redirects import with_query
from portal_links.settings import Settings

MAX_BODY_BYTES = 16 * 1024
SAFE_FETCH_SITES = ("same-origin", "same-site")
SECURITY_HEADERS = {
    "Cache-Control": "no-store",
    "Referrer-Policy": "no-referrer",
    "X-Content-Type-Options": "nosniff",
}

# The one table from domain error to HTTP status and human title.
STATUS_AND_TITLE: dict[type[PortalError], tuple[int, str]] = {
    Unauthenticated: (401, "Sign-in required"),
    CsrfRejected: (403, "Request not allowed from this origin"),
    InvalidParameter: (400, "Invalid parameter"),
    UnknownParameter: (400, "Unknown parameter"),
    NoBillingAccount: (404, "No billing account"),
    RouteNotFound: (404, "Not found"),
    UnknownFlow: (404, "Unknown portal flow"),
    SubscriptionNotFound: (404, "Subscription not found"),
    NoSubscription: (409, "No subscription"),
    SubscriptionAmbiguous: (409, "Several subscriptions match"),
    SubscriptionNotCancelable: (409, "Subscription cannot be canceled"),
    SubscriptionNotUpdatable: (409, "Subscription cannot be updated"),
    UnchangedSubscription: (422, "Nothing would change"),
    Unavailable: (503, "Temporarily unavailable"),
    StripeRejected: (502, "Payment provider error"),
}
INTERNAL = (500, "Internal error")


@dataclass(frozen=True)
class Credential:
    token: str | None
    from_cookie: bool


class PortalHttp:
    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._return_urls = settings.return_urls()

    def read_request(
        self, event: APIGatewayProxyEventV2, flow: str | None, allowed: frozenset[str]
    ) -> PortalLinkRequest:
        """The credential and the client's parameters; anything not in `allowed` is refused by name."""
        credential = self.credential(event)
        if credential.from_cookie and event.request_context.http.method == "POST":
            self._check_csrf(event)
        params = _parameters(event)
        for name in params:
            if name not in allowed:
                raise UnknownParameter(f"{name!r} is not a parameter of this endpoint", param=name)
        return PortalLinkRequest(
            token=credential.token,
            flow=flow,
            return_to=params.get("return_to"),
            locale=params.get("locale"),
            accept_language=_header(event, "accept-language"),
            subscription=params.get("subscription"),
            price=params.get("price"),
            quantity=params.get("quantity"),
        )

    def credential(self, event: APIGatewayProxyEventV2) -> Credential:
        authorization = _header(event, "authorization")
        if authorization is not None:
            scheme, _, token = authorization.partition(" ")
            if scheme.lower() != "bearer" or not token.strip():
                raise Unauthenticated("the Authorization header must be 'Bearer <token>'")
            return Credential(token.strip(), from_cookie=False)
        cookie = _cookie(event, self._settings.auth.cookie_name)
        return Credential(cookie, from_cookie=cookie is not None)

    def success(self, event: APIGatewayProxyEventV2, portal_url: str) -> Response[str]:
        if wants_json(event):
            return _response(200, "application/json", json.dumps({"url": portal_url}))
        return _response(303, None, "", Location=portal_url)

    def failure(self, event: APIGatewayProxyEventV2, error: Exception, correlation_id: str) -> Response[str]:
        status, title = _status_and_title(error)
        code = error.code if isinstance(error, PortalError) else "internal_error"
        retry_after = {"Retry-After": str(error.retry_after)} if isinstance(error, Unavailable) else {}
        if not wants_json(event):
            return _response(303, None, "", Location=self._navigation_target(event, code), **retry_after)
        problem: dict[str, Any] = {
            "type": f"urn:portal-links:problem:{code}",
            "title": title,
            "status": status,
            "code": code,
            "correlation_id": correlation_id,
        }
        if isinstance(error, PortalError) and status != 500:
            problem["detail"] = error.detail
            if error.param:
                problem["param"] = error.param
            problem.update(error.extra)
        headers = dict(retry_after)
        if status == 401:
            headers["WWW-Authenticate"] = 'Bearer realm="portal"'
        return _response(status, "application/problem+json", json.dumps(problem), **headers)

    def _check_csrf(self, event: APIGatewayProxyEventV2) -> None:
        origin = _header(event, "origin")
        if origin is not None:
            if not self._return_urls.is_allowed_origin(origin):
                raise CsrfRejected("this request did not come from an allowed origin")
            return
        if _header(event, "sec-fetch-site") not in SAFE_FETCH_SITES:
            raise CsrfRejected("this request did not come from an allowed origin")

    def _navigation_target(self, event: APIGatewayProxyEventV2, code: str) -> str:
        try:
            return_to = _parameters(event).get("return_to")
        except PortalError:
            return_to = None
        referer = _header(event, "referer")
        if code == "unauthenticated":
            # Back to the page the user clicked on once signed in.
            return with_query(self._settings.sign_in_url, next=self._first_allowed(referer, return_to))
        return with_query(self._first_allowed(return_to), portal_error=code)

    def _first_allowed(self, *candidates: str | None) -> str:
        for candidate in candidates:
            if candidate and self._return_urls.is_allowed(candidate):
                return candidate
        return self._return_urls.default


def wants_json(event: APIGatewayProxyEventV2) -> bool:
    accept = (_header(event, "accept") or "").lower()
    return "application/json" in accept or "application/problem+json" in accept


def _status_and_title(error: Exception) -> tuple[int, str]:
    for kind in type(error).__mro__:
        if kind in STATUS_AND_TITLE:
            return STATUS_AND_TITLE[kind]
    return INTERNAL


def _response(status: int, content_type: str | None, body: str, **headers: str) -> Response[str]:
    return Response(
        status_code=status,
        content_type=content_type,
        body=body,
        headers={**SECURITY_HEADERS, **headers},
    )


def _header(event: APIGatewayProxyEventV2, name: str) -> str | None:
    for key, value in (event.get("headers") or {}).items():
        if key.lower() == name:
            return str(value)
    return None


def _cookie(event: APIGatewayProxyEventV2, name: str) -> str | None:
    for cookie in event.get("cookies") or []:
        key, _, value = str(cookie).partition("=")
        if key.strip() == name:
            return value.strip().strip('"') or None
    return None


def _parameters(event: APIGatewayProxyEventV2) -> dict[str, str]:
    """Query string and body (form or JSON) as one flat map; a name given twice is refused."""
    pairs = parse_qsl(event.get("rawQueryString") or "", keep_blank_values=True)
    pairs.extend(_body_parameters(event))
    params: dict[str, str] = {}
    for name, value in pairs:
        if name in params:
            raise InvalidParameter(f"{name!r} was given more than once", param=name)
        params[name] = value
    return params


def _body_parameters(event: APIGatewayProxyEventV2) -> list[tuple[str, str]]:
    if event.request_context.http.method != "POST" or not event.get("body"):
        return []
    body = event.decoded_body or ""
    if len(body.encode()) > MAX_BODY_BYTES:
        raise InvalidParameter("the request body is too large", param="body")
    content_type = (_header(event, "content-type") or "").split(";")[0].strip().lower()
    if content_type == "application/x-www-form-urlencoded":
        return parse_qsl(body, keep_blank_values=True)
    if content_type == "application/json":
        try:
            document = json.loads(body)
        except ValueError:
            raise InvalidParameter("the JSON body is malformed", param="body") from None
        if not isinstance(document, dict):
            raise InvalidParameter("the JSON body must be an object", param="body")
        pairs = []
        for name, value in document.items():
            if isinstance(value, bool) or not isinstance(value, str | int):
                raise InvalidParameter(f"{name!r} must be a string or an integer", param=str(name))
            pairs.append((str(name), str(value)))
        return pairs
    raise InvalidParameter(
        "send parameters as application/x-www-form-urlencoded or application/json", param="body"
    )
