"""Each file in events/ runs through the handler, as `sam local invoke -e` would; its status is checked."""

from __future__ import annotations

import json
from collections.abc import Iterator
from urllib.parse import quote

import pytest

from local.demo import seed_demo
from local.dev_env import DEV_TABLE, dev_environment
from local.events import APP_ORIGIN, EVENTS_DIR, SPECS, build_event, route_for
from local.identity_provider import DEV_ISSUER, IdentityProvider
from local.template import customers_table_definition
from tests.conftest import Invoker, portal_session

EVENT_FILES = sorted(path.name for path in EVENTS_DIR.glob("*.json"))


@pytest.fixture(scope="module")
def dev_identity() -> Iterator[IdentityProvider]:
    with IdentityProvider(issuer=DEV_ISSUER, fixed_key=True).serving() as provider:
        yield provider


@pytest.fixture
def dev_handler(env, handler, aws, stripe, dev_identity):
    settings = dev_environment(
        DEV_ISSUER,
        stripe_api_base=stripe.url,
        stripe_api_key=None,
        jwks_url=f"{dev_identity.url}/.well-known/jwks.json",
    )
    env(**settings)
    aws.create_table(**customers_table_definition(DEV_TABLE))
    seed_demo(stripe, aws, DEV_TABLE)
    handler.module.portal.cache_clear()
    import webhook_handler

    webhook_handler.webhooks.cache_clear()
    functions = {"PortalFunction": handler, "WebhookFunction": Invoker(webhook_handler)}

    def invoke(event):
        # The route decides the function, as API Gateway's integrations do.
        route, _ = route_for(event["requestContext"]["http"]["method"], event["rawPath"])
        return functions[route.function if route else "PortalFunction"](event)

    return invoke


def test_every_event_file_is_described():
    assert sorted(SPECS) == EVENT_FILES


@pytest.mark.parametrize("name", EVENT_FILES)
def test_event_files_are_current(name):
    identity = IdentityProvider(issuer=DEV_ISSUER, fixed_key=True)

    assert json.loads((EVENTS_DIR / name).read_text()) == build_event(name, SPECS[name], identity)


@pytest.mark.parametrize("name", EVENT_FILES)
def test_event_gets_its_expected_status(dev_handler, stripe, name):
    event = json.loads((EVENTS_DIR / name).read_text())

    response = dev_handler(event)

    spec = SPECS[name]
    assert response["statusCode"] == spec.expected_status, response.get("body")
    if spec.code is not None:
        assert json.loads(response["body"])["code"] == spec.code
    elif spec.user is None:  # a browser without credentials is sent to sign in, and back afterwards
        assert (
            response["headers"]["Location"]
            == f"{APP_ORIGIN}/dev/sign-in?next={quote(APP_ORIGIN + '/', safe='')}"
        )
    else:
        session = portal_session(response, stripe)
        flow = event.get("pathParameters", {}).get("flow")
        assert (session["flow"] or {}).get("type") == flow
        assert len(stripe.sessions()) == 1
