"""Malformed and hostile requests: each gets a clear 4xx (or the 303 back with portal_error), nothing escapes
the handler, and nothing is written to DynamoDB or sent to Stripe."""

from __future__ import annotations

import base64
import json

import pytest

from local.apigw import http_api_event
from tests.conftest import APP, link_customer, portal_session, problem, rows


def nothing_happened(stripe, aws) -> None:
    assert stripe.requests() == []
    assert rows(aws) == []


def event(handler, *, body: str | None, base64_flag: bool, content_type: str, accept_json: bool, token: str):
    headers = {"host": "api.example.com", "authorization": f"Bearer {token}", "content-type": content_type}
    if accept_json:
        headers["accept"] = "application/json"
    built = http_api_event("POST", "/portal", headers=headers)
    if body is not None:
        built["body"] = body
    built["isBase64Encoded"] = base64_flag
    return handler(built)


JSON = "application/json"
FORM = "application/x-www-form-urlencoded"
MALFORMED = "the JSON body is malformed"
NOT_UTF8 = "the request body is not UTF-8 text"
NOT_BASE64 = "the request body is not valid base64"
TOO_LARGE = "the request body is too large"
# name: (body, base64-flagged, content type, the parameter named, the detail)
BAD_BODIES = {
    "5,000 nested arrays": ("[" * 5000, False, JSON, "body", MALFORMED),
    "5,000 nested objects": ('{"a":' * 5000, False, JSON, "body", TOO_LARGE),
    "not UTF-8, base64-flagged": (
        base64.b64encode(b"return_to=\xff\xfe").decode(),
        True,
        JSON,
        "body",
        NOT_UTF8,
    ),
    "not UTF-8 form, base64-flagged": (
        base64.b64encode(b"locale=\xc3\x28").decode(),
        True,
        FORM,
        "body",
        NOT_UTF8,
    ),
    # No client can send this (API Gateway hands over text as UTF-8); it is refused all the same.
    "a lone surrogate, not base64": ('{"locale": "\ud800"}', False, JSON, "body", NOT_BASE64),
    "invalid base64": ("%%%not base64%%%", True, JSON, "body", NOT_BASE64),
    "base64 with bad padding": ("eyJh", True, JSON, "body", MALFORMED),
    "form %-escape that is not UTF-8": (
        "return_to=%FF%FE",
        False,
        FORM,
        "body",
        "the body has a %-escape that is not UTF-8",
    ),
    "query-like %-escape in JSON": ('{"return_to": "%FF"}', False, JSON, "return_to", None),
    "duplicate JSON keys": (
        '{"locale": "en", "locale": "de"}',
        False,
        JSON,
        "locale",
        "'locale' was given more than once",
    ),
    "a JSON list": ('["locale", "en"]', False, JSON, "body", "the JSON body must be an object"),
    "a float": ('{"quantity": 1.5}', False, JSON, "quantity", "'quantity' must be a string or an integer"),
    "true": ('{"quantity": true}', False, JSON, "quantity", "'quantity' must be a string or an integer"),
    "NaN": ('{"quantity": NaN}', False, JSON, "quantity", "'quantity' must be a string or an integer"),
    "a 5,000-digit number": ('{"quantity": ' + "9" * 5000 + "}", False, JSON, "body", MALFORMED),
    "too many form fields": (
        "&".join(f"f{i}=1" for i in range(100)),
        False,
        FORM,
        "body",
        "the body has too many fields",
    ),
    "too large": ("x=" + "a" * 20_000, False, FORM, "body", TOO_LARGE),
    "too large to decode": ("x=" + "a" * 40_000, False, FORM, "body", TOO_LARGE),
    "base64 with a character outside its alphabet": ("e3*0=", True, JSON, "body", NOT_BASE64),
    "an unknown content type": (
        "<xml/>",
        False,
        "application/xml",
        "body",
        "send parameters as application/x-www-form-urlencoded or application/json",
    ),
}


