"""API Gateway (HTTP API, payload 2.0) in front of a Lambda: the event it hands over, and its own answers.

`http_api_event` is used by `make dev`'s front, `make invoke` and the tests, so all of them call the handler
exactly as API Gateway does. `HttpApi` is what `make dev` puts in front of the handler: route matching,
CORS as configured, and API Gateway's 404 for whatever no route takes.
"""

from __future__ import annotations

import base64
import re
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from local.server import Reply, message_reply

TEXT_TYPES = ("application/x-www-form-urlencoded", "application/json", "text/")
# `{name}` takes one path segment, `{name+}` the rest of the path
PATH_VARIABLE = re.compile(r"\{(\w+)(\+?)\}")

# The Lambda: a payload 2.0 event in, a payload 2.0 response out
Integration = Callable[[dict[str, Any]], dict[str, Any]]


@dataclass(frozen=True)
class Route:
    method: str  # or ANY
    path: str  # as in the template: /portal/{flow}
    function: str = ""  # the template's logical id of the function the route invokes

    @property
    def key(self) -> str:
        return f"{self.method} {self.path}"

    def match(self, method: str, path: str) -> dict[str, str] | None:
        """The path parameters when this route takes the request, else None."""
        if self.method not in ("ANY", method):
            return None
        found = re.fullmatch(self._pattern(), path)
        return found.groupdict() if found else None

    def _pattern(self) -> str:
        pattern, end = "", 0
        for variable in PATH_VARIABLE.finditer(self.path):
            pattern += re.escape(self.path[end : variable.start()])
            pattern += f"(?P<{variable[1]}>{'.+' if variable[2] else '[^/]+'})"
            end = variable.end()
        return pattern + re.escape(self.path[end:])


@dataclass(frozen=True)
class CorsConfiguration:
    """An HTTP API's CorsConfiguration, applied as API Gateway applies it."""

    allow_origins: tuple[str, ...] = ()
    allow_methods: tuple[str, ...] = ()
    allow_headers: tuple[str, ...] = ()
    expose_headers: tuple[str, ...] = ()
    allow_credentials: bool = False
    max_age: int | None = None

    @staticmethod
    def is_preflight(method: str, headers: dict[str, str]) -> bool:
        return method == "OPTIONS" and "origin" in headers and "access-control-request-method" in headers

    def preflight(self, headers: dict[str, str]) -> Reply:
        """204 with every Access-Control header when origin, method and headers are allowed; else none."""
        requested = {
            name.strip().lower() for name in headers.get("access-control-request-headers", "").split(",")
        }
        allowed_headers = {name.lower() for name in self.allow_headers}
        method = headers["access-control-request-method"]
        allowed = (
            self._allows_origin(headers["origin"])
            and ("*" in self.allow_methods or method in self.allow_methods)
            and ("*" in allowed_headers or requested - {""} <= allowed_headers)
        )
        if not allowed:
            return Reply(204)
        answer = [
            ("Access-Control-Allow-Origin", headers["origin"]),
            ("Access-Control-Allow-Methods", ",".join(self.allow_methods)),
            ("Access-Control-Allow-Headers", ",".join(self.allow_headers)),
        ]
        if self.allow_credentials:
            answer.append(("Access-Control-Allow-Credentials", "true"))
        if self.max_age is not None:
            answer.append(("Access-Control-Max-Age", str(self.max_age)))
        return Reply(204, headers=answer)

    def on_response(self, reply: Reply, headers: dict[str, str]) -> Reply:
        """The integration's own CORS headers are ignored; an allowed Origin gets API Gateway's."""
        reply.headers = [pair for pair in reply.headers if not pair[0].lower().startswith("access-control-")]
        origin = headers.get("origin")
        if origin is None or not self._allows_origin(origin):
            return reply
        reply.headers.append(("Access-Control-Allow-Origin", origin))
        if self.allow_credentials:
            reply.headers.append(("Access-Control-Allow-Credentials", "true"))
        if self.expose_headers:
            reply.headers.append(("Access-Control-Expose-Headers", ",".join(self.expose_headers)))
        reply.headers.append(("Vary", "Origin"))
        return reply

    def _allows_origin(self, origin: str) -> bool:
        # `*`, `https://*` and `http://*` are the wildcards API Gateway accepts
        return any(
            origin == allowed or (allowed.endswith("*") and origin.startswith(allowed[:-1]))
            for allowed in self.allow_origins
        )


