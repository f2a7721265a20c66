"""Property: whatever API Gateway hands the function, it answers a well-formed response below 500, nothing
escapes, and a refused request writes nothing to DynamoDB and sends nothing to Stripe."""

from __future__ import annotations

import base64
import json
from typing import Any

from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from local.apigw import http_api_event
from portal_links.flows import FLOWS as FLOW_TABLE
from tests.conftest import APP, rows

METHODS = st.sampled_from(
    ["POST"] * 6 + ["GET"] * 3 + ["PUT", "DELETE", "HEAD", "OPTIONS", "PATCH"]
) | st.text(st.characters(min_codepoint=33, max_codepoint=126), min_size=1, max_size=8)
FLOWS = st.sampled_from([*FLOW_TABLE, "nope", ""]) | st.text(max_size=20)
PATHS = st.one_of(
    st.just("/portal"),
    FLOWS.map(lambda flow: f"/portal/{flow}"),
    FLOWS.map(lambda flow: f"/portal/{flow}"),
    st.text(max_size=30).map(lambda p: "/" + p),
)
NAMES = st.sampled_from(["return_to", "locale", "subscription", "price", "quantity", "customer", "flow_data"])
VALUES = st.one_of(
    st.text(max_size=40),
    st.sampled_from([f"{APP}/ok", "https://evil.example/", "sub_123\n", "1\n", "price_x", "en", "-1", "0"]),
)
FORM = st.lists(st.tuples(NAMES | st.text(max_size=10), VALUES), max_size=5)
CONTENT_TYPES = st.sampled_from(
    [
        "application/x-www-form-urlencoded",
        "application/json",
        "text/plain",
        "application/json; charset=utf-8",
        "",
    ]
)


def _form(pairs: list[tuple[str, str]]) -> str:
    from urllib.parse import urlencode

    return urlencode(pairs)


@st.composite
def bodies(draw: st.DrawFn) -> tuple[str | None, bool]:
    kind = draw(st.sampled_from(["none", "form", "json", "text", "binary", "nested", "bad-base64"]))
    if kind == "none":
        return None, False
    if kind == "form":
        text = _form(draw(FORM))
    elif kind == "json":
        text = json.dumps(dict(draw(FORM)))
    elif kind == "nested":
        text = "[" * draw(st.integers(1, 3000))
    elif kind == "bad-base64":
        return draw(st.text(max_size=20)), True
    elif kind == "binary":
        return base64.b64encode(draw(st.binary(max_size=64))).decode(), True
    else:
        text = draw(st.text(max_size=80))
    if draw(st.booleans()):
        return base64.b64encode(text.encode("utf-8", "surrogatepass")).decode(), True
    return text, False


@st.composite
def events(draw: st.DrawFn, token: str) -> dict[str, Any]:
    headers = draw(
        st.dictionaries(
            st.text("abcdefghijklmnopqrstuvwxyz-", min_size=1, max_size=12), st.text(max_size=30), max_size=4
        )
    )
    headers["content-type"] = draw(CONTENT_TYPES)
    # Mostly fetch() callers with a valid token, so that requests get past sign-in to everything after it.
    accept = ["application/json"] * 3 + ["text/html", "*/*", "application/problem+json", ""]
    headers["accept"] = draw(st.sampled_from(accept))
    credential = draw(st.sampled_from(["bearer"] * 4 + ["none", "cookie", "garbage"]))
    if credential == "bearer":
        headers["authorization"] = f"Bearer {token}"
    elif credential == "garbage":
        headers["authorization"] = draw(st.text(max_size=40))
    if draw(st.booleans()):
        headers["origin"] = draw(
            st.sampled_from([APP, "https://evil.example", "null"]) | st.text(max_size=20)
        )
    if draw(st.booleans()):
        headers["referer"] = draw(
            st.sampled_from([f"{APP}/page", "javascript:alert(1)"]) | st.text(max_size=20)
        )
    built = http_api_event(
        draw(METHODS),
        draw(PATHS),
        query=draw(st.one_of(FORM.map(_form), st.text(max_size=40))),
        headers=headers,
    )
    cookies = draw(st.lists(st.text(max_size=20), max_size=3))
    if credential == "cookie":
        cookies.append(f"session={token}")
    if cookies:
        built["cookies"] = cookies
    body, flag = draw(bodies())
    built.pop("body", None)
    if body is not None:
        built["body"] = body
    built["isBase64Encoded"] = flag
    return built


def stripe_writes(stripe: Any) -> int:
    """Stripe requests that change something; a refusal may have read a subscription, never written."""
    return sum(1 for request in stripe.requests() if request.method != "GET")


def refused(response: dict[str, Any], stripe_url: str) -> bool:
    return not (
        response["statusCode"] in (200, 303) and stripe_url in (response["body"] + str(response["headers"]))
    )


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_any_event_gets_a_well_formed_answer_below_500(handler, identity, stripe, aws, data):
    token = identity.token("prop-user")
    built = data.draw(events(token))
    requests_before, rows_before = stripe_writes(stripe), rows(aws)

    response = handler(built)

    event(f"status {response['statusCode']}")
    assert isinstance(response["statusCode"], int)
    assert 200 <= response["statusCode"] < 500, response
    assert all(isinstance(k, str) and isinstance(v, str) for k, v in response["headers"].items())
    assert isinstance(response["body"], str)
    if response["statusCode"] >= 400:
        assert json.loads(response["body"])["code"]
    if response["statusCode"] == 303:
        assert response["headers"]["Location"]
    if refused(response, stripe.url):
        assert stripe_writes(stripe) == requests_before
        assert rows(aws) == rows_before


JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=30),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3),
    max_leaves=8,
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    flow=st.sampled_from(["", "/payment_method_update", "/subscription_cancel", "/subscription_update"]),
    document=st.dictionaries(NAMES | st.text(max_size=8), JSON_VALUES | VALUES, max_size=4),
)
def test_any_json_document_from_a_signed_in_user_is_answered_below_500(
    handler, identity, stripe, aws, flow, document
):
    requests_before, rows_before = stripe_writes(stripe), rows(aws)

    response = handler.request(
        path=f"/portal{flow}",
        token=identity.token("prop-user"),
        json_body=document,
        accept="application/json",
    )

    event(f"status {response['statusCode']}")
    assert response["statusCode"] < 500, response
    if response["statusCode"] >= 400:
        assert json.loads(response["body"])["code"]
        assert stripe_writes(stripe) == requests_before
        assert rows(aws) == rows_before
