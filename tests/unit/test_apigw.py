"""API Gateway's part of a request, as `make dev` plays it: the event the Lambda gets, CORS, the 404."""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest

from local.apigw import CorsConfiguration, HttpApi, Route, http_api_event
from local.template import http_api_cors, http_api_routes

APP = "https://app.example.com"


class RecordingLambda:
    """The integration: records each event and answers with a fixed payload 2.0 response."""

    def __init__(self, response: dict[str, Any] | None = None) -> None:
        self.events: list[dict[str, Any]] = []
        self.response = response or {
            "statusCode": 200,
            "headers": {"Content-Type": "text/plain"},
            "body": "ok",
        }

    def __call__(self, event: dict[str, Any]) -> dict[str, Any]:
        self.events.append(event)
        return self.response


def portal_api(integration: RecordingLambda) -> HttpApi:
    return HttpApi(
        http_api_routes(), http_api_cors({"ALLOWED_ORIGINS": APP}), {"PortalFunction": integration}
    )


@pytest.mark.parametrize(
    ("method", "path", "route_key", "path_parameters"),
    [
        ("POST", "/portal", "POST /portal", None),
        ("GET", "/portal", "GET /portal", None),
        ("POST", "/portal/subscription_cancel", "POST /portal/{flow}", {"flow": "subscription_cancel"}),
        ("GET", "/portal/nope", "GET /portal/{flow}", {"flow": "nope"}),
    ],
)
def test_each_template_route_reaches_the_lambda_with_its_route_key(method, path, route_key, path_parameters):
    integration = RecordingLambda()

    reply = portal_api(integration).answer(method, path, "a=1", {"host": "api.example.com"}, b"")

    assert (reply.status, reply.body) == (200, b"ok")
    [event] = integration.events
    assert (event["routeKey"], event["rawPath"], event["rawQueryString"]) == (route_key, path, "a=1")
    assert event["requestContext"]["http"]["method"] == method
    assert event.get("pathParameters") == path_parameters


@pytest.mark.parametrize(
    ("method", "path"),
    [("PUT", "/portal"), ("HEAD", "/portal"), ("GET", "/portal/a/b"), ("POST", "/portal/"), ("GET", "/")],
)
def test_what_no_route_takes_never_reaches_the_lambda(method, path):
    integration = RecordingLambda()

    reply = portal_api(integration).answer(method, path, "", {}, b"")

    assert (reply.status, reply.headers, json.loads(reply.body)) == (
        404,
        [("Content-Type", "application/json")],
        {"message": "Not Found"},
    )
    assert integration.events == []


def test_a_greedy_path_variable_takes_the_rest_of_the_path():
    assert Route("ANY", "/files/{key+}").match("DELETE", "/files/a/b.txt") == {"key": "a/b.txt"}
    assert Route("GET", "/files/{key}").match("GET", "/files/a/b.txt") is None


def test_a_preflight_never_reaches_the_lambda():
    integration = RecordingLambda()

    reply = portal_api(integration).answer(
        "OPTIONS", "/portal", "", {"origin": APP, "access-control-request-method": "POST"}, b""
    )

    assert (reply.status, reply.body) == (204, b"")
    assert dict(reply.headers)["Access-Control-Allow-Origin"] == APP
    assert integration.events == []


def test_the_lambdas_own_cors_headers_give_way_to_the_configurations():
    integration = RecordingLambda(
        {"statusCode": 200, "headers": {"Access-Control-Allow-Origin": "*", "Vary": "Accept"}, "body": "{}"}
    )
    cors = CorsConfiguration(allow_origins=(APP,), expose_headers=("x-request-id", "retry-after"))

    reply = HttpApi(http_api_routes(), cors, {"PortalFunction": integration}).answer(
        "POST", "/portal", "", {"origin": APP}, b""
    )

    assert reply.headers == [
        ("Vary", "Accept"),
        ("Access-Control-Allow-Origin", APP),
        ("Access-Control-Expose-Headers", "x-request-id,retry-after"),
        ("Vary", "Origin"),
    ]


def test_cors_comes_from_the_template_with_the_allowed_origins_parameter_split():
    cors = http_api_cors({"ALLOWED_ORIGINS": f"{APP},https://admin.example.com"})

    assert cors == CorsConfiguration(
        allow_origins=(APP, "https://admin.example.com"),
        allow_methods=("GET", "POST"),
        allow_headers=("authorization", "content-type"),
        expose_headers=("retry-after",),
        allow_credentials=True,
        max_age=600,
    )


@pytest.mark.parametrize(
    "content_type", ["application/json", "application/x-www-form-urlencoded", "text/plain"]
)
def test_a_body_that_is_not_utf8_goes_base64_whatever_its_content_type(content_type):
    body = b'\xff\xfe{"price": "\xe9"}'

    event = http_api_event("POST", "/portal", headers={"Content-Type": content_type}, body=body)

    assert event["isBase64Encoded"] is True
    assert base64.b64decode(event["body"]) == body


def test_a_utf8_text_body_goes_as_text():
    event = http_api_event("POST", "/portal", headers={"Content-Type": "Application/JSON"}, body='{"a": "é"}')

    assert (event["isBase64Encoded"], event["body"]) == (False, '{"a": "é"}')
