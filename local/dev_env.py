"""The function's environment for local runs (`make dev`, `make invoke`, the events test): one place."""

from __future__ import annotations

from local.demo import demo_policy_file
from local.identity_provider import DEV_AUDIENCE

DEV_TABLE = "portal-links-customers-dev"
DEV_STRIPE_KEY = "sk_test_portal_links_dev"


def dev_environment(
    origin: str, *, stripe_api_base: str | None, stripe_api_key: str | None, jwks_url: str | None
) -> dict[str, str]:
    """Settings as template.yaml would set them, pointed at the local stand-ins on `origin`."""
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
        "PORTAL_POLICY_FILE": str(demo_policy_file(origin)),
        "POWERTOOLS_SERVICE_NAME": "portal-links",
        "POWERTOOLS_METRICS_NAMESPACE": "PortalLinksDev",
        "POWERTOOLS_METRICS_DISABLED": "true",
        "POWERTOOLS_LOG_LEVEL": "WARNING",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_ACCESS_KEY_ID": "local",
        "AWS_SECRET_ACCESS_KEY": "local",
    }
    if jwks_url:
        env["AUTH_JWKS_URL"] = jwks_url  # else discovered from the issuer, as in production
    if stripe_api_base:
        env["STRIPE_API_BASE"] = stripe_api_base
    return env
