"""Configuration, read once at cold start into one typed, validated object.

This is the only module that reads the environment. A bad value fails the cold start with a
`ConfigurationError` that names the setting, so a misconfigured deployment never serves a request.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from enum import Enum, StrEnum
from typing import NamedTuple, TypeVar
from urllib.parse import urlsplit

from portal_links.errors import ConfigurationError
from portal_links.flows import FLOWS
from portal_links.policy import PortalPolicy, load_policy
from portal_links.redirects import LOCAL_HOSTS, ReturnUrls, origin_of

DEFAULT_STRIPE_API_VERSION = "2026-10-28.endive"
# Where the function may call over plain http with ALLOW_INSECURE_LOCALHOST: this machine, or the host of
# a `sam local` container, whose own 127.0.0.1 is the container.
LOCAL_SERVICE_HOSTS = LOCAL_HOSTS | {"host.docker.internal"}
_SECRET_ARN = re.compile(r"arn:aws[a-z-]*:secretsmanager:[a-z0-9-]+:\d{12}:secret:\S+")
_E = TypeVar("_E", bound=Enum)


class MissingCustomerPolicy(StrEnum):
    CREATE = "create"
    REFUSE = "refuse"


class StripeMode(StrEnum):
    TEST = "test"
    LIVE = "live"


class TokenUse(StrEnum):
    """Cognito puts `token_use` in its tokens; any other OIDC issuer leaves this unset."""

    ANY_OIDC = "oidc"
    ACCESS = "access"
    ID = "id"


@dataclass(frozen=True)
class OrganizationSettings:
    """Organization mode: the organization pays, and only members with a billing role may open its portal.

    Each claim is a top-level claim named exactly so (Auth0's `https://…/roles`, Cognito's
    `cognito:groups`) or, when there is none, a path into nested objects (Clerk's `o.id`, Keycloak's
    `realm_access.roles`).
    """

    org_claim: str
    role_claim: str
    billing_roles: frozenset[str]


@dataclass(frozen=True)
class AuthSettings:
    """Whose tokens are accepted: one issuer, compared exactly, and who they must be for.

    `audience` is checked against `aud` (or Cognito's `client_id` for access tokens) and
    `authorized_parties` against `azp`; at least one of them is always set. The keys come from the
    issuer's JWKS (RS256/ES256) or, for Supabase's legacy projects only, from a shared HS256 secret.
    """

    issuer: str
    audience: str | None
    authorized_parties: frozenset[str]
    token_use: TokenUse
    jwks_url: str | None
    hs256_secret_arn: str | None
    cookie_name: str
    leeway_seconds: int
    organizations: OrganizationSettings | None = None  # None: each user pays for themselves


class StripeSettings(NamedTuple):
    api_key: str | None
    secret_arn: str | None
    api_base: str | None
    api_version: str
    timeout_seconds: float
    max_network_retries: int
    key_max_age_seconds: int


class WebhookSettings(NamedTuple):
    customers_table: str
    livemode: bool  # the mode of the deployment's Stripe key: events of the other mode are ignored
    signing_secret: str | None  # local use only
    signing_secret_arn: str | None
    secret_max_age_seconds: int


class Settings(NamedTuple):
    customers_table: str
    auth: AuthSettings
    stripe: StripeSettings
    allowed_origins: frozenset[str]
    allow_insecure_localhost: bool
    default_return_url: str
    sign_in_url: str
    missing_customer: MissingCustomerPolicy
    policy: PortalPolicy
    request_deadline_seconds: float

    def return_urls(self) -> ReturnUrls:
        return ReturnUrls(self.allowed_origins, self.allow_insecure_localhost, self.default_return_url)


def load_settings(environ: Mapping[str, str] | None = None) -> Settings:
    env = _Env(os.environ if environ is None else environ)
    allow_insecure_localhost = env.boolean("ALLOW_INSECURE_LOCALHOST", default=False)
    allowed_origins = frozenset(
        _origin("ALLOWED_ORIGINS", item.strip(), allow_insecure_localhost)
        for item in env.required("ALLOWED_ORIGINS").split(",")
        if item.strip()
    )
    if not allowed_origins:
        raise ConfigurationError("ALLOWED_ORIGINS", "list at least one origin, e.g. https://app.example.com")
    default_return_url = env.required("DEFAULT_RETURN_URL")
    if origin_of(default_return_url) not in allowed_origins:
        raise ConfigurationError("DEFAULT_RETURN_URL", "its origin must be one of ALLOWED_ORIGINS")
    sign_in_url = env.required("SIGN_IN_URL")
    _absolute_url("SIGN_IN_URL", sign_in_url, allow_insecure_localhost)

    url_allowed = ReturnUrls(allowed_origins, allow_insecure_localhost, default_return_url).is_allowed
    stripe = _stripe_settings(env, allow_insecure_localhost)
    policy_file, policy_document = env.optional("PORTAL_POLICY_FILE"), env.optional("PORTAL_POLICY")
    if policy_file and policy_document:
        raise ConfigurationError(
            "PORTAL_POLICY", "set PORTAL_POLICY_FILE or PORTAL_POLICY (the document, local use), not both"
        )
    policy = load_policy(policy_file, url_allowed, FLOWS.values(), stripe.api_version, inline=policy_document)
    return Settings(
        customers_table=env.required("CUSTOMERS_TABLE"),
        auth=_auth_settings(env, allow_insecure_localhost),
        stripe=stripe,
        allowed_origins=allowed_origins,
        allow_insecure_localhost=allow_insecure_localhost,
        default_return_url=default_return_url,
        sign_in_url=sign_in_url,
        missing_customer=env.choice("MISSING_CUSTOMER", MissingCustomerPolicy, MissingCustomerPolicy.CREATE),
        policy=policy,
        # API Gateway answers 504 at 30 s; leave room for the one DynamoDB write a deadline must not cut.
        request_deadline_seconds=env.number("REQUEST_DEADLINE_SECONDS", default=20.0, low=5.0, high=20.0),
    )


def load_webhook_settings(environ: Mapping[str, str] | None = None) -> WebhookSettings:
    """The webhook function's settings: the table, the mode, and where the signing secrets are."""
    env = _Env(os.environ if environ is None else environ)
    secret = env.optional("STRIPE_WEBHOOK_SECRET")
    secret_arn = env.optional("STRIPE_WEBHOOK_SECRET_ARN")
    if bool(secret) == bool(secret_arn):
        raise ConfigurationError(
            "STRIPE_WEBHOOK_SECRET_ARN",
            "set exactly one of STRIPE_WEBHOOK_SECRET_ARN (deployed) "
            "or STRIPE_WEBHOOK_SECRET (local use only)",
        )
    if secret and not all(part.startswith("whsec_") for part in secret.replace(",", " ").split()):
        raise ConfigurationError("STRIPE_WEBHOOK_SECRET", "expected one or two signing secrets (whsec_…)")
    return WebhookSettings(
        customers_table=env.required("CUSTOMERS_TABLE"),
        livemode=env.choice("STRIPE_MODE", StripeMode, StripeMode.TEST) is StripeMode.LIVE,
        signing_secret=secret,
        signing_secret_arn=secret_arn,
        secret_max_age_seconds=env.integer("STRIPE_KEY_MAX_AGE_SECONDS", default=300, low=0, high=3600),
    )


def _auth_settings(env: _Env, allow_insecure_localhost: bool) -> AuthSettings:
    # Kept exactly as given: tokens are compared with it character for character (Auth0's ends in "/").
    issuer = env.required("AUTH_ISSUER")
    _absolute_url("AUTH_ISSUER", issuer, allow_insecure_localhost)
    if issuer.rstrip("/").endswith("/.well-known/openid-configuration"):
        fix = issuer.rstrip("/").removesuffix("/.well-known/openid-configuration")
        raise ConfigurationError("AUTH_ISSUER", f"give the issuer, not its discovery document: {fix!r}")
    token_use = env.choice("AUTH_TOKEN_USE", TokenUse, TokenUse.ANY_OIDC)
    audience = env.optional("AUTH_AUDIENCE")
    parties = frozenset(
        party.strip() for party in (env.optional("AUTH_AUTHORIZED_PARTIES") or "").split(",") if party.strip()
    )
    if token_use is TokenUse.ACCESS and audience is None:
        raise ConfigurationError(
            "AUTH_AUDIENCE", "Cognito access tokens are checked by client_id: set it to the app client id"
        )
    if token_use is TokenUse.ACCESS and parties:
        raise ConfigurationError(
            "AUTH_AUTHORIZED_PARTIES",
            "Cognito access tokens have no azp (client_id is checked); leave it empty",
        )
    if audience is None and not parties:
        raise ConfigurationError(
            "AUTH_AUDIENCE",
            "set AUTH_AUDIENCE (the aud your tokens carry) or AUTH_AUTHORIZED_PARTIES (the azp values "
            "they may carry, e.g. Clerk's app origins), or both; with neither, tokens the issuer made "
            "for any other app would be accepted",
        )
    jwks_url = env.optional("AUTH_JWKS_URL")
    if jwks_url:
        _absolute_url("AUTH_JWKS_URL", jwks_url, allow_insecure_localhost, LOCAL_SERVICE_HOSTS)
    hs256_secret_arn = env.optional("AUTH_HS256_SECRET_ARN")
    if hs256_secret_arn and jwks_url:
        raise ConfigurationError(
            "AUTH_HS256_SECRET_ARN",
            "an issuer's tokens are verified with its JWKS or with a shared HS256 secret, never both: "
            "leave AUTH_JWKS_URL empty to use the secret, or this empty to use the JWKS",
        )
    if hs256_secret_arn and not _SECRET_ARN.fullmatch(hs256_secret_arn):
        raise ConfigurationError("AUTH_HS256_SECRET_ARN", "expected a Secrets Manager secret ARN")
    cookie_name = env.optional("AUTH_COOKIE_NAME") or "session"
    if not cookie_name.replace("-", "").replace("_", "").replace(".", "").isalnum():
        raise ConfigurationError("AUTH_COOKIE_NAME", "use letters, digits, '-', '_' or '.'")
    return AuthSettings(
        issuer=issuer,
        audience=audience,
        authorized_parties=parties,
        token_use=token_use,
        jwks_url=jwks_url,
        hs256_secret_arn=hs256_secret_arn,
        cookie_name=cookie_name,
        leeway_seconds=env.integer("AUTH_LEEWAY_SECONDS", default=30, low=0, high=300),
        organizations=_organization_settings(env),
    )


def _organization_settings(env: _Env) -> OrganizationSettings | None:
    org_claim, role_claim = env.optional("AUTH_ORG_CLAIM"), env.optional("AUTH_ROLE_CLAIM")
    roles = frozenset(
        role.strip() for role in (env.optional("AUTH_BILLING_ROLES") or "").split(",") if role.strip()
    )
    if org_claim is None:
        for name, value in (("AUTH_ROLE_CLAIM", role_claim), ("AUTH_BILLING_ROLES", roles)):
            if value:
                raise ConfigurationError(name, "applies to organization mode only: set AUTH_ORG_CLAIM too")
        return None
    if role_claim is None:
        raise ConfigurationError(
            "AUTH_ROLE_CLAIM", "organization mode needs the claim that carries the member's role(s)"
        )
    if not roles:
        raise ConfigurationError(
            "AUTH_BILLING_ROLES",
            "organization mode needs the roles that may open the billing portal, e.g. admin",
        )
    for name, claim in (("AUTH_ORG_CLAIM", org_claim), ("AUTH_ROLE_CLAIM", role_claim)):
        if any(not part for part in claim.split(".")) or not claim.isprintable():
            raise ConfigurationError(name, f"{claim!r} is not a claim name or a dotted path (e.g. o.id)")
    return OrganizationSettings(org_claim=org_claim, role_claim=role_claim, billing_roles=roles)


def _stripe_settings(env: _Env, allow_insecure_localhost: bool) -> StripeSettings:
    api_key = env.optional("STRIPE_API_KEY")
    secret_arn = env.optional("STRIPE_SECRET_ARN")
    if bool(api_key) == bool(secret_arn):
        raise ConfigurationError(
            "STRIPE_SECRET_ARN",
            "set exactly one of STRIPE_SECRET_ARN (deployed) or STRIPE_API_KEY (local use only)",
        )
    if api_key and not api_key.startswith(("sk_", "rk_")):
        raise ConfigurationError("STRIPE_API_KEY", "expected a secret (sk_…) or restricted (rk_…) key")
    api_base = env.optional("STRIPE_API_BASE")
    if api_base:
        # Always allowed over http on a local host: a Stripe stand-in, never the real API.
        _absolute_url("STRIPE_API_BASE", api_base, True, LOCAL_SERVICE_HOSTS)
    timeout = env.number("STRIPE_TIMEOUT_SECONDS", default=3.0, low=1.0, high=8.0)
    retries = env.integer("STRIPE_MAX_NETWORK_RETRIES", default=2, low=2, high=5)
    return StripeSettings(
        api_key=api_key,
        secret_arn=secret_arn,
        api_base=api_base.rstrip("/") if api_base else None,
        api_version=env.optional("STRIPE_API_VERSION") or DEFAULT_STRIPE_API_VERSION,
        timeout_seconds=timeout,
        max_network_retries=retries,
        key_max_age_seconds=env.integer("STRIPE_KEY_MAX_AGE_SECONDS", default=300, low=0, high=3600),
    )


def _origin(setting: str, value: str, allow_insecure_localhost: bool) -> str:
    origin = origin_of(value)
    if origin is None or value.rstrip("/") != origin:
        raise ConfigurationError(setting, f"{value!r} is not an origin (scheme://host[:port], no path)")
    _absolute_url(setting, value, allow_insecure_localhost)
    return origin


def _absolute_url(
    setting: str, value: str, allow_insecure_localhost: bool, local_hosts: frozenset[str] = LOCAL_HOSTS
) -> None:
    parts = urlsplit(value)
    if parts.scheme == "https" and parts.hostname:
        return
    if parts.scheme == "http" and allow_insecure_localhost and parts.hostname in local_hosts:
        return
    raise ConfigurationError(
        setting,
        f"{value!r} must be an https URL (http://localhost only with ALLOW_INSECURE_LOCALHOST=true)",
    )


class _Env:
    def __init__(self, values: Mapping[str, str]) -> None:
        self._values = values

    def optional(self, name: str) -> str | None:
        value = self._values.get(name, "").strip()
        return value or None

    def required(self, name: str) -> str:
        value = self.optional(name)
        if value is None:
            raise ConfigurationError(name, "is required")
        return value

    def boolean(self, name: str, default: bool) -> bool:
        value = (self.optional(name) or str(default)).lower()
        if value not in ("true", "false"):
            raise ConfigurationError(name, "must be true or false")
        return value == "true"

    def integer(self, name: str, default: int, low: int, high: int) -> int:
        value = self.number(name, default, low, high)
        if not value.is_integer():
            raise ConfigurationError(name, f"must be a whole number between {low} and {high}")
        return int(value)

    def number(self, name: str, default: float, low: float, high: float) -> float:
        raw = self.optional(name)
        if raw is None:
            return float(default)
        try:
            value = float(raw)
        except ValueError:
            raise ConfigurationError(name, f"must be a number between {low} and {high}") from None
        if not low <= value <= high:
            raise ConfigurationError(name, f"must be between {low} and {high}")
        return value

    def choice(self, name: str, kind: type[_E], default: _E) -> _E:
        raw = self.optional(name)
        if raw is None:
            return default
        try:
            return kind(raw)
        except ValueError:
            allowed = ", ".join(str(member.value) for member in kind if member.value)
            raise ConfigurationError(name, f"must be one of: {allowed}") from None