@pytest.mark.parametrize("accept_json", [True, False], ids=["fetch", "navigation"])
@pytest.mark.parametrize("name", BAD_BODIES)
def test_an_unreadable_body_is_refused_naming_it(handler, identity, stripe, aws, name, accept_json):
    body, flag, content_type, param, detail = BAD_BODIES[name]

    response = event(
        handler,
        body=body,
        base64_flag=flag,
        content_type=content_type,
        accept_json=accept_json,
        token=identity.token("user-1"),
    )

    if accept_json:  # a fetch() caller reads a 400 problem naming what was wrong
        assert response["statusCode"] == 400, name
        refusal = problem(response)
        assert (refusal["code"], refusal["param"]) == ("invalid_parameter", param)
        if detail is not None:
            assert refusal["detail"] == detail
    else:  # a browser goes back to the app with the code
        assert response["statusCode"] == 303, name
        assert response["headers"]["Location"] == f"{APP}/account?portal_error=invalid_parameter"
    nothing_happened(stripe, aws)


def test_duplicate_json_keys_are_refused_by_name(handler, identity, stripe, aws):
    response = handler.request(
        token=identity.token("user-1"),
        raw_body=("application/json", '{"return_to": "https://app.example.com/a", "return_to": "x"}'),
        accept="application/json",
    )

    assert response["statusCode"] == 400
    assert problem(response)["code"] == "invalid_parameter"
    assert problem(response)["param"] == "return_to"
    assert problem(response)["detail"] == "'return_to' was given more than once"
    nothing_happened(stripe, aws)


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("subscription", "sub_123\n"),
        ("subscription", "sub_123\r"),
        ("quantity", "2\n"),
        ("price", "price_a\n"),
    ],
)
def test_a_trailing_newline_does_not_pass_an_id_or_number_pattern(
    redeploy, handler, identity, stripe, aws, field, value
):
    # Given the plan change enabled for price_a, up to 5 seats
    confirm = {"enabled": True, "prices": {"price_a": {}}, "quantity": {"max": 5}}
    redeploy(PORTAL_POLICY=json.dumps({"flows": {"subscription_update_confirm": confirm}}))
    link_customer(aws, "user-1", stripe.add_customer())
    before = rows(aws)

    response = handler.request(
        path="/portal/subscription_update_confirm",
        token=identity.token("user-1"),
        json_body={field: value},
        accept="application/json",
    )

    assert response["statusCode"] == 400
    assert (problem(response)["code"], problem(response)["param"]) == ("invalid_parameter", field)
    assert stripe.requests() == []
    assert rows(aws) == before


class TestAnonymousCallersLearnNothing:
    @pytest.mark.parametrize(
        ("path", "form"),
        [
            ("/portal/nope", {}),
            ("/portal/subscription_update_confirm", {}),  # disabled by default
            ("/portal", {"customer": "cus_someone"}),
            ("/portal", {"return_to": "https://evil.example/"}),
            ("/portal/subscription_cancel", {"subscription": "sub_x\n"}),
        ],
    )
    def test_401_before_anything_else(self, handler, stripe, aws, path, form):
        response = handler.request(path=path, form=form, accept="application/json")

        assert response["statusCode"] == 401
        assert problem(response)["code"] == "unauthenticated"
        assert "enabled_flows" not in problem(response)
        assert "param" not in problem(response)
        nothing_happened(stripe, aws)

    def test_an_unreadable_body_without_credentials_is_401(self, handler, stripe, aws):
        built = http_api_event(
            "POST", "/portal", headers={"content-type": "application/json", "accept": "application/json"}
        )
        built["body"], built["isBase64Encoded"] = "%%%", True

        response = handler(built)

        assert response["statusCode"] == 401
        assert problem(response)["code"] == "unauthenticated"
        nothing_happened(stripe, aws)

    def test_a_browser_without_credentials_goes_to_sign_in_even_with_a_bad_body(self, handler, stripe, aws):
        built = http_api_event("POST", "/portal/nope", headers={"content-type": "application/json"})
        built["body"] = "[" * 5000

        response = handler(built)

        assert response["statusCode"] == 303
        assert response["headers"]["Location"].startswith(f"{APP}/sign-in?next=")
        nothing_happened(stripe, aws)