@dataclass(frozen=True)
class HttpApi:
    """API Gateway's own part of a request: CORS preflight, route matching, the integration, CORS headers."""

    routes: tuple[Route, ...]
    cors: CorsConfiguration | None
    integrations: Mapping[str, Integration]  # by the function's logical id

    def answer(self, method: str, path: str, query: str, headers: dict[str, str], body: bytes) -> Reply:
        if self.cors is not None and self.cors.is_preflight(method, headers):
            return self.cors.preflight(headers)
        matched = self._route_for(method, path)
        if matched is None:
            return not_found()
        route, parameters = matched
        event = http_api_event(
            method,
            path,
            query=query,
            headers=headers,
            body=body or None,
            route_key=route.key,
            path_parameters=parameters or None,
        )
        reply = lambda_reply(self.integrations[route.function](event))
        return self.cors.on_response(reply, headers) if self.cors is not None else reply

    def _route_for(self, method: str, path: str) -> tuple[Route, dict[str, str]] | None:
        for route in self.routes:
            parameters = route.match(method, path)
            if parameters is not None:
                return route, parameters
        return None


def not_found() -> Reply:
    """What an HTTP API answers when no route takes the method and path."""
    return message_reply(404)


def lambda_reply(response: dict[str, Any]) -> Reply:
    """The HTTP response API Gateway makes of a payload 2.0 Lambda response."""
    raw = response.get("body") or ""
    payload = base64.b64decode(raw) if response.get("isBase64Encoded") else raw.encode()
    reply = Reply(response["statusCode"], payload, list(response.get("headers", {}).items()))
    reply.headers.extend(("Set-Cookie", cookie) for cookie in response.get("cookies") or [])
    return reply


def http_api_event(
    method: str,
    path: str,
    *,
    query: str = "",
    headers: dict[str, str] | None = None,
    body: bytes | str | None = None,
    source_ip: str = "127.0.0.1",
    route_key: str | None = None,
    path_parameters: dict[str, str] | None = None,
) -> dict[str, Any]:
    lowered = {key.lower(): value for key, value in (headers or {}).items()}
    cookie_header = lowered.pop("cookie", None)
    raw = body.encode() if isinstance(body, str) else (body or b"")
    content_type = lowered.get("content-type", "")
    # API Gateway passes text as text; anything else, and text that is not UTF-8, goes base64
    is_text = not raw or (content_type.lower().startswith(TEXT_TYPES) and _is_utf8(raw))
    now = time.time()
    event: dict[str, Any] = {
        "version": "2.0",
        "routeKey": route_key or f"{method} {path}",
        "rawPath": path,
        "rawQueryString": query,
        "headers": lowered,
        "requestContext": {
            "accountId": "123456789012",
            "apiId": "local",
            "domainName": lowered.get("host", "127.0.0.1"),
            "domainPrefix": "local",
            "http": {
                "method": method,
                "path": path,
                "protocol": "HTTP/1.1",
                "sourceIp": source_ip,
                "userAgent": lowered.get("user-agent", ""),
            },
            "requestId": str(uuid.uuid4()),
            "routeKey": route_key or f"{method} {path}",
            "stage": "$default",
            "time": time.strftime("%d/%b/%Y:%H:%M:%S +0000", time.gmtime(now)),
            "timeEpoch": int(now * 1000),
        },
        "isBase64Encoded": not is_text,
    }
    if cookie_header:
        event["cookies"] = [part.strip() for part in cookie_header.split(";") if part.strip()]
    if query:
        event["queryStringParameters"] = _joined_query(query)
    if path_parameters:
        event["pathParameters"] = path_parameters
    if raw:
        event["body"] = raw.decode() if is_text else base64.b64encode(raw).decode()
    return event


def _is_utf8(raw: bytes) -> bool:
    try:
        raw.decode()
    except UnicodeDecodeError:
        return False
    return True


def _joined_query(query: str) -> dict[str, str]:
    from urllib.parse import parse_qsl

    joined: dict[str, str] = {}
    for key, value in parse_qsl(query, keep_blank_values=True):
        joined[key] = f"{joined[key]},{value}" if key in joined else value
    return joined


@dataclass
class LocalContext:
    """The parts of a LambdaContext that Powertools reads."""

    function_name: str = "PortalFunction"
    function_version: str = "$LATEST"
    memory_limit_in_mb: int = 1024
    invoked_function_arn: str = "arn:aws:lambda:us-east-1:123456789012:function:PortalFunction"
    aws_request_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    log_group_name: str = "/aws/lambda/PortalFunction"
    log_stream_name: str = "local"

    def get_remaining_time_in_millis(self) -> int:
        return 28_000
