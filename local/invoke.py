"""`make invoke EVENT=events/<file>.json`: one event through the handler, as `sam local invoke -e` does.

Runs against the same embedded stand-ins as `make dev` (moto's DynamoDB, the seeded Stripe emulator and the
dev issuer whose key signed the tokens in events/), without Docker, and prints the Lambda response.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from local.apigw import LocalContext
from local.identity_provider import DEV_ISSUER
from local.stack import local_stack


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "event", type=Path, help="an API Gateway HTTP API event, e.g. events/portal-post.json"
    )
    event_path = parser.parse_args().event
    try:
        event = json.loads(event_path.read_text())
    except (OSError, ValueError) as exc:
        sys.exit(f"make invoke: cannot read {event_path}: {exc}")
    with local_stack(DEV_ISSUER, serve_identity=True):
        import portal_handler
        import webhook_handler

        # The route decides the function, as API Gateway's integration does.
        webhook = str(event.get("routeKey", "")).endswith("/stripe/webhook")
        handler = webhook_handler.lambda_handler if webhook else portal_handler.lambda_handler
        response = handler(event, LocalContext())
    print(json.dumps(response, indent=2))


if __name__ == "__main__":
    main()
