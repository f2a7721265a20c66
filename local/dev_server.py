"""`make dev`: the whole service on http://127.0.0.1:3000, offline, without Docker.

Each request to /portal… becomes an API Gateway HTTP API (payload 2.0) event and goes through the real
Lambda handler in-process — the same code path as deployed, layer package included — one at a time, as in
one Lambda container. Around it: the demo app, the dev identity provider (sign-in page, /dev/token, JWKS and
discovery), DynamoDB from moto's server and the Stripe emulator (or a real Stripe when STRIPE_API_KEY is set).
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import signal
import sys
import threading
import time
from collections.abc import Callable
from typing import Any
from urllib.parse import parse_qs, urlsplit

import jwt

from local.apigw import LocalContext, http_api_event
from local.demo_page import app_page, demo_page, sign_in_page
from local.server import LocalServer, Reply, handler_for
from local.stack import LocalStack, local_stack

USER_ID_LIMIT = 64
SESSION_SECONDS = 3600


class DevApp:
    def __init__(self, stack: LocalStack) -> None:
        import portal_handler
        from portal_links.settings import load_settings

        self.stack = stack
        self.origin = stack.origin
        self.handler = portal_handler.lambda_handler
        policy = load_settings().policy
        self.flows = policy.enabled_flows()
        self.prices = list(policy.flows["subscription_update_confirm"].prices)
        self._one_container = threading.Lock()

    def handle(self, method: str, raw_path: str, headers: dict[str, str], body: bytes) -> Reply:
        parts = urlsplit(raw_path)
        path, query = parts.path, parts.query
        if path == "/portal" or path.startswith("/portal/"):
            return self.invoke(method, path, query, headers, body)
        identity_document = self.stack.identity.document(path)
        if identity_document is not None:
            return _json(200, identity_document)
        params = {k: v[-1] for k, v in parse_qs(query).items()}
        if method == "POST":
            params.update({k: v[-1] for k, v in parse_qs(body.decode(errors="replace")).items()})
        user = self.signed_in_user(headers)
        pages: dict[tuple[str, str], Callable[[], Reply]] = {
            ("GET", "/"): lambda: _html(demo_page(self.origin, user, self.flows, self.prices)),
            ("GET", "/app"): lambda: _html(app_page(params.get("portal_error"), params.get("done"))),
            ("GET", "/dev/sign-in"): lambda: _html(sign_in_page(self.safe_next(params.get("next")))),
            ("POST", "/dev/sign-in"): lambda: self.sign_in(params.get("user", ""), params.get("next")),
            ("POST", "/dev/sign-out"): self.sign_out,
            ("GET", "/dev/token"): lambda: self.token(params.get("user", "")),
        }
        page = pages.get((method, path))
        return page() if page else _html("<!doctype html><h1>Not found</h1>", status=404)

    def invoke(self, method: str, path: str, query: str, headers: dict[str, str], body: bytes) -> Reply:
        flow = path.removeprefix("/portal/") if path.startswith("/portal/") else None
        event = http_api_event(
            method,
            path,
            query=query,
            headers=headers,
            body=body or None,
            route_key=f"{method} /portal/{{flow}}" if flow else f"{method} /portal",
            path_parameters={"flow": flow} if flow else None,
        )
        with self._one_container:
            response: dict[str, Any] = self.handler(event, LocalContext())
        raw = response.get("body") or ""
        payload = base64.b64decode(raw) if response.get("isBase64Encoded") else raw.encode()
        reply = Reply(response["statusCode"], payload, list(response.get("headers", {}).items()))
        reply.headers.extend(("Set-Cookie", cookie) for cookie in response.get("cookies") or [])
        return reply

    def signed_in_user(self, headers: dict[str, str]) -> str | None:
        for part in headers.get("cookie", "").split(";"):
            name, _, value = part.strip().partition("=")
            if name == "session" and value:
                try:
                    claims = jwt.decode(
                        value,
                        self.stack.identity.rsa_key.public_key(),
                        algorithms=["RS256"],
                        audience=self.stack.identity.audience,
                        issuer=self.origin,
                    )
                except jwt.PyJWTError:
                    return None
                return str(claims["sub"])
        return None

    def safe_next(self, next_url: str | None) -> str:
        """Only this origin's own pages: the dev sign-in must not become an open redirect."""
        if not next_url:
            return "/"
        if next_url.startswith(self.origin + "/"):
            return next_url
        if next_url.startswith("/") and not next_url.startswith("//") and "\\" not in next_url:
            return next_url
        return "/"

    def mint(self, user: str) -> str:
        return self.stack.identity.token(
            user, expires_in=SESSION_SECONDS, email=f"{user}@example.com", name=user.replace("-", " ").title()
        )

    def sign_in(self, user: str, next_url: str | None) -> Reply:
        if not _valid_user(user):
            return _html(sign_in_page(self.safe_next(next_url)), status=400)
        cookie = f"session={self.mint(user)}; Path=/; HttpOnly; SameSite=Lax; Max-Age={SESSION_SECONDS}"
        return Reply(303, headers=[("Location", self.safe_next(next_url)), ("Set-Cookie", cookie)])

    def sign_out(self) -> Reply:
        return Reply(
            303, headers=[("Location", "/"), ("Set-Cookie", "session=; Path=/; HttpOnly; Max-Age=0")]
        )

    def token(self, user: str) -> Reply:
        if not _valid_user(user):
            return Reply(400, b"user must be 1-64 characters of letters, digits, '_', '.', '@' or '-'\n")
        return Reply(
            200, self.mint(user).encode(), [("Content-Type", "text/plain"), ("Cache-Control", "no-store")]
        )