@pytest.mark.parametrize(
    ("mangle", "status", "code"),
    [
        # Powertools' resolver reads the headers before our code does: it fails, the last line answers.
        (lambda e: e.update(headers="not a map"), 500, "internal_error"),
        (lambda e: e.update(headers={"authorization": 7}), 500, "internal_error"),
        (lambda e: e.update(cookies="session=abc"), 401, "unauthenticated"),
        (lambda e: e.update(cookies=[None, 3]), 401, "unauthenticated"),
        (lambda e: e.update(rawQueryString=None), 401, "unauthenticated"),
        (lambda e: e.update(rawQueryString=["a"]), 401, "unauthenticated"),
        (lambda e: e.update(body=b"bytes"), 401, "unauthenticated"),
        (lambda e: e.update(body={"a": 1}), 401, "unauthenticated"),
    ],
)
def test_event_shapes_api_gateway_never_sends_are_still_answered_not_raised(
    handler, stripe, aws, mangle, status, code
):
    built = http_api_event("POST", "/portal", headers={"accept": "application/json"})
    mangle(built)

    response = handler(built)

    # Not client input (API Gateway builds these fields); the handler still answers instead of raising.
    assert response["statusCode"] == status
    assert json.loads(response["body"])["code"] == code
    nothing_happened(stripe, aws)


@pytest.mark.parametrize(
    "token",
    ["\ud800.\ud800.\ud800", "a" * 20 + "\x00.b.c", "é.é.é", "eyJhbGciOiJSUzI1NiJ9..sig", "a.b.c.d", "a.b.c"],
)
def test_tokens_outside_the_compact_jws_alphabet_are_401(handler, stripe, aws, token):
    response = handler.request(token=token, accept="application/json")

    assert response["statusCode"] == 401
    assert problem(response)["code"] == "unauthenticated"
    assert problem(response)["detail"] == "the token is malformed"
    nothing_happened(stripe, aws)


@pytest.mark.parametrize("subject", ["user\x00one", "\ud800", "tab\there", " "])
def test_a_signed_token_with_an_unusable_subject_is_401(handler, identity, stripe, aws, subject):
    response = handler.request(token=identity.token(subject), accept="application/json")

    assert response["statusCode"] == 401
    assert problem(response)["code"] == "unauthenticated"
    assert problem(response)["detail"] == "the token has no usable subject"
    nothing_happened(stripe, aws)


def test_unprintable_email_and_name_claims_are_left_out_of_the_customer(handler, identity, stripe, aws):
    token = identity.token("user-9", email="a\ud800@example.com", name="Ann\x07")

    response = handler.request(token=token)

    assert response["statusCode"] == 303
    portal_session(response, stripe)
    [create] = stripe.requests_to("POST", "/v1/customers")
    assert set(create.params) == {"metadata"}
    assert create.params["metadata"]["app_user_id"] == "user-9"


class TestOddEventsWithCredentials:
    """A signed-in request whose event API Gateway would never shape so: each part is refused by name."""

    @pytest.mark.parametrize(
        ("mangle", "param", "detail"),
        [
            (lambda e: e.update(body=b"bytes"), "body", "the request body cannot be read"),
            (lambda e: e.update(body={"a": 1}), "body", "the request body cannot be read"),
            (lambda e: e.update(rawQueryString=["a"]), "query", "the query string cannot be read"),
        ],
    )
    def test_a_part_that_is_not_text_is_400_naming_it(
        self, handler, identity, stripe, aws, mangle, param, detail
    ):
        headers = {
            "authorization": f"Bearer {identity.token('user-1')}",
            "accept": "application/json",
            "content-type": "application/json",
        }
        built = http_api_event("POST", "/portal", headers=headers)
        mangle(built)

        response = handler(built)

        assert response["statusCode"] == 400
        assert (problem(response)["code"], problem(response)["param"], problem(response)["detail"]) == (
            "invalid_parameter",
            param,
            detail,
        )
        nothing_happened(stripe, aws)


