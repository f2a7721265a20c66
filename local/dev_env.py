"""The function's environment for local runs (`make dev`, `make invoke`, the events test): one place.

Also the same environment as `sam local invoke|start-api --env-vars` takes it, for a function in a container
that calls `make dev`'s stand-ins on this machine.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

from local.demo import ORGANIZATION_SETTINGS, demo_policy
from local.identity_provider import DEV_AUDIENCE
from local.template import function_variables
from portal_links.redirects import LOCAL_HOSTS

DEV_TABLE = "portal-links-customers-dev"
DEV_STRIPE_KEY = "sk_test_portal_links_dev"
# The webhook endpoint's signing secret in `make dev` (the emulator signs with it); development only.
DEV_WEBHOOK_SECRET = "whsec_portal_links_dev"  # noqa: S105 - a published development value
SAM_FUNCTION = "PortalFunction"
SAM_FUNCTIONS = (SAM_FUNCTION, "WebhookFunction")
# How a Docker container names the machine it runs on (built into Docker Desktop; see the README for Linux).
CONTAINER_HOST = "host.docker.internal"
# What the function calls; the URLs a browser follows (issuer, origins, return pages) stay as they are.
CALLED_URLS = ("AUTH_JWKS_URL", "STRIPE_API_BASE", "AWS_ENDPOINT_URL_DYNAMODB")


def dev_environment(
    origin: str,
    *,
    stripe_api_base: str | None,
    stripe_api_key: str | None,
    jwks_url: str | None,
    organizations: bool = False,
) -> dict[str, str]:
    """Settings as template.yaml would set them, pointed at the local stand-ins on `origin`; with
    `organizations`, in organization mode."""
    env = {
        "CUSTOMERS_TABLE": DEV_TABLE,
        "AUTH_ISSUER": origin,
        "AUTH_AUDIENCE": DEV_AUDIENCE,
        "AUTH_TOKEN_USE": "oidc",
        "AUTH_COOKIE_NAME": "session",
        "ALLOWED_ORIGINS": origin,
        "ALLOW_INSECURE_LOCALHOST": "true",
        "DEFAULT_RETURN_URL": f"{origin}/app",
        "SIGN_IN_URL": f"{origin}/dev/sign-in",
        "STRIPE_API_KEY": stripe_api_key or DEV_STRIPE_KEY,
        "STRIPE_MODE": "test",
        "STRIPE_WEBHOOK_SECRET": DEV_WEBHOOK_SECRET,
        "PORTAL_POLICY": demo_policy(origin),
        "PORTAL_POLICY_FILE": "",  # the demo policy is the document above
        "POWERTOOLS_SERVICE_NAME": "portal-links",
        "POWERTOOLS_METRICS_NAMESPACE": "PortalLinksDev",
        "POWERTOOLS_METRICS_DISABLED": "true",
        "POWERTOOLS_LOG_LEVEL": "WARNING",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_ACCESS_KEY_ID": "local",
        "AWS_SECRET_ACCESS_KEY": "local",
    }
    if organizations:
        env.update(ORGANIZATION_SETTINGS)
    if jwks_url:
        env["AUTH_JWKS_URL"] = jwks_url  # else discovered from the issuer, as in production
    if stripe_api_base:
        env["STRIPE_API_BASE"] = stripe_api_base
    return env


def sam_local_environment(environment: Mapping[str, str]) -> dict[str, dict[str, str]]:
    """`environment` as `sam local --env-vars` takes it, for each function, its stand-ins named as a
    container sees them."""
    return {function: _function_environment(function, environment) for function in SAM_FUNCTIONS}


def _function_environment(function: str, environment: Mapping[str, str]) -> dict[str, str]:
    values = {}
    for name, declared in function_variables(function).items():
        if name in environment:
            values[name] = environment[name]
        elif not isinstance(declared, str):
            values[name] = ""  # a parameter or resource: `sam local` would put in its name or default
    if "AUTH_ISSUER" in values:
        # Not discovered through the issuer: its discovery document names this machine as 127.0.0.1.
        issuer_jwks = f"{environment['AUTH_ISSUER']}/.well-known/jwks.json"
        values["AUTH_JWKS_URL"] = values.get("AUTH_JWKS_URL") or issuer_jwks
    for name in CALLED_URLS:
        if name in values:
            values[name] = seen_from_a_container(values[name])
    if values.get("STRIPE_API_KEY") != DEV_STRIPE_KEY:
        values.pop("STRIPE_API_KEY", None)  # a real key stays off the disk: `sam local` takes the shell's
    return values


def seen_from_a_container(url: str) -> str:
    parts = urlsplit(url)
    if parts.hostname not in LOCAL_HOSTS:
        return url
    netloc = f"{CONTAINER_HOST}:{parts.port}" if parts.port else CONTAINER_HOST
    return urlunsplit(parts._replace(netloc=netloc))


def write_sam_env_file(path: Path, environment: Mapping[str, str]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(sam_local_environment(environment), indent=2) + "\n")
