"""What API Gateway (HTTP API, payload 2.0) hands a Lambda, built from a plain HTTP request.

Used by `make dev`'s front, `make invoke` and the tests, so all of them call the handler exactly as
API Gateway does.
"""

from __future__ import annotations

import base64
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

TEXT_TYPES = ("application/x-www-form-urlencoded", "application/json", "text/")


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
    is_text = not raw or content_type.startswith(TEXT_TYPES)
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
