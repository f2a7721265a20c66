"""The files in events/: one API Gateway HTTP API event per route and per notable error.

They are what `sam local invoke -e events/<file>.json` and `make invoke EVENT=...` take. Tokens in them
are signed by the committed development key for `make dev`'s issuer and never expire, so the files work
offline against the local stand-ins. Regenerate with `python -m local.events`.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from local.apigw import Route, http_api_event
from local.dev_env import DEV_WEBHOOK_SECRET
from local.identity_provider import DEV_ISSUER, IdentityProvider
from local.stripe_emulator.events import signature_header
from local.template import http_api_routes

EVENTS_DIR = Path(__file__).resolve().parent.parent / "events"
APP_ORIGIN = DEV_ISSUER  # the demo page, the API and the dev issuer share make dev's origin
NEVER = 4102444800  # 2100-01-01
ISSUED = 1767225600  # 2026-01-01


@dataclass(frozen=True)
class EventSpec:
    description: str
    expected_status: int
    code: str | None = None  # a refusal's problem code
    method: str = "POST"
    path: str = "/portal"
    user: str | None = "demo-user"
    cookie: bool = False
    accept_json: bool = False
    form: dict[str, str] = field(default_factory=dict)
    query: str = ""
    headers: dict[str, str] = field(default_factory=dict)
    token_claims: dict[str, Any] = field(default_factory=dict)
    stripe_event: dict[str, Any] | None = None  # a webhook delivery, signed with make dev's secret


SPECS: dict[str, EventSpec] = {
    "portal-post.json": EventSpec("Form POST with a bearer token: 303 to the portal homepage", 303),
    "portal-post-json.json": EventSpec("fetch() caller: 200 {url}", 200, accept_json=True),
    "portal-get.json": EventSpec("GET link: 303 to the portal homepage", 303, method="GET"),
    "portal-post-cookie.json": EventSpec(
        "Form POST with the session cookie from an allowed origin",
        303,
        cookie=True,
        headers={"origin": APP_ORIGIN},
    ),
    "portal-post-return-to.json": EventSpec(
        "return_to on an allowed origin becomes the portal's return URL",
        303,
        form={"return_to": f"{APP_ORIGIN}/billing"},
    ),
    "error-no-token.json": EventSpec(
        "No credentials, JSON caller: 401 problem", 401, "unauthenticated", user=None, accept_json=True
    ),
    "error-no-token-navigation.json": EventSpec(
        "No credentials, browser: 303 to the sign-in page",
        303,
        user=None,
        headers={"referer": APP_ORIGIN + "/"},
    ),
    "error-expired-token.json": EventSpec(
        "Expired token: 401", 401, "unauthenticated", accept_json=True, token_claims={"exp": ISSUED + 60}
    ),
    "error-csrf.json": EventSpec(
        "Cookie POST from a foreign origin: 403",
        403,
        "csrf_rejected",
        cookie=True,
        accept_json=True,
        headers={"origin": "https://evil.example"},
    ),
    "error-return-to.json": EventSpec(
        "return_to off the allow-list: 400",
        400,
        "invalid_parameter",
        accept_json=True,
        form={"return_to": "https://evil.example/"},
    ),
    "error-unknown-parameter.json": EventSpec(
        "A parameter only the server decides: 400",
        400,
        "unknown_parameter",
        accept_json=True,
        form={"customer": "cus_someone"},
    ),
    "error-unknown-route.json": EventSpec(
        "No such route: 404", 404, "not_found", path="/nowhere", accept_json=True
    ),
    "flow-payment-method-update.json": EventSpec(
        "Update card: 303 to the payment_method_update flow", 303, path="/portal/payment_method_update"
    ),
    "flow-subscription-cancel.json": EventSpec(
        "Cancel plan: 303 to the subscription_cancel flow for the user's one subscription",
        303,
        path="/portal/subscription_cancel",
    ),
    "flow-subscription-update.json": EventSpec(
        "Change plan: 303 to the subscription_update flow", 303, path="/portal/subscription_update"
    ),
    "flow-subscription-update-confirm.json": EventSpec(
        "Switch to annual: 303 to subscription_update_confirm with the policy's coupon",
        303,
        path="/portal/subscription_update_confirm",
        form={"price": "price_pro_annual"},
    ),
    "flow-customer-update.json": EventSpec(
        "Update billing details: 303 to the customer_update flow", 303, path="/portal/customer_update"
    ),
    "flow-subscription-pause.json": EventSpec(
        "Pause plan: 303 to the subscription_pause flow", 303, path="/portal/subscription_pause"
    ),
    "error-unknown-flow.json": EventSpec(
        "Unknown flow: 404 listing the enabled flows",
        404,
        "unknown_flow",
        path="/portal/subscription_destroy",
        accept_json=True,
    ),
    "error-price-not-allowed.json": EventSpec(
        "A price off the allow-list: 400",
        400,
        "invalid_parameter",
        path="/portal/subscription_update_confirm",
        accept_json=True,
        form={"price": "price_free_forever"},
    ),
    "error-no-subscription.json": EventSpec(
        "Cancel for a user with no subscription: 409",
        409,
        "no_subscription",
        path="/portal/subscription_cancel",
        user="new-user",
        accept_json=True,
    ),
    "webhook-stale-signature.json": EventSpec(
        "A Stripe webhook delivery signed long ago (as any committed one is): 400, nothing written",
        400,
        "signature_invalid",
        path="/stripe/webhook",
        user=None,
        stripe_event={
            "id": "evt_events_dir",
            "object": "event",
            "api_version": "2026-10-28.endive",
            "created": ISSUED,
            "data": {"object": {"id": "cus_EventsDir", "object": "customer", "metadata": {}}},
            "livemode": False,
            "type": "customer.created",
        },
    ),
}


def build_event(name: str, spec: EventSpec, identity: IdentityProvider) -> dict[str, Any]:
    headers = {"host": "127.0.0.1:3000", "user-agent": "events/" + name, **spec.headers}
    if spec.user is not None:
        claims = {"iat": ISSUED, "exp": NEVER, "email": f"{spec.user}@example.com", **spec.token_claims}
        token = identity.token(spec.user, **claims)
        if spec.cookie:
            headers["cookie"] = f"session={token}"
        else:
            headers["authorization"] = f"Bearer {token}"
    if spec.accept_json:
        headers["accept"] = "application/json"
    body = None
    if spec.form:
        body = urlencode(spec.form)
        headers["content-type"] = "application/x-www-form-urlencoded"
    if spec.stripe_event is not None:
        body = json.dumps(spec.stripe_event)
        headers["content-type"] = "application/json"
        headers["stripe-signature"] = signature_header(body.encode(), DEV_WEBHOOK_SECRET, ISSUED)
    route, parameters = route_for(spec.method, spec.path)
    event = http_api_event(
        spec.method,
        spec.path,
        query=spec.query,
        headers=headers,
        body=body,
        route_key=route.key if route else None,
        path_parameters=parameters or None,
    )
    request_id = str(uuid.uuid5(uuid.NAMESPACE_URL, f"portal-links/events/{name}"))
    event["requestContext"].update(
        requestId=request_id, time="01/Jan/2026:00:00:00 +0000", timeEpoch=ISSUED * 1000
    )
    return event


def route_for(method: str, path: str) -> tuple[Route | None, dict[str, str]]:
    """The template's route that takes this request, and its path parameters, as API Gateway matches."""
    for route in http_api_routes():
        parameters = route.match(method, path)
        if parameters is not None:
            return route, parameters
    return None, {}


def write_events() -> list[Path]:
    identity = IdentityProvider(issuer=DEV_ISSUER, fixed_key=True)
    EVENTS_DIR.mkdir(exist_ok=True)
    written = []
    for name, spec in SPECS.items():
        path = EVENTS_DIR / name
        path.write_text(json.dumps(build_event(name, spec, identity), indent=2) + "\n")
        written.append(path)
    return written


if __name__ == "__main__":
    for written_path in write_events():
        print(written_path.relative_to(EVENTS_DIR.parent))
