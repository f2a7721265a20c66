"""The HTTP edge of the emulator: authentication, the API version, idempotency, injected faults and
latency, request recording, and routing to the endpoints; the portal page is served beside the API.

A concurrent duplicate of an `Idempotency-Key` gets 409 with `Stripe-Should-Retry: true`; a finished one
is replayed; one reused with other parameters is refused.
"""

from __future__ import annotations

import base64
import copy
import json
import re
import time
from dataclasses import dataclass, field, replace
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from local.server import LocalServer, Reply, serve_in_background
from local.stripe_emulator import billing_portal, events, resources
from local.stripe_emulator.params import ApiCall, Route, StripeRequestError, decode_form
from local.stripe_emulator.portal_page import portal_page, session_at
from local.stripe_emulator.state import StripeState, new_id

DEFAULT_API_VERSION = "2026-10-28.endive"  # the newest version the emulator knows; used without a header
ROUTES: tuple[Route, ...] = (*resources.ROUTES, *billing_portal.ROUTES, *events.ROUTES)
IDEMPOTENCY_KEY_SECONDS = 24 * 3600  # Stripe forgets a key after 24 hours
Outcome = tuple[int, dict[str, Any], dict[str, str]]  # status, JSON body, extra headers


@dataclass
class Fault:
    method: str
    path: str
    status: int = 500  # 0: only delay the request, then handle it normally
    delay: float = 0.0
    remaining: int = 1
    should_retry: bool | None = None
    error_type: str = "api_error"
    # Answer normally but cut the JSON body short, as a connection dropped mid-body does (even on a 200).
    truncate_body: bool = False


@dataclass
class RecordedRequest:
    method: str
    path: str
    params: dict[str, Any]
    idempotency_key: str | None
    stripe_version: str | None
    status: int = 0
    api_key: str | None = None


@dataclass
class Traffic:
    """What the transport remembers between requests; cleared with the emulator's state."""

    requests: list[RecordedRequest] = field(default_factory=list)
    faults: list[Fault] = field(default_factory=list)
    latency: dict[str, float] = field(default_factory=dict)
    # key → (fingerprint, status, body), or None while the first request with it is in flight; and when
    idempotency: dict[str, tuple[str, int, dict[str, Any]] | None] = field(default_factory=dict)
    idempotency_used_at: dict[str, float] = field(default_factory=dict)
    clock_offset: float = 0.0  # moved on by tests, to let idempotency keys expire

    def clock(self) -> float:
        return time.time() + self.clock_offset


