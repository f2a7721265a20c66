"""Events and webhook endpoints: what Stripe records for each change, and its signed deliveries.

Endpoints are made through the API (`POST /v1/webhook_endpoints`, which answers the signing secret once) or
seeded with a fixed secret for `make dev`. Each change the emulator makes becomes an event; a worker thread
POSTs it, signed `Stripe-Signature: t=<unix time>,v1=<HMAC-SHA256 of "t.body">`, to every enabled endpoint
that asked for its type, in order, as Stripe delivers asynchronously.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import queue
import secrets
import threading
import time
import urllib.error
import urllib.request
from dataclasses import dataclass

from local.stripe_emulator.params import (
    ApiCall,
    Route,
    expect_enum,
    expect_list,
    expect_object,
    expect_string,
    expect_url,
    no_such,
    require,
)
from local.stripe_emulator.state import Store, StripeObject, new_id, now, wants

# The event types the emulator emits; an endpoint may ask for these or "*".
EMITTED = (
    "customer.created",
    "customer.updated",
    "customer.deleted",
    "checkout.session.completed",
)
DELIVERY_TIMEOUT_SECONDS = 10.0
ID = r"(?P<ident>[^/]+)"


def signature_header(payload: bytes, secret: str, timestamp: int) -> str:
    digest = hmac.new(secret.encode(), f"{timestamp}.".encode() + payload, hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={digest}"


def new_endpoint(url: str, enabled_events: list[str], secret: str | None = None) -> StripeObject:
    return {
        "id": new_id("we"),
        "object": "webhook_endpoint",
        "api_version": None,
        "application": None,
        "created": now(),
        "description": None,
        "enabled_events": enabled_events,
        "livemode": False,
        "metadata": {},
        "secret": secret or f"whsec_{secrets.token_hex(16)}",
        "status": "enabled",
        "url": url,
    }


def _public(endpoint: StripeObject) -> StripeObject:
    # Stripe shows the signing secret only in the answer that creates the endpoint.
    return {key: value for key, value in endpoint.items() if key != "secret"}


def create_endpoint(store: Store, call: ApiCall) -> StripeObject:
    params = expect_object(call.params, "", {"url", "enabled_events", "description", "metadata", "expand"})
    url = expect_url(require(params, "url"), "url")
    events = [
        expect_enum(kind, f"enabled_events[{index}]", ("*", *EMITTED))
        for index, kind in enumerate(expect_list(require(params, "enabled_events"), "enabled_events", 256))
    ]
    endpoint = new_endpoint(url, events)
    if "description" in params:
        endpoint["description"] = expect_string(params["description"], "description")
    store.webhook_endpoints[endpoint["id"]] = endpoint
    return dict(endpoint)


def list_endpoints(store: Store, call: ApiCall) -> StripeObject:
    expect_object(call.params, "", {"limit"})
    data = [_public(endpoint) for endpoint in reversed(store.webhook_endpoints.values())]
    return {"object": "list", "data": data, "has_more": False, "url": "/v1/webhook_endpoints"}


def delete_endpoint(store: Store, call: ApiCall) -> StripeObject:
    expect_object(call.params, "", set())
    if call.ident not in store.webhook_endpoints:
        raise no_such("webhook endpoint", call.ident)
    del store.webhook_endpoints[call.ident]
    return {"id": call.ident, "object": "webhook_endpoint", "deleted": True}


def list_events(store: Store, call: ApiCall) -> StripeObject:
    params = expect_object(call.params, "", {"type", "limit"})
    kind = expect_string(params["type"], "type") if "type" in params else None
    data = [event for event in reversed(store.events.values()) if kind in (None, event["type"])]
    return {"object": "list", "data": data[:100], "has_more": len(data) > 100, "url": "/v1/events"}


def retrieve_event(store: Store, call: ApiCall) -> StripeObject:
    expect_object(call.params, "", set())
    if call.ident not in store.events:
        raise no_such("event", call.ident)
    return store.events[call.ident]


ROUTES = (
    Route("POST", "/v1/webhook_endpoints", create_endpoint),
    Route("GET", "/v1/webhook_endpoints", list_endpoints),
    Route("DELETE", f"/v1/webhook_endpoints/{ID}", delete_endpoint),
    Route("GET", "/v1/events", list_events),
    Route("GET", f"/v1/events/{ID}", retrieve_event),
)


@dataclass(frozen=True)
class Delivery:
    event_id: str
    event_type: str
    url: str
    status: int  # 0: the endpoint could not be reached


class Deliverer:
    """One worker posting events in the order they happened, like Stripe's asynchronous delivery."""

    def __init__(self) -> None:
        self._queue: queue.Queue[tuple[StripeObject, list[StripeObject]]] = queue.Queue()
        self._lock = threading.Lock()
        self.deliveries: list[Delivery] = []
        threading.Thread(target=self._work, name="stripe-emulator-webhooks", daemon=True).start()

    def send(self, event: StripeObject, endpoints: list[StripeObject]) -> None:
        self._queue.put((event, endpoints))

    def wait(self, timeout: float = DELIVERY_TIMEOUT_SECONDS) -> None:
        """Until every event handed over so far has been delivered (or failed)."""
        deadline = time.monotonic() + timeout
        while self._queue.unfinished_tasks and time.monotonic() < deadline:
            time.sleep(0.01)

    def clear(self) -> None:
        with self._lock:
            self.deliveries = []

    def _work(self) -> None:
        while True:
            event, endpoints = self._queue.get()
            try:
                for endpoint in endpoints:
                    status = post_event(event, endpoint["url"], endpoint["secret"])
                    with self._lock:
                        self.deliveries.append(Delivery(event["id"], event["type"], endpoint["url"], status))
            finally:
                self._queue.task_done()


def post_event(event: StripeObject, url: str, secret: str, timestamp: int | None = None) -> int:
    payload = json.dumps(event, indent=2).encode()
    headers = {
        "Content-Type": "application/json; charset=utf-8",
        "User-Agent": "Stripe/1.0 (+https://stripe.com/docs/webhooks)",
        "Stripe-Signature": signature_header(payload, secret, now() if timestamp is None else timestamp),
    }
    request = urllib.request.Request(url, data=payload, headers=headers, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=DELIVERY_TIMEOUT_SECONDS) as response:
            return int(response.status)
    except urllib.error.HTTPError as error:
        return int(error.code)
    except (urllib.error.URLError, OSError):
        return 0


def endpoints_for(store: Store, event: StripeObject) -> list[StripeObject]:
    return [dict(e) for e in store.webhook_endpoints.values() if wants(e, event["type"])]