def _valid_user(user: str) -> bool:
    return 0 < len(user) <= USER_ID_LIMIT and all(ch.isalnum() or ch in "_.@-" for ch in user)


def _html(text: str, status: int = 200) -> Reply:
    return Reply(
        status, text.encode(), [("Content-Type", "text/html; charset=utf-8"), ("Cache-Control", "no-store")]
    )


def _json(status: int, document: dict[str, Any]) -> Reply:
    return Reply(status, json.dumps(document).encode(), [("Content-Type", "application/json")])


def describe(method: str, path: str, reply: Reply, origin: str, millis: float) -> str:
    """One readable log line; a portal URL is never written out."""
    location = next((value for name, value in reply.headers if name.lower() == "location"), None)
    if location is None:
        target = ""
    elif location.startswith((origin, "/")):
        target = f" -> {location.removeprefix(origin)}"
    else:
        target = " -> portal session"
    route = path.split("?", maxsplit=1)[0]
    return f"{time.strftime('%H:%M:%S')} {method} {route} {reply.status}{target} ({millis:.0f} ms)"


def serve(port: int) -> None:
    origin = f"http://127.0.0.1:{port}"
    try:
        server = LocalServer(("127.0.0.1", port), handler_for(lambda *_: Reply(503)))
    except OSError as exc:
        sys.exit(f"make dev: cannot listen on 127.0.0.1:{port} ({exc.strerror}); set PORT=<another port>")
    with local_stack(origin, serve_identity=False) as stack:
        app = DevApp(stack)

        def respond(method: str, path: str, headers: dict[str, str], body: bytes) -> Reply:
            started = time.perf_counter()
            try:
                reply = app.handle(method, path, headers, body)
            except Exception as exc:
                reply = Reply(500, f"dev server error: {type(exc).__name__}\n".encode())
            millis = (time.perf_counter() - started) * 1000
            print(describe(method, path, reply, origin, millis), flush=True)
            return reply

        server.RequestHandlerClass = handler_for(respond)
        print(
            "Portal Links dev server\n"
            f"  demo app        {origin}/\n"
            f"  sign in         {origin}/dev/sign-in\n"
            f"  bearer token    curl -s '{origin}/dev/token?user=demo-user'\n"
            f"  portal API      POST {origin}/portal  and  {origin}/portal/<flow>\n"
            f"  flows enabled   {', '.join(app.flows) or 'none'}\n"
            f"  DynamoDB        moto at {stack.environment['AWS_ENDPOINT_URL_DYNAMODB']}\n"
            f"  Stripe          {stack.stripe_description}\n"
            "Ctrl-C to stop.",
            flush=True,
        )
        for stop_signal in (signal.SIGINT, signal.SIGTERM):
            signal.signal(stop_signal, _stop)
        try:
            server.serve_forever()
        except KeyboardInterrupt:
            print("stopping…", flush=True)
        finally:
            server.server_close()


def _stop(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def main() -> None:
    parser = argparse.ArgumentParser(description="Run Portal Links locally with embedded stand-ins.")
    parser.add_argument("--port", type=int, default=int(os.environ.get("PORT", "3000")))
    serve(parser.parse_args().port)


if __name__ == "__main__":
    main()
