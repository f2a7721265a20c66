"""Fakes at the network boundary only: moto for DynamoDB, the Stripe emulator, the dev identity provider."""

from __future__ import annotations

import functools
import json
import os
import socket
import threading
from collections.abc import Callable, Iterator
from types import ModuleType
from typing import Any

import boto3
import botocore.loaders
import botocore.session
import pytest
import stripe as stripe_sdk
from moto import mock_aws

# Lambda sets a function's environment before it imports the code; Powertools reads these at import (a
# module's Metrics keeps the namespace it found then), so they are set before any test imports the layer.
os.environ.update(POWERTOOLS_SERVICE_NAME="portal-links", POWERTOOLS_METRICS_NAMESPACE="PortalLinksTest")

from local import demo
from local.apigw import LocalContext, http_api_event
from local.identity_provider import IdentityProvider
from local.stripe_emulator import StripeEmulator
from local.template import customers_table_definition

APP = "https://app.example.com"
TABLE = "portal-links-customers-test"
API_KEY = "sk_test_portal_links"


@pytest.fixture(scope="session")
def identity() -> Iterator[IdentityProvider]:
    # The committed development key: a fresh RSA key would cost a test session a noticeable moment.
    with IdentityProvider(fixed_key=True).serving() as provider:
        yield provider


@pytest.fixture(scope="session")
def emulator_server() -> Iterator[StripeEmulator]:
    with StripeEmulator().serving() as emulator:
        yield emulator


@pytest.fixture
def stripe(emulator_server: StripeEmulator) -> StripeEmulator:
    emulator_server.reset()
    return emulator_server


@pytest.fixture
def stripe_api(stripe: StripeEmulator) -> stripe_sdk.StripeClient:
    """A StripeClient on the emulator, to change its state through Stripe's API as an app would."""
    return stripe_sdk.StripeClient(API_KEY, base_addresses={"api": stripe.url})


@pytest.fixture
def base_env(identity: IdentityProvider, stripe: StripeEmulator) -> dict[str, str]:
    return {
        "CUSTOMERS_TABLE": TABLE,
        "AUTH_ISSUER": identity.issuer,
        "AUTH_AUDIENCE": identity.audience,
        "AUTH_TOKEN_USE": "oidc",
        "ALLOWED_ORIGINS": f"{APP},http://localhost:5173",
        "ALLOW_INSECURE_LOCALHOST": "true",
        "DEFAULT_RETURN_URL": f"{APP}/account",
        "SIGN_IN_URL": f"{APP}/sign-in",
        "STRIPE_API_KEY": API_KEY,
        "STRIPE_API_BASE": stripe.url,
        "POWERTOOLS_SERVICE_NAME": "portal-links",
        "POWERTOOLS_METRICS_NAMESPACE": "PortalLinksTest",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
    }


@pytest.fixture
def env(monkeypatch: pytest.MonkeyPatch, base_env: dict[str, str]) -> Callable[..., None]:
    """Set the function's environment; later calls override single settings."""

    def apply(**overrides: str | None) -> None:
        for key, value in {**base_env, **overrides}.items():
            if value is None:
                monkeypatch.delenv(key, raising=False)
            else:
                monkeypatch.setenv(key, value)

    apply()
    return apply


# Made once per process rather than per test session: mutation testing runs a session per mutant, each
# in a fork of one process that has made them already.
@functools.cache
def _customers_table() -> dict[str, Any]:
    return customers_table_definition(TABLE)


@functools.cache
def _boto3_session() -> boto3.Session:
    return boto3.Session()


@pytest.fixture(scope="session")
def customers_table() -> dict[str, Any]:
    """`create_table` arguments from template.yaml's definition, read once: parsing YAML is slow."""
    return _customers_table()


@pytest.fixture(scope="session")
def boto3_session() -> boto3.Session:
    """One boto3 session for every test: AWS's service models are parsed once, not for each test."""
    return _boto3_session()


@functools.cache
def _botocore_loader() -> botocore.loaders.Loader:
    return botocore.loaders.create_loader()


def _aws_session_sharing_the_loader() -> botocore.session.Session:
    """A new botocore session, as each cold start makes, that reads AWS's service models and endpoint data
    through one loader: a Lambda container parses them once; each test here is a cold start of its own."""
    session = botocore.session.Session()
    session.register_component("data_loader", _botocore_loader())
    return session


@pytest.fixture
def aws(
    env: Callable[..., None],
    customers_table: dict[str, Any],
    boto3_session: boto3.Session,
    monkeypatch: pytest.MonkeyPatch,
) -> Iterator[Any]:
    """In-process moto with the customers table created from template.yaml's definition."""
    monkeypatch.setattr(botocore.session, "get_session", _aws_session_sharing_the_loader)
    with mock_aws():
        # moto clears boto3's default session while it mocks; every client made meanwhile uses ours.
        boto3.DEFAULT_SESSION = boto3_session
        client = boto3.client("dynamodb", region_name="us-east-1")
        client.create_table(**customers_table)
        yield client


