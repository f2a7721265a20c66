"""The floor: the least a function can do to answer the same clicks with the same libraries and calls.

Init imports boto3, stripe and jwt and builds the DynamoDB and Secrets Manager clients and a StripeClient (the
deployed key lives in Secrets Manager). A click verifies the bearer JWT against the issuer's keys (discovered
once), reads the user's row and creates the portal session; a subscription flow lists the subscriptions
first. No validation, no logging, no metrics: only the calls.
"""

from __future__ import annotations

import json
import os
import urllib.request
from typing import Any

import boto3
import jwt
import stripe

dynamodb = boto3.client("dynamodb")
secrets = boto3.client("secretsmanager")
client = stripe.StripeClient(
    "sk_given_per_request",
    stripe_version=os.environ["STRIPE_API_VERSION"],
    base_addresses={"api": os.environ["STRIPE_API_BASE"]},
)
cache: dict[str, Any] = {}


def lambda_handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    authorization = event["headers"].get("authorization", "")
    if not authorization.startswith("Bearer "):
        return {"statusCode": 401, "body": ""}
    token = authorization.removeprefix("Bearer ")
    key = signing_keys()[jwt.get_unverified_header(token)["kid"]]
    claims = jwt.decode(
        token,
        key.key,
        algorithms=["RS256"],
        audience=os.environ["AUTH_AUDIENCE"],
        issuer=os.environ["AUTH_ISSUER"],
    )
    row = dynamodb.get_item(
        TableName=os.environ["CUSTOMERS_TABLE"],
        Key={"app_user_id": {"S": claims["sub"]}},
        ConsistentRead=True,
    )
    customer = row["Item"]["stripe_customer_id"]["S"]
    options: Any = {"api_key": stripe_key()}
    params: Any = {"customer": customer, "return_url": os.environ["DEFAULT_RETURN_URL"]}
    if event["rawPath"] == "/portal/subscription_cancel":
        found = client.v1.subscriptions.list(params={"customer": customer, "limit": 100}, options=options)
        params["flow_data"] = {
            "type": "subscription_cancel",
            "subscription_cancel": {"subscription": found.data[0].id},
        }
    session = client.v1.billing_portal.sessions.create(params=params, options=options)
    return {"statusCode": 303, "headers": {"Location": session.url}, "body": ""}


def stripe_key() -> str:
    if "stripe_key" not in cache:
        cache["stripe_key"] = secrets.get_secret_value(SecretId=os.environ["STRIPE_SECRET_ARN"])[
            "SecretString"
        ]
    return str(cache["stripe_key"])


def signing_keys() -> dict[str, jwt.PyJWK]:
    if "keys" not in cache:
        discovery = fetch(f"{os.environ['AUTH_ISSUER']}/.well-known/openid-configuration")
        cache["keys"] = {key["kid"]: jwt.PyJWK.from_dict(key) for key in fetch(discovery["jwks_uri"])["keys"]}
    keys: dict[str, jwt.PyJWK] = cache["keys"]
    return keys


def fetch(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=3) as response:  # noqa: S310 - the issuer's https URL
        return json.loads(response.read())