class TestLongNames:
    """A parameter's name is echoed back cut to 64 characters, in the detail and as the param."""

    NAME = "n" * 100

    def test_a_long_name_given_twice_in_json(self, handler, identity, stripe):
        body = f'{{"{self.NAME}": "a", "{self.NAME}": "b"}}'

        response = handler.request(
            token=identity.token("user-1"), raw_body=("application/json", body), accept="application/json"
        )

        refusal = problem(response)
        assert (refusal["param"], refusal["detail"]) == (
            self.NAME[:64],
            f"{self.NAME[:64]!r} was given more than once",
        )
        assert stripe.requests() == []

    def test_a_long_name_given_twice_in_query_and_form(self, handler, identity, stripe):
        response = handler.request(
            token=identity.token("user-1"),
            query=f"{self.NAME}=a",
            form={self.NAME: "b"},
            accept="application/json",
        )

        refusal = problem(response)
        assert (refusal["param"], refusal["detail"]) == (
            self.NAME[:64],
            f"{self.NAME[:64]!r} was given more than once",
        )
        assert stripe.requests() == []

    def test_a_long_name_with_a_value_that_is_not_text(self, handler, identity, stripe):
        response = handler.request(
            token=identity.token("user-1"), json_body={self.NAME: [1]}, accept="application/json"
        )

        refusal = problem(response)
        assert (refusal["param"], refusal["detail"]) == (
            self.NAME[:64],
            f"{self.NAME[:64]!r} must be a string or an integer",
        )
        assert stripe.requests() == []

    def test_a_long_unknown_name(self, handler, identity, stripe):
        response = handler.request(
            token=identity.token("user-1"), form={self.NAME: "x"}, accept="application/json"
        )

        refusal = problem(response)
        assert (refusal["code"], refusal["param"]) == ("unknown_parameter", self.NAME[:64])
        assert refusal["detail"] == f"{self.NAME[:64]!r} is not a parameter of this endpoint"
        assert stripe.requests() == []


class TestCookies:
    def test_the_session_cookie_is_found_after_entries_that_are_not_text(self, handler, identity, stripe):
        built = http_api_event("POST", "/portal", headers={"origin": APP, "accept": "application/json"})
        built["cookies"] = [7, None, "theme=dark", f"session={identity.token('user-1')}"]

        response = handler(built)

        assert response["statusCode"] == 200
        portal_session(response, stripe)

    def test_a_quoted_cookie_value_is_unquoted(self, handler, identity, stripe):
        response = handler.request(
            headers={"cookie": f'session="{identity.token("user-1")}"', "origin": APP},
            accept="application/json",
        )

        portal_session(response, stripe)

    @pytest.mark.parametrize(
        ("cookie", "detail"),
        [
            ("session=a.b.c=", "the token is malformed"),  # the value runs from the first "="
            ("session=X", "the token is malformed"),  # unquoting takes quotes off, nothing else
            ('session=""', "sign in to continue"),
            ("session=", "sign in to continue"),
        ],
    )
    def test_a_cookie_is_read_as_sent(self, handler, stripe, cookie, detail):
        response = handler.request(headers={"cookie": cookie, "origin": APP}, accept="application/json")

        assert response["statusCode"] == 401
        assert problem(response)["detail"] == detail
        assert stripe.requests() == []


@pytest.mark.parametrize(
    ("where", "request_args"),
    [
        ("query", {"method": "GET", "query": "return_to=%FF"}),
        ("body", {"raw_body": ("application/x-www-form-urlencoded", "return_to=%FF")}),
    ],
)
def test_a_percent_escape_that_is_not_utf8_is_refused_naming_where_it_was(
    handler, identity, stripe, aws, where, request_args
):
    response = handler.request(token=identity.token("user-1"), accept="application/json", **request_args)

    assert response["statusCode"] == 400
    body = problem(response)
    assert (body["code"], body["param"]) == ("invalid_parameter", where)
    assert body["detail"] == f"the {where} has a %-escape that is not UTF-8"
    assert stripe.requests() == []
    assert rows(aws) == []


def test_a_json_body_with_a_charset_is_read_as_json(handler, identity, stripe):
    response = handler.request(
        token=identity.token("user-1"),
        accept="application/json",
        raw_body=("application/json; charset=utf-8", json.dumps({"return_to": f"{APP}/billing"})),
    )

    session = portal_session(response, stripe)
    assert session["return_url"] == f"{APP}/billing"
