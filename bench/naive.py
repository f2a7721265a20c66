"""A naive peer: Stripe's customer-portal snippet inside the usual Powertools stack.

Logger, Tracer (patching everything), Metrics and the APIGatewayHttpResolver; a boto3 resource Table; the
key through Powertools parameters; PyJWKClient for the issuer's keys; stripe's module-level API.
"""

from __future__ import annotations

import json
import os
import urllib.request
from typing import Any

import boto3
import jwt
import stripe
from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.event_handler import APIGatewayHttpResolver, Response
from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.utilities import parameters

logger = Logger()
tracer = Tracer()
metrics = Metrics()
app = APIGatewayHttpResolver()
table = boto3.resource("dynamodb").Table(os.environ["CUSTOMERS_TABLE"])
stripe.api_base = os.environ["STRIPE_API_BASE"]
stripe.api_version = os.environ["STRIPE_API_VERSION"]
jwks: dict[str, jwt.PyJWKClient] = {}


@app.route("/portal", method=["GET", "POST"])
def portal() -> Response[str]:
    token = (app.current_event.get_header_value("authorization") or "").removeprefix("Bearer ")
    if not token:
        return Response(status_code=401, body="")
    claims = jwt.decode(
        token,
        signing_key(token),
        algorithms=["RS256"],
        audience=os.environ["AUTH_AUDIENCE"],
        issuer=os.environ["AUTH_ISSUER"],
    )
    item = table.get_item(Key={"app_user_id": claims["sub"]}, ConsistentRead=True)["Item"]
    stripe.api_key = parameters.get_secret(os.environ["STRIPE_SECRET_ARN"])
    session = stripe.billing_portal.Session.create(
        customer=str(item["stripe_customer_id"]), return_url=os.environ["DEFAULT_RETURN_URL"]
    )
    return Response(status_code=303, headers={"Location": session.url}, body="")


def signing_key(token: str) -> Any:
    if "client" not in jwks:
        url = f"{os.environ['AUTH_ISSUER']}/.well-known/openid-configuration"
        with urllib.request.urlopen(url, timeout=3) as response:  # noqa: S310 - the issuer's URL
            jwks["client"] = jwt.PyJWKClient(json.loads(response.read())["jwks_uri"])
    return jwks["client"].get_signing_key_from_jwt(token).key


@logger.inject_lambda_context(correlation_id_path=correlation_paths.API_GATEWAY_HTTP)
@metrics.log_metrics
@tracer.capture_lambda_handler
def lambda_handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    return app.resolve(event, context)
