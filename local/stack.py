"""The embedded stand-ins, started together: DynamoDB (moto), Stripe (the emulator) and the dev issuer.

`make dev` and `make invoke` both run the real handler against this stack; nothing here is reachable from
outside 127.0.0.1, and everything stops when the context exits.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from typing import Any

import boto3

from local.demo import seed_demo
from local.dev_env import DEV_TABLE, DEV_WEBHOOK_SECRET, dev_environment
from local.identity_provider import IdentityProvider
from local.stripe_emulator import StripeEmulator
from local.template import customers_table_definition


@dataclass
class LocalStack:
    origin: str
    identity: IdentityProvider
    emulator: StripeEmulator | None  # None when STRIPE_API_KEY points at a real or other Stripe
    dynamodb: Any
    environment: dict[str, str]

    @property
    def stripe_description(self) -> str:
        if self.emulator is not None:
            return f"Stripe emulator on {self.emulator.url} (seeded with the demo world)"
        return (
            f"Stripe at {self.environment.get('STRIPE_API_BASE', 'https://api.stripe.com')} (nothing seeded)"
        )


@contextmanager
def local_stack(
    origin: str,
    *,
    serve_identity: bool,
    environ: dict[str, str] | None = None,
    deliver_webhooks: bool = False,
    organizations: bool = False,
) -> Iterator[LocalStack]:
    """Start the stand-ins and point the function's environment at them (os.environ is updated)."""
    environ = dict(os.environ if environ is None else environ)
    real_stripe_key = environ.get("STRIPE_API_KEY")
    with ExitStack() as stack:
        from moto.server import ThreadedMotoServer

        logging.getLogger("werkzeug").setLevel(logging.ERROR)  # moto's per-request access log

        moto = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
        moto.start()
        stack.callback(moto.stop)
        host, port = moto.get_host_and_port()
        dynamodb_url = f"http://{host}:{port}"

        identity = IdentityProvider(issuer=origin, fixed_key=True)
        if serve_identity:
            identity.serve()
            stack.callback(identity.shutdown)

        emulator = None
        if not real_stripe_key:
            emulator = StripeEmulator()
            emulator.serve()
            stack.callback(emulator.shutdown)

        environment = dev_environment(
            origin,
            stripe_api_base=emulator.url if emulator else environ.get("STRIPE_API_BASE"),
            stripe_api_key=real_stripe_key,
            jwks_url=f"{identity.url}/.well-known/jwks.json" if serve_identity else None,
            organizations=organizations,
        )
        if real_stripe_key:
            # The demo prices exist only in the emulator: the policy is the developer's, or the defaults.
            for policy in ("PORTAL_POLICY", "PORTAL_POLICY_FILE"):
                environment[policy] = environ.get(policy, "")
            if environ.get("STRIPE_WEBHOOK_SECRET"):  # e.g. `stripe listen`'s secret
                environment["STRIPE_WEBHOOK_SECRET"] = environ["STRIPE_WEBHOOK_SECRET"]
        environment["AWS_ENDPOINT_URL_DYNAMODB"] = dynamodb_url
        os.environ.update(environment)

        dynamodb = boto3.client("dynamodb", region_name="us-east-1", endpoint_url=dynamodb_url)
        dynamodb.create_table(**customers_table_definition(DEV_TABLE))
        if emulator is not None:
            seed_demo(emulator, dynamodb, DEV_TABLE)
            if deliver_webhooks:  # to make dev's own /stripe/webhook, signed with the dev secret
                emulator.add_webhook_endpoint(f"{origin}/stripe/webhook", DEV_WEBHOOK_SECRET)
        yield LocalStack(origin, identity, emulator, dynamodb, environment)
