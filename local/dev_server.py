"""`make dev`: the whole service on http://127.0.0.1:3000, offline, without Docker.

Each request one of template.yaml's routes takes becomes an API Gateway HTTP API (payload 2.0) event and goes
through the real Lambda handler in-process — the same code path as deployed, layer package included — one at
a time, as in one Lambda container; API Gateway's own answers (CORS, its 404) come from local/apigw.py.
Around it: the demo app, the dev identity provider (sign-in page, /dev/token, JWKS and
discovery), DynamoDB from moto's server and the Stripe emulator (or a real Stripe when STRIPE_API_KEY is set).
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

import jwt

from local.apigw import HttpApi, LocalContext
from local.demo import claims_of, demo_users
from local.demo_page import app_page, demo_page, sign_in_page
from local.dev_env import DEV_TABLE, write_sam_env_file
from local.dev_tools import StripeDevTools
from local.server import LocalServer, Reply, handler_for
from local.stack import LocalStack, local_stack
from local.template import http_api_cors, http_api_routes
from portal_links.customers import BillingSubject

USER_ID_LIMIT = 64
SESSION_SECONDS = 3600


class DevApp:
    def __init__(self, stack: LocalStack) -> None:
        import portal_handler
        import webhook_handler
        from portal_links.settings import load_settings

        self.stack = stack
        self.origin = stack.origin
        settings = load_settings()
        self.organizations = settings.auth.organizations is not None
        policy = settings.policy
        self.flows = {name: list(policy.flows[name].prices) for name in policy.enabled_flows()}
        functions = {
            "PortalFunction": portal_handler.lambda_handler,
            "WebhookFunction": webhook_handler.lambda_handler,
        }
        integrations = {name: one_container(handler, name) for name, handler in functions.items()}
        self.api = HttpApi(http_api_routes(), http_api_cors(stack.environment), integrations)
        self.tools = (
            StripeDevTools(stack.emulator, stack.dynamodb, DEV_TABLE, stack.environment["STRIPE_API_KEY"])
            if stack.emulator is not None
            else None
        )

    def handle(self, method: str, raw_path: str, headers: dict[str, str], body: bytes) -> Reply:
        path, _, query = raw_path.partition("?")
        page = self.pages(headers).get((method, path))
        if page is not None:
            params = {k: v[-1] for k, v in parse_qs(query).items()}
            if method == "POST":
                params.update({k: v[-1] for k, v in parse_qs(body.decode(errors="replace")).items()})
            return page(params)
        identity_document = self.stack.identity.document(path) if method == "GET" else None
        if identity_document is not None:
            return _json(200, identity_document)
        # Everything else is the API's: API Gateway answers preflights, routes, and 404s the rest.
        return self.api.answer(method, path, query, headers, body)

    def pages(self, headers: dict[str, str]) -> dict[tuple[str, str], Callable[[dict[str, str]], Reply]]:
        """The demo app, the dev sign-in and the dev Stripe controls, which API Gateway would never see."""
        user = self.signed_in_user(headers)
        tools = {}
        dev_tools = self.tools
        if dev_tools is not None and user is not None and headers.get("origin") in (None, self.origin):
            subject, email = self.subject_of(user), f"{user}@example.com"
            controls = {
                "delete-customer": lambda: dev_tools.delete_customer(subject.key),
                "checkout": lambda: dev_tools.checkout(subject.reference, email),
                "replay": dev_tools.replay_events,
            }
            tools = {("POST", f"/dev/stripe/{name}"): _done(control) for name, control in controls.items()}
        return {
            **tools,
            ("GET", "/"): lambda p: _html(
                demo_page(
                    self.origin, user, self.flows, dev_tools=self.tools is not None, notice=p.get("dev")
                )
            ),
            ("GET", "/app"): lambda p: _html(app_page(p.get("portal_error"), p.get("done"))),
            ("GET", "/dev/sign-in"): lambda p: _html(self.sign_in_page(p.get("next"))),
            ("POST", "/dev/sign-in"): lambda p: self.sign_in(p.get("user", ""), p.get("next")),
            ("POST", "/dev/sign-out"): lambda _: self.sign_out(),
            ("GET", "/dev/token"): lambda p: self.token(p.get("user", "")),
        }

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
        """Only this origin's own pages, in printable ASCII: not an open redirect, nor a header's end."""
        if not next_url or not all("!" <= char <= "~" for char in next_url):
            return "/"
        path = next_url.removeprefix(self.origin) if next_url.startswith(self.origin + "/") else next_url
        if path.startswith("/") and not path.startswith("//") and "\\" not in path:
            return next_url
        return "/"

    def subject_of(self, user: str) -> BillingSubject:
        """Whose Stripe customer the developer tools act on: the user's, or their organization's."""
        organization = claims_of(user, self.organizations).get("org_id")
        return BillingSubject.organization(organization) if organization else BillingSubject.user(user)

    def sign_in_page(self, next_url: str | None) -> str:
        return sign_in_page(self.safe_next(next_url), demo_users(self.organizations))

    def mint(self, user: str) -> str:
        return self.stack.identity.token(
            user,
            expires_in=SESSION_SECONDS,
            email=f"{user}@example.com",
            name=user.replace("-", " ").title(),
            **claims_of(user, self.organizations),
        )

    def sign_in(self, user: str, next_url: str | None) -> Reply:
        if not _valid_user(user):
            return _html(self.sign_in_page(next_url), status=400)
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


def _done(control: Callable[[], str]) -> Callable[[dict[str, str]], Reply]:
    """Run a dev control, then back to the demo page saying what happened (its webhooks are under way)."""
    return lambda _: Reply(303, headers=[("Location", f"/?dev={control()}")])


def one_container(
    handler: Callable[[dict[str, Any], Any], dict[str, Any]], function_name: str
) -> Callable[[dict[str, Any]], dict[str, Any]]:
    """The function as one warm Lambda container: one event at a time."""
    lock = threading.Lock()

    def invoke(event: dict[str, Any]) -> dict[str, Any]:
        with lock:
            return handler(event, LocalContext(function_name=function_name))

    return invoke


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


def serve(port: int, sam_env_file: Path | None = None, organizations: bool = False) -> None:
    origin = f"http://127.0.0.1:{port}"
    try:
        server = LocalServer(("127.0.0.1", port), handler_for(lambda *_: Reply(503)))
    except OSError as exc:
        sys.exit(f"make dev: cannot listen on 127.0.0.1:{port} ({exc.strerror}); set PORT=<another port>")
    with local_stack(
        origin, serve_identity=False, deliver_webhooks=True, organizations=organizations
    ) as stack:
        app = DevApp(stack)
        if sam_env_file is not None:
            write_sam_env_file(sam_env_file, stack.environment)

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
        subject = "the organization (org_id, role org:admin)" if organizations else "the user"
        print(
            "Portal Links dev server\n"
            f"  demo app        {origin}/\n"
            f"  sign in         {origin}/dev/sign-in\n"
            f"  bearer token    curl -s '{origin}/dev/token?user=demo-user'\n"
            f"  portal API      POST {origin}/portal  and  {origin}/portal/<flow>\n"
            f"  flows enabled   {', '.join(app.flows) or 'none'}\n"
            f"  billing subject {subject}\n"
            f"  DynamoDB        moto at {stack.environment['AWS_ENDPOINT_URL_DYNAMODB']}\n"
            f"  Stripe          {stack.stripe_description}\n"
            + (f"  sam local       --env-vars {sam_env_file} (see the README)\n" if sam_env_file else "")
            + "Ctrl-C to stop.",
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
    parser.add_argument(
        "--sam-env-file", type=Path, help="write the env file for `sam local --env-vars` that points here"
    )
    parser.add_argument(
        "--organizations", action="store_true", help="organization mode: Acme's admin and member sign in"
    )
    arguments = parser.parse_args()
    serve(arguments.port, arguments.sam_env_file, arguments.organizations)


if __name__ == "__main__":
    main()