class Transport:
    def __init__(self, state: StripeState) -> None:
        self._state = state
        self.traffic = Traffic()
        self.deliverer = events.Deliverer()
        self._server: LocalServer | None = None
        self._url: str | None = None

    def reset(self) -> None:
        self.deliverer.wait()
        with self._state.lock:
            self.traffic = Traffic()
        self.deliverer.clear()

    def deliver_outbox(self) -> None:
        """Hand the events made since the last call to the delivery worker, in order."""
        with self._state.lock:
            store = self._state.store
            ready = [(store.events[i], events.endpoints_for(store, store.events[i])) for i in store.outbox]
            store.outbox.clear()
        for event, endpoints in ready:
            self.deliverer.send(copy.deepcopy(event), endpoints)

    def add_fault(self, fault: Fault) -> None:
        with self._state.lock:
            self.traffic.faults.append(fault)

    def set_latency(self, method: str, path: str, seconds: float) -> None:
        with self._state.lock:
            self.traffic.latency[f"{method} {path}"] = seconds

    def requests(self) -> list[RecordedRequest]:
        with self._state.lock:
            return [replace(r, params=copy.deepcopy(r.params)) for r in self.traffic.requests]

    def serve(self, port: int = 0) -> str:
        # Every method reaches `respond`; one Stripe has no route for gets "Unrecognized request URL".
        self._server = serve_in_background(self.respond, "stripe-emulator", port)
        self._url = f"http://127.0.0.1:{self._server.server_address[1]}"
        return self._url

    def shutdown(self) -> None:
        if self._server is not None:
            self._server.stop()
            self._server = None

    @property
    def url(self) -> str:
        # Kept after shutdown: a request still in flight then (a test's deliberately slow one) is answered
        # as it would have been, not with a traceback on stderr.
        assert self._url is not None, "call serve() first"
        return self._url

    def respond(self, method: str, raw_path: str, headers: dict[str, str], body: bytes) -> Reply:
        parts = urlsplit(raw_path)
        if method == "GET" and parts.path.startswith("/p/session/"):
            with self._state.lock:
                session = session_at(list(self._state.store.sessions.values()), parts.path)
                status, page = portal_page(copy.deepcopy(session))
            return Reply(status, page.encode(), [("Content-Type", "text/html; charset=utf-8")])
        pairs = parse_qsl(parts.query, keep_blank_values=True)
        pairs += parse_qsl(body.decode(errors="replace"), keep_blank_values=True)
        (status, payload, extra), fault = self._handle(method, parts.path, pairs, headers)
        reply_headers = [("Content-Type", "application/json"), ("Request-Id", new_id("req")), *extra.items()]
        encoded = json.dumps(payload).encode()
        if fault is not None and fault.truncate_body:
            encoded = encoded[: len(encoded) // 2]
        return Reply(status, encoded, reply_headers)

    def handle(
        self, method: str, path: str, pairs: list[tuple[str, str]], headers: dict[str, str]
    ) -> Outcome:
        """One API request → (status, JSON body, extra headers)."""
        return self._handle(method, path, pairs, headers)[0]

    def _handle(
        self, method: str, path: str, pairs: list[tuple[str, str]], headers: dict[str, str]
    ) -> tuple[Outcome, Fault | None]:
        key = headers.get("idempotency-key")
        api_key = api_key_of(headers)
        record = RecordedRequest(
            method, path, {}, key, headers.get("stripe-version"), api_key=api_key or None
        )
        with self._state.lock:
            self.traffic.requests.append(record)
            fault = self._take_fault(method, path)
            latency = self.traffic.latency.get(f"{method} {path}", 0.0)
        try:
            if fault is not None:
                _injected(fault)
            _authenticate(headers)
            call = ApiCall(decode_form(pairs), _api_version(headers), self.url)
            record.params = call.params
            status, body, extra = self._idempotent(method, path, call, key, latency)
        except StripeRequestError as error:
            status, body, extra = error.status, error.body(), error.headers
        record.status = status
        return (status, body, extra), fault

    def _take_fault(self, method: str, path: str) -> Fault | None:
        for fault in self.traffic.faults:
            if fault.method == method and fault.path == path and fault.remaining > 0:
                fault.remaining -= 1
                return fault
        return None

    def _idempotent(self, method: str, path: str, call: ApiCall, key: str | None, latency: float) -> Outcome:
        if method != "POST" or not key:
            time.sleep(latency)
            return self._route(method, path, call)
        fingerprint = json.dumps([method, path, call.params], sort_keys=True)
        with self._state.lock:
            used_at = self.traffic.idempotency_used_at.get(key)
            if used_at is not None and self.traffic.clock() - used_at < IDEMPOTENCY_KEY_SECONDS:
                return _replay(self.traffic.idempotency[key], fingerprint)
            self.traffic.idempotency[key] = None
            self.traffic.idempotency_used_at[key] = self.traffic.clock()
        try:
            time.sleep(latency)
            status, body, extra = self._route(method, path, call)
        except StripeRequestError as error:
            status, body, extra = error.status, error.body(), error.headers
        with self._state.lock:
            self.traffic.idempotency[key] = (fingerprint, status, body)
        return status, body, extra

    def _route(self, method: str, path: str, call: ApiCall) -> Outcome:
        for route in ROUTES:
            match = re.fullmatch(route.pattern, path)
            if route.method == method and match:
                routed = replace(call, ident=match.groupdict().get("ident", ""))
                with self._state.lock:
                    # A copy: the answer (and its idempotent replay) must not change with later requests.
                    body = copy.deepcopy(route.endpoint(self._state.store, routed))
                self.deliver_outbox()
                return 200, body, {}
        raise StripeRequestError(404, f"Unrecognized request URL ({method}: {path}).")


def _injected(fault: Fault) -> None:
    time.sleep(fault.delay)
    if fault.status >= 400:
        retry = {} if fault.should_retry is None else {"Stripe-Should-Retry": str(fault.should_retry).lower()}
        raise StripeRequestError(fault.status, "Injected fault", kind=fault.error_type, headers=retry)


def api_key_of(headers: dict[str, str]) -> str:
    """The key, sent as a bearer token (stripe-python) or as the basic-auth user (`curl -u sk_test_…:`)."""
    scheme, _, credential = headers.get("authorization", "").partition(" ")
    if scheme.lower() == "bearer":
        return credential
    if scheme.lower() == "basic":
        try:
            return base64.b64decode(credential, validate=True).decode().partition(":")[0]
        except (ValueError, UnicodeDecodeError):
            return ""
    return ""


def _authenticate(headers: dict[str, str]) -> None:
    if not re.fullmatch(r"(sk|rk)_test_[A-Za-z0-9_]+", api_key_of(headers)):
        raise StripeRequestError(401, "Invalid API Key provided.")


def _api_version(headers: dict[str, str]) -> str:
    version = headers.get("stripe-version") or DEFAULT_API_VERSION
    if not re.fullmatch(r"\d{4}-\d{2}-\d{2}(\.[a-z]+)?", version):
        raise StripeRequestError(400, f"Invalid Stripe API version: {version}")
    return version


def _replay(stored: tuple[str, int, dict[str, Any]] | None, fingerprint: str) -> Outcome:
    if stored is None:
        raise StripeRequestError(
            409,
            "There is currently another in-progress request using this Idempotent Key.",
            kind="idempotency_error",
            code="idempotency_key_in_use",
            headers={"Stripe-Should-Retry": "true"},
        )
    if stored[0] != fingerprint:
        raise StripeRequestError(
            400,
            "Keys for idempotent requests can only be used with the same parameters "
            "they were first used with.",
            kind="idempotency_error",
        )
    return stored[1], stored[2], {"Idempotent-Replayed": "true"}
