"""HTTP in and out: reading a portal request, negotiation (303 vs JSON), security headers, errors → status.

Browser navigations never see JSON: success is a 303 to the portal, a missing sign-in a 303 to the sign-in
page, any other failure a 303 back to the app with `?portal_error=<code>`. `fetch()` callers that ask for
JSON get `{"url": ...}` or an RFC 9457 problem document. Whatever a client sends, the answer is one of
these; nothing it sends can make the function raise.
"""

from __future__ import annotations

import base64
import binascii
import functools
import json
import logging
from collections.abc import Callable, Mapping
from typing import Any, NamedTuple, TypeVar
from urllib.parse import parse_qsl

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import MetricUnit

from portal_links.errors import (
    BillingRoleRequired,
    CsrfRejected,
    EventMalformed,
    InvalidParameter,
    NoBillingAccount,
    NoSubscription,
    OrganizationRequired,
    PortalError,
    PortalNotConfigured,
    RouteNotFound,
    SignatureInvalid,
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
from portal_links.redirects import with_query
from portal_links.routes import ApiResponse, request_line
from portal_links.settings import Settings

logger = Logger(child=True)
metrics = Metrics()

MAX_BODY_BYTES = 16 * 1024
MAX_EVENT_BYTES = 512 * 1024  # Stripe's event payloads stay far below this
MAX_FIELDS = 32
SAFE_FETCH_SITES = ("same-origin", "same-site")
JSON_TYPES = ("application/json", "application/problem+json")  # a fetch() caller asks for one of these
SECURITY_HEADERS = {
    "Cache-Control": "no-store",
    "Referrer-Policy": "no-referrer",
    "X-Content-Type-Options": "nosniff",
}


class ErrorEntry(NamedTuple):
    status: int
    title: str
    log_level: int = logging.INFO
    log_message: str = "request refused"
    metric: str | None = None


# The one table from domain error to HTTP status, human title, log line and metric.
ERRORS: dict[type[Exception], ErrorEntry] = {
    Unauthenticated: ErrorEntry(
        401, "Sign-in required", log_message="request not authenticated", metric="AuthFailures"
    ),
    CsrfRejected: ErrorEntry(403, "Request not allowed from this origin"),
    OrganizationRequired: ErrorEntry(403, "Organization required"),
    BillingRoleRequired: ErrorEntry(403, "Billing role required"),
    InvalidParameter: ErrorEntry(400, "Invalid parameter"),
    UnknownParameter: ErrorEntry(400, "Unknown parameter"),
    NoBillingAccount: ErrorEntry(404, "No billing account"),
    RouteNotFound: ErrorEntry(404, "Not found"),
    UnknownFlow: ErrorEntry(404, "Unknown portal flow"),
    SubscriptionNotFound: ErrorEntry(404, "Subscription not found"),
    NoSubscription: ErrorEntry(409, "No subscription"),
    SubscriptionAmbiguous: ErrorEntry(409, "Several subscriptions match"),
    SubscriptionNotCancelable: ErrorEntry(409, "Subscription cannot be canceled"),
    SubscriptionNotUpdatable: ErrorEntry(409, "Subscription cannot be updated"),
    UnchangedSubscription: ErrorEntry(422, "Nothing would change"),
    SignatureInvalid: ErrorEntry(400, "Invalid signature", metric="WebhookSignatureFailures"),
    EventMalformed: ErrorEntry(400, "Malformed event"),
    Unavailable: ErrorEntry(
        503, "Temporarily unavailable", logging.WARNING, "dependency unavailable", "UpstreamErrors"
    ),
    StripeRejected: ErrorEntry(502, "Payment provider error", logging.ERROR, "payment provider refused"),
    # The operator's to fix, not the client's: 503 without Retry-After, since retrying soon will not help.
    PortalNotConfigured: ErrorEntry(503, "Billing portal not set up", logging.ERROR, "portal not set up"),
    Exception: ErrorEntry(500, "Internal error", logging.ERROR, "unexpected error", "InternalErrors"),
}


def error_entry(error: Exception) -> ErrorEntry:
    return next(ERRORS[kind] for kind in type(error).__mro__ if kind in ERRORS)


def error_code(error: Exception) -> str:
    return error.code if isinstance(error, PortalError) else "internal_error"


class HttpRequest:
    """An API Gateway HTTP API (payload 2.0) event, read defensively: any field may be anything."""

    def __init__(
        self,
        event: Mapping[str, Any],
        settings: Settings,
        flow_name: str | None,
        time_left_seconds: float | None,
    ) -> None:
        self._event = event
        self._settings = settings
        self.flow_name = flow_name
        self.time_left_seconds = time_left_seconds
        self._credential: tuple[str | None, bool] | None = None
        self._parameters: dict[str, str] | PortalError | None = None

    @property
    def method(self) -> str:
        return request_line(self._event)[0]

    @property
    def accept_language(self) -> str | None:
        return self.header("accept-language")

    def wants_json(self) -> bool:
        accept = self.header("accept")
        return accept is not None and any(kind in accept.lower() for kind in JSON_TYPES)

    def header(self, name: str) -> str | None:
        headers = self._event.get("headers")
        if not isinstance(headers, dict):
            return None
        for key, value in headers.items():
            if isinstance(key, str) and key.lower() == name and isinstance(value, str):
                return value
        return None

    def token(self) -> str | None:
        return self._read_credential()[0]

    def check_origin(self) -> None:
        """A cookie rides along on any site's form post; only the app's own pages may use it to POST."""
        _, from_cookie = self._read_credential()
        if not from_cookie or self.method != "POST":
            return
        origin = self.header("origin")
        if origin is not None:
            if not self._settings.return_urls().is_allowed_origin(origin):
                raise CsrfRejected("this request did not come from an allowed origin")
            return
        if self.header("sec-fetch-site") not in SAFE_FETCH_SITES:
            raise CsrfRejected("this request did not come from an allowed origin")

    def parameters(self) -> dict[str, str]:
        """Query string and body (form or JSON) as one flat map; a name given twice is refused."""
        if self._parameters is None:
            try:
                self._parameters = self._read_parameters()
            except PortalError as error:
                self._parameters = error
        if isinstance(self._parameters, PortalError):
            raise self._parameters
        return self._parameters

    def return_to_hint(self) -> str | None:
        """Where the client asked to go back to, for an error redirect; never raises."""
        try:
            return self.parameters().get("return_to")
        except PortalError:
            return None

    def _read_credential(self) -> tuple[str | None, bool]:
        if self._credential is None:
            authorization = self.header("authorization")
            if authorization is not None:
                scheme, _, token = authorization.partition(" ")
                if scheme.lower() != "bearer" or not token.strip():
                    raise Unauthenticated("the Authorization header must be 'Bearer <token>'")
                self._credential = (token.strip(), False)
            else:
                cookie = self._cookie(self._settings.auth.cookie_name)
                self._credential = (cookie, cookie is not None)
        return self._credential

    def _cookie(self, name: str) -> str | None:
        cookies = self._event.get("cookies")
        for cookie in cookies if isinstance(cookies, list) else []:
            if not isinstance(cookie, str):
                continue
            key, _, value = cookie.partition("=")
            if key.strip() == name:
                return value.strip().strip('"') or None
        return None

    def _read_parameters(self) -> dict[str, str]:
        query = self._event.get("rawQueryString") or ""
        if not isinstance(query, str):
            raise InvalidParameter("the query string cannot be read", param="query")
        pairs = _form_pairs(query, "query")
        pairs.extend(self._body_parameters())
        params: dict[str, str] = {}
        for name, value in pairs:
            if name in params:
                raise InvalidParameter(f"{name[:64]!r} was given more than once", param=name[:64])
            params[name] = value
        return params

    def _body_parameters(self) -> list[tuple[str, str]]:
        body = self._event.get("body")
        if self.method != "POST" or not body:
            return []
        text = _body_text(body, self._event.get("isBase64Encoded") is True)
        content_type = (self.header("content-type") or "").split(";")[0].strip().lower()
        if content_type == "application/x-www-form-urlencoded":
            return _form_pairs(text, "body")
        if content_type == "application/json":
            return _json_pairs(text)
        raise InvalidParameter(
            "send parameters as application/x-www-form-urlencoded or application/json", param="body"
        )


def _body_text(body: Any, is_base64: bool, limit: int = MAX_BODY_BYTES) -> str:
    """The body exactly as the client sent it, as text: base64 undone strictly, UTF-8 required."""
    if not isinstance(body, str):
        raise InvalidParameter("the request body cannot be read", param="body")
    if len(body) > limit * 2:
        raise InvalidParameter("the request body is too large", param="body")
    try:
        raw = base64.b64decode(body, validate=True) if is_base64 else body.encode()
    except (binascii.Error, ValueError):
        raise InvalidParameter("the request body is not valid base64", param="body") from None
    if len(raw) > limit:
        raise InvalidParameter("the request body is too large", param="body")
    try:
        return raw.decode()
    except UnicodeDecodeError:
        raise InvalidParameter("the request body is not UTF-8 text", param="body") from None


def _form_pairs(text: str, where: str) -> list[tuple[str, str]]:
    try:
        return parse_qsl(text, keep_blank_values=True, errors="strict", max_num_fields=MAX_FIELDS)
    except UnicodeError:
        raise InvalidParameter(f"the {where} has a %-escape that is not UTF-8", param=where) from None
    except ValueError:
        raise InvalidParameter(f"the {where} has too many fields", param=where) from None


def _json_pairs(text: str) -> list[tuple[str, str]]:
    try:
        document = json.loads(text, object_pairs_hook=_unique_keys)
    except _DuplicateKey as duplicate:
        raise InvalidParameter(
            f"{duplicate.name[:64]!r} was given more than once", param=duplicate.name[:64]
        ) from None
    except (ValueError, RecursionError):
        raise InvalidParameter("the JSON body is malformed", param="body") from None
    if not isinstance(document, dict):
        raise InvalidParameter("the JSON body must be an object", param="body")
    pairs = []
    for name, value in document.items():
        if isinstance(value, bool) or not isinstance(value, str | int):
            raise InvalidParameter(f"{name[:64]!r} must be a string or an integer", param=name[:64])
        pairs.append((name, str(value)))
    return pairs


class _DuplicateKey(Exception):
    def __init__(self, name: str) -> None:
        super().__init__(name)
        self.name = name


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    document: dict[str, Any] = {}
    for name, value in pairs:
        if name in document:
            raise _DuplicateKey(name)
        document[name] = value
    return document


class PortalHttp:
    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._return_urls = settings.return_urls()

    def answer(
        self,
        event: Mapping[str, Any],
        flow_name: str | None,
        time_left_seconds: float | None,
        create_link: Callable[[HttpRequest], str],
        correlation_id: str,
    ) -> ApiResponse:
        """One portal request, start to end: the link, or the error answered as the table says."""
        request = HttpRequest(event, self._settings, flow_name, time_left_seconds)
        try:
            return self.success(request, create_link(request))
        except Exception as error:
            return self.failure(request, error, correlation_id)

    def not_found(self, event: Mapping[str, Any], correlation_id: str) -> ApiResponse:
        error = RouteNotFound("there is no such route; see the README for the portal endpoints")
        return self.failure(HttpRequest(event, self._settings, None, None), error, correlation_id)

    def success(self, request: HttpRequest, portal_url: str) -> ApiResponse:
        if request.wants_json():
            return _response(200, "application/json", json.dumps({"url": portal_url}))
        return _response(303, None, "", Location=portal_url)

    def failure(self, request: HttpRequest, error: Exception, correlation_id: str) -> ApiResponse:
        """The answer to `error`, logged and counted as the error table says."""
        entry, code = error_entry(error), error_code(error)
        _record(entry, code, error)
        retry_after = {"Retry-After": str(error.retry_after)} if isinstance(error, Unavailable) else {}
        if not request.wants_json():
            return _response(303, None, "", Location=self._navigation_target(request, code), **retry_after)
        problem: dict[str, Any] = {
            "type": f"urn:portal-links:problem:{code}",
            "title": entry.title,
            "status": entry.status,
            "code": code,
            "correlation_id": correlation_id,
        }
        if isinstance(error, PortalError):  # a bug (500) is no PortalError: its words stay in the log
            problem["detail"] = error.detail
            if error.param:
                problem["param"] = error.param
            problem.update(error.extra)
        headers = dict(retry_after)
        if entry.status == 401:
            headers["WWW-Authenticate"] = 'Bearer realm="portal"'
        return _response(entry.status, "application/problem+json", json.dumps(problem), **headers)

    def _navigation_target(self, request: HttpRequest, code: str) -> str:
        return_to = request.return_to_hint()
        if code == "unauthenticated":
            # Back to the page the user clicked on once signed in.
            return with_query(
                self._settings.sign_in_url, next=self._first_allowed(request.header("referer"), return_to)
            )
        return with_query(self._first_allowed(return_to), portal_error=code)

    def _first_allowed(self, *candidates: str | None) -> str:
        for candidate in candidates:
            if candidate and self._return_urls.is_allowed(candidate):
                return candidate
        return self._return_urls.default


def answer_webhook(
    event: Mapping[str, Any], handle: Callable[[str, str | None], Any], correlation_id: str
) -> dict[str, Any]:
    """One Stripe webhook delivery: 200 with what it changed; 400 for what Stripe must not retry (a bad
    signature or body); 500 for everything else, so that Stripe delivers it again later."""
    try:
        payload = _body_text(event.get("body") or "", event.get("isBase64Encoded") is True, MAX_EVENT_BYTES)
        headers = event.get("headers")
        signature = headers.get("stripe-signature") if isinstance(headers, dict) else None
        change = handle(payload, signature if isinstance(signature, str) else None)
    except Exception as error:
        entry, code = error_entry(error), error_code(error)
        _record(entry, code, error)
        status = entry.status if entry.status < 500 else 500
        problem = {"type": f"urn:portal-links:problem:{code}", "title": entry.title, "status": status}
        if isinstance(error, PortalError) and status < 500:
            problem["detail"] = error.detail
        body = {**problem, "code": code, "correlation_id": correlation_id}
        return _response(status, "application/problem+json", json.dumps(body))
    return _response(200, "application/json", json.dumps({"received": True, "action": change.action}))


def _record(entry: ErrorEntry, code: str, error: Exception) -> None:
    if entry.metric is not None:
        metrics.add_metric(name=entry.metric, unit=MetricUnit.Count, value=1)
    if entry.status == 500:
        logger.exception(entry.log_message, exc_info=error)
    else:
        log = {logging.WARNING: logger.warning, logging.ERROR: logger.error}.get(entry.log_level, logger.info)
        log(entry.log_message, extra={"code": code, "reason": str(error)})


_Handler = TypeVar("_Handler", bound=Callable[..., dict[str, Any]])


def contained(handler: _Handler) -> _Handler:
    """The last line: if anything still escapes (a bug, never client input), answer a bare 500 problem."""

    @functools.wraps(handler)
    def guarded(*args: Any, **kwargs: Any) -> dict[str, Any]:
        try:
            return handler(*args, **kwargs)
        except Exception as error:
            _record(ERRORS[Exception], "internal_error", error)
            problem = {
                "type": "urn:portal-links:problem:internal_error",
                "title": "Internal error",
                "status": 500,
            }
            return _response(
                500, "application/problem+json", json.dumps({**problem, "code": "internal_error"})
            )

    return guarded  # type: ignore[return-value]


def _response(status: int, content_type: str | None, body: str, **headers: str) -> ApiResponse:
    """A payload 2.0 response: a text body (API Gateway would decode a base64 one), and no cookies."""
    content = {"Content-Type": content_type} if content_type else {}
    return {
        "statusCode": status,
        "body": body,
        "isBase64Encoded": False,
        "headers": {**SECURITY_HEADERS, **headers, **content},
    }
