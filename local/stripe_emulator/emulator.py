"""The emulator as tests and `make dev` hold it: Stripe's state, read through copies, served on 127.0.0.1."""

from __future__ import annotations

import copy
from collections.abc import Iterator
from contextlib import contextmanager

from local.stripe_emulator.events import Delivery, endpoints_for, new_endpoint
from local.stripe_emulator.resources import SUBSCRIPTIONS
from local.stripe_emulator.state import StripeObject, StripeState, new_id, now
from local.stripe_emulator.transport import DEFAULT_API_VERSION, Fault, RecordedRequest, Transport


class StripeEmulator(StripeState):
    """Seed it, serve it, point a StripeClient at `url`; read what happened through the accessors."""

    def __init__(self) -> None:
        super().__init__()
        self._transport = Transport(self)

    def reset(self) -> None:
        with self.lock:
            super().reset()
            self._transport.reset()

    def customers(self) -> list[StripeObject]:
        """The customers that exist (not deleted), oldest first."""
        with self.lock:
            return [copy.deepcopy(c) for c in self.store.customers.values() if not c.get("deleted")]

    def subscriptions(self) -> list[StripeObject]:
        """Every subscription, in any status, oldest first, as the API shows it."""
        with self.lock:
            return [SUBSCRIPTIONS.view(self.store, s, set()) for s in self.store.subscriptions.values()]

    def subscription(self, subscription_id: str) -> StripeObject:
        with self.lock:
            return SUBSCRIPTIONS.view(self.store, self.store.subscriptions[subscription_id], set())

    def sessions(self) -> list[StripeObject]:
        """The portal sessions created, oldest first, with every field the newest API version has."""
        with self.lock:
            return copy.deepcopy(list(self.store.sessions.values()))

    def requests(self) -> list[RecordedRequest]:
        """Every API request received, in order, with its decoded parameters and the status answered."""
        return self._transport.requests()

    def requests_to(self, method: str, path: str) -> list[RecordedRequest]:
        return [r for r in self.requests() if r.method == method and r.path == path]

    def events(self) -> list[StripeObject]:
        """Every event, oldest first (`GET /v1/events` lists them newest first)."""
        with self.lock:
            return copy.deepcopy(list(self.store.events.values()))

    def deliveries(self) -> list[Delivery]:
        """Every webhook delivery so far, after waiting for those under way."""
        self._transport.deliverer.wait()
        return list(self._transport.deliverer.deliveries)

    def add_webhook_endpoint(self, url: str, secret: str, enabled_events: tuple[str, ...] = ("*",)) -> str:
        """An endpoint with a fixed signing secret (`make dev`); the API's own endpoints get random ones."""
        with self.lock:
            endpoint = new_endpoint(url, list(enabled_events), secret)
            self.store.webhook_endpoints[endpoint["id"]] = endpoint
        return str(endpoint["id"])

    def complete_checkout(
        self, client_reference_id: str, price: str, email: str | None = None
    ) -> StripeObject:
        """What a customer finishing a subscription Checkout leaves behind: a new customer (without our
        metadata), an active subscription, and the customer.created and checkout.session.completed events.
        Stripe has no API for this step: the customer does it on Stripe's page."""
        with self.lock:
            customer = self.store.create_customer(email=email)
            self.store.emit("customer.created", customer, DEFAULT_API_VERSION)
            subscription = self.store.create_subscription(customer["id"], [(price, 1)], status="active")
            session: StripeObject = {
                "id": new_id("cs_test"),
                "object": "checkout.session",
                "client_reference_id": client_reference_id,
                "created": now(),
                "customer": customer["id"],
                "customer_email": email,
                "livemode": False,
                "mode": "subscription",
                "payment_status": "paid",
                "status": "complete",
                "subscription": subscription["id"],
            }
            self.store.emit("checkout.session.completed", session, DEFAULT_API_VERSION)
        self._transport.deliver_outbox()
        return copy.deepcopy(session)

    def resend(self, event_id: str) -> None:
        """Deliver an event again, as the Dashboard's "Resend" (or `stripe events resend`) does."""
        with self.lock:
            event = copy.deepcopy(self.store.events[event_id])
            endpoints = endpoints_for(self.store, event)
        self._transport.deliverer.send(event, endpoints)

    def advance_clock(self, seconds: float) -> None:
        """Move the emulator's clock on: idempotency keys older than 24 hours are forgotten, as on Stripe."""
        with self.lock:
            self._transport.traffic.clock_offset += seconds

    def inject_fault(
        self,
        method: str,
        path: str,
        status: int = 500,
        *,
        delay: float = 0.0,
        times: int = 1,
        should_retry: bool | None = None,
        error_type: str = "api_error",
        truncate_body: bool = False,
    ) -> None:
        """The next `times` matching requests: wait `delay`, then fail with `status` (0: answer normally),
        or, with `truncate_body`, answer with the JSON cut in half."""
        fault = Fault(method, path, status, delay, times, should_retry, error_type, truncate_body)
        self._transport.add_fault(fault)

    def set_latency(self, method: str, path: str, seconds: float) -> None:
        self._transport.set_latency(method, path, seconds)

    @contextmanager
    def serving(self, port: int = 0) -> Iterator[StripeEmulator]:
        self.serve(port)
        try:
            yield self
        finally:
            self.shutdown()

    def serve(self, port: int = 0) -> str:
        return self._transport.serve(port)

    def shutdown(self) -> None:
        self._transport.shutdown()

    @property
    def url(self) -> str:
        return self._transport.url