class Invoker:
    """Calls the Lambda handler with an API Gateway HTTP API event, as `sam local invoke` would."""

    def __init__(self, module: ModuleType) -> None:
        self.module = module

    def __call__(self, event: dict[str, Any]) -> dict[str, Any]:
        response: dict[str, Any] = self.module.lambda_handler(event, LocalContext())
        return response

    def request(
        self,
        method: str = "POST",
        path: str = "/portal",
        *,
        token: str | None = None,
        cookie: str | None = None,
        form: dict[str, str] | None = None,
        json_body: dict[str, Any] | None = None,
        raw_body: tuple[str, str] | None = None,
        query: str = "",
        accept: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> dict[str, Any]:
        all_headers = {"host": "api.example.com", **(headers or {})}
        body: str | None = None
        if token is not None:
            all_headers["authorization"] = f"Bearer {token}"
        if cookie is not None:
            all_headers["cookie"] = f"session={cookie}"
        if accept is not None:
            all_headers["accept"] = accept
        if form is not None:
            from urllib.parse import urlencode

            body = urlencode(form)
            all_headers["content-type"] = "application/x-www-form-urlencoded"
        if json_body is not None:
            body = json.dumps(json_body)
            all_headers["content-type"] = "application/json"
        if raw_body is not None:
            all_headers["content-type"], body = raw_body
        return self(http_api_event(method, path, query=query, headers=all_headers, body=body))


def cold_started_handler() -> Invoker:
    """The handler, its container state rebuilt from the current environment (a fresh cold start)."""
    import portal_handler

    portal_handler.portal.cache_clear()
    portal_handler.portal()
    return Invoker(portal_handler)


@pytest.fixture
def handler(aws: Any) -> Invoker:
    return cold_started_handler()


@pytest.fixture
def redeploy(env: Callable[..., None], handler: Invoker) -> Callable[..., None]:
    """Deploy again with these settings: the next request is a cold start that reads them."""

    def apply(**overrides: str | None) -> None:
        env(**overrides)
        handler.module.portal.cache_clear()

    return apply


SILENT_SECONDS = 12.0


@pytest.fixture
def silent_endpoint() -> Iterator[str]:
    """An endpoint that accepts no connection, as a dropped route looks to a client: its listening socket's
    queue is full, so the kernel drops each new SYN and the client waits for its connect timeout. After
    SILENT_SECONDS it closes, and a client still trying is refused: one without a timeout fails its test in
    seconds instead of waiting out the kernel's two minutes of SYN retries."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(0)
    port = listener.getsockname()[1]
    fillers = [socket.socket() for _ in range(3)]
    for filler in fillers:
        filler.setblocking(False)
        filler.connect_ex(("127.0.0.1", port))
    closing = threading.Timer(SILENT_SECONDS, listener.close)
    closing.start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        closing.cancel()
        listener.close()
        for filler in fillers:
            filler.close()


def link_customer(client: Any, app_user_id: str, customer_id: str) -> None:
    demo.link_customer(client, TABLE, app_user_id, customer_id)


def portal_session(response: dict[str, Any], stripe: StripeEmulator) -> dict[str, Any]:
    """The portal session an accepted request leads to, asserted as only acceptance answers: a 303 whose
    Location is the newest session the emulator made, or a fetch()'s 200 with that session's URL."""
    assert response["statusCode"] in (200, 303), response["body"]
    as_api_gateway_reads_it(response)
    session = stripe.sessions()[-1]
    assert session["url"].startswith(f"{stripe.url}/p/session/")
    if response["statusCode"] == 303:
        assert response["headers"]["Location"] == session["url"]
        assert response["body"] == ""
        assert "Content-Type" not in response["headers"]
    else:
        assert response["headers"]["Content-Type"] == "application/json"
        assert json.loads(response["body"]) == {"url": session["url"]}
    return session


def as_api_gateway_reads_it(response: dict[str, Any]) -> None:
    """A payload 2.0 response API Gateway passes on as it is: a text body (a base64 flag would have it
    decoded), headers, and nothing else (no cookies are set)."""
    assert set(response) == {"statusCode", "headers", "body", "isBase64Encoded"}
    assert response["isBase64Encoded"] is False
    assert isinstance(response["body"], str)


def problem(response: dict[str, Any]) -> dict[str, Any]:
    as_api_gateway_reads_it(response)
    assert response["headers"]["Content-Type"] == "application/problem+json"
    body: dict[str, Any] = json.loads(response["body"])
    return body


def rows(client: Any) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = client.scan(TableName=TABLE)["Items"]
    return items
