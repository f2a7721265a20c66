"""The function's routes, matched on the event's method and path, so the handler file is routes only.

API Gateway invokes the function only for template.yaml's routes; matching the path here (as Powertools'
resolver did, without importing its every resolver) answers local events, tests and a misrouted call alike.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

ApiEvent = Mapping[str, Any]
ApiResponse = dict[str, Any]
RouteFunction = Callable[..., ApiResponse]
_Function = TypeVar("_Function", bound=RouteFunction)

# A path parameter is one segment: RFC 3986's unreserved and sub-delims, '%' escapes and word characters.
_SEGMENT = r"[-._~()'!*:@,;=+&$%<> \[\]{}|^\w]+"
_PARAMETER = re.compile(r"<(\w+)>")


class Router:
    def __init__(self) -> None:
        self._routes: list[tuple[frozenset[str], re.Pattern[str], RouteFunction]] = []
        self._not_found: RouteFunction | None = None

    def route(self, path: str, methods: tuple[str, ...]) -> Callable[[_Function], _Function]:
        """`path` names its parameters as `<name>`; the function gets them as keyword arguments."""
        pattern = re.compile(_PARAMETER.sub(lambda name: f"(?P<{name[1]}>{_SEGMENT})", path))

        def register(function: _Function) -> _Function:
            self._routes.append((frozenset(methods), pattern, function))
            return function

        return register

    def not_found(self, function: _Function) -> _Function:
        self._not_found = function
        return function

    def resolve(self, event: ApiEvent, context: Any) -> ApiResponse:
        headers = event.get("headers", {})
        if not isinstance(headers, dict) or not all(isinstance(value, str) for value in headers.values()):
            # API Gateway always sends a map of strings: anything else is a wiring bug, answered 500.
            raise TypeError("not an API Gateway HTTP API event: its headers are not a map of strings")
        method, path = request_line(event)
        for methods, pattern, function in self._routes:
            match = pattern.fullmatch(path)
            if match is not None and method in methods:
                return function(event, context, **match.groupdict())
        assert self._not_found is not None, "register a not_found function"
        return self._not_found(event, context)


def request_line(event: ApiEvent) -> tuple[str, str]:
    """The method (upper case) and the path below the stage, read defensively: any field may be anything."""
    context = event.get("requestContext")
    http = context.get("http") if isinstance(context, dict) else None
    method = http.get("method") if isinstance(http, dict) else None
    path = event.get("rawPath")
    path = path if isinstance(path, str) else ""
    stage = context.get("stage") if isinstance(context, dict) else None
    if isinstance(stage, str) and stage != "$default" and path.startswith(f"/{stage}/"):
        path = path[len(stage) + 1 :]
    return (method.upper() if isinstance(method, str) else ""), path
