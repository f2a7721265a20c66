"""Turning a token into an app user, or refusing.

Tokens are JWTs from the one configured issuer, its `iss` compared exactly as configured (Auth0's ends
in "/"), and meant for this app: `aud` holds the configured audience, `azp` is one of the authorized
parties, or both (Cognito access tokens: `client_id`). Signatures are checked with PyJWT against the
issuer's JWKS (RS256/ES256), cached for the container's life and refetched on an unknown `kid` at most
once a minute, so a flood of forged `kid`s cannot hammer the issuer; or, only when configured, against
a shared HS256 secret from Secrets Manager (Supabase's legacy projects). One issuer never has both, so
a token cannot pick its kind of key (an RSA public key used as an HMAC secret stays refused).
"""

from __future__ import annotations

import json
import re
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from typing import Any, NamedTuple, Protocol, TypeGuard

import jwt
from aws_lambda_powertools import Logger

from portal_links.customers import BillingSubject, usable_subject_id
from portal_links.errors import (
    BillingRoleRequired,
    IdentityProviderUnavailable,
    OrganizationRequired,
    Unauthenticated,
)
from portal_links.settings import AuthSettings, OrganizationSettings, TokenUse

logger = Logger(child=True)
ALGORITHMS = ("RS256", "ES256")
SHARED_SECRET_ALGORITHMS = ("HS256",)
# RFC 7518 3.2: an HS256 key at least as long as the hash (Supabase asks for 32 characters or more too).
MIN_SHARED_SECRET_BYTES = 32
SHARED_SECRET_MAX_AGE_SECONDS = 300
DISCOVERY_PATH = "/.well-known/openid-configuration"
REFETCH_INTERVAL_SECONDS = 60.0
KEYS_MAX_AGE_SECONDS = 24 * 3600.0
FETCH_TIMEOUT_SECONDS = 3.0
MAX_TOKEN_LENGTH = 8192
# A signed JWT in compact serialization: three base64url parts.
COMPACT_JWS = re.compile(r"[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+")

JsonFetcher = Callable[[str], dict[str, Any]]


class AppUser(NamedTuple):
    user_id: str
    email: str | None = None
    name: str | None = None
    organization: str | None = None  # organization mode: the one organization the token names
    roles: frozenset[str] = frozenset()  # organization mode: the member's roles in it


class VerificationKeys(Protocol):
    """Where a token's verification key comes from, and the algorithms that source may accept."""

    @property
    def algorithms(self) -> tuple[str, ...]: ...

    def verification_key(self, algorithm: str, kid: object) -> Any: ...

    def forget(self) -> None: ...  # the next token reads the keys again (SnapStart restores)


def fetch_json(url: str) -> dict[str, Any]:
    request = urllib.request.Request(url, headers={"Accept": "application/json"})  # noqa: S310 - https, validated
    try:
        with urllib.request.urlopen(request, timeout=FETCH_TIMEOUT_SECONDS) as response:  # noqa: S310
            document = json.loads(response.read(1_000_000))
    except (urllib.error.URLError, TimeoutError, ValueError, OSError) as exc:
        raise IdentityProviderUnavailable(f"could not fetch {url}: {type(exc).__name__}") from exc
    if not isinstance(document, dict):
        raise IdentityProviderUnavailable(f"{url} did not return a JSON object")
    return document


class SigningKeys:
    """The issuer's JWKS, cached per container; thread-safe so one refetch serves concurrent callers."""

    algorithms = ALGORITHMS

    def __init__(
        self,
        auth: AuthSettings,
        fetch: JsonFetcher = fetch_json,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._auth = auth
        self._fetch = fetch
        self._clock = clock
        self._lock = threading.Lock()
        self._keys: dict[str, jwt.PyJWK] = {}
        self._fetched_at: float | None = None
        self._jwks_url = auth.jwks_url

    def verification_key(self, algorithm: str, kid: object) -> Any:
        if not isinstance(kid, str) or not kid:
            raise Unauthenticated("the token names no signing key")
        key = self.key_for(kid)
        if key.algorithm_name != algorithm:
            raise Unauthenticated("the token's algorithm does not match its key")
        return key.key

    def key_for(self, kid: str) -> jwt.PyJWK:
        with self._lock:
            now = self._clock()
            stale = self._fetched_at is None or now - self._fetched_at > KEYS_MAX_AGE_SECONDS
            may_refetch = self._fetched_at is None or now - self._fetched_at >= REFETCH_INTERVAL_SECONDS
            if stale or (kid not in self._keys and may_refetch):
                self._refresh(now)
            key = self._keys.get(kid)
        if key is None:
            raise Unauthenticated("the token was signed with an unknown key")
        return key

    def forget(self) -> None:
        """Fetch the keys again on next use: a restored snapshot's clock does not tell how old they are."""
        with self._lock:
            self._keys, self._fetched_at = {}, None

    def _refresh(self, now: float) -> None:
        if self._jwks_url is None:
            self._jwks_url = self._discovered_jwks_url()
        document = self._fetch(self._jwks_url)
        keys: dict[str, jwt.PyJWK] = {}
        entries = document.get("keys")
        for entry in entries if isinstance(entries, list) else []:
            if not isinstance(entry, dict) or not isinstance(entry.get("kid"), str):
                continue
            if entry.get("use", "sig") != "sig":
                continue
            try:
                keys[entry["kid"]] = jwt.PyJWK.from_dict(entry)
            # PyJWK raises many kinds for bad entries (alg "none": NotImplementedError); each is skipped,
            # and tokens naming it are refused as signed with an unknown key.
            except Exception:  # noqa: S112
                continue
        if not keys:
            logger.error(
                "the JWKS has no usable signing keys; every token is refused until it has",
                extra={"jwks_url": self._jwks_url, "expected": '{"keys": [{"kid": …, "kty": …}]}'},
            )
        self._keys = keys
        self._fetched_at = now

    def _discovered_jwks_url(self) -> str:
        issuer = self._auth.issuer
        # The discovery document sits under the issuer, whether or not the issuer ends in "/".
        discovery_url = issuer.rstrip("/") + DISCOVERY_PATH
        discovery = self._fetch(discovery_url)
        named = discovery.get("issuer")
        if not isinstance(named, str):
            raise IdentityProviderUnavailable("the discovery document names no issuer")
        if named != issuer:
            logger.error(
                "AUTH_ISSUER differs from the issuer its discovery document names, which its tokens carry",
                extra={"configured": issuer, "fix": f"set AUTH_ISSUER to exactly {named!r}"},
            )
            raise IdentityProviderUnavailable("the issuer's discovery document names another issuer")
        jwks_uri = discovery.get("jwks_uri")
        # The keys come at least as safely as the document naming them: over https unless the issuer is
        # itself plain http (a local one, which settings allow only with ALLOW_INSECURE_LOCALHOST).
        schemes = ("https://", "http://") if issuer.startswith("http://") else ("https://",)
        if not isinstance(jwks_uri, str) or not jwks_uri.startswith(schemes):
            logger.error(
                "the issuer's discovery document names no https jwks_uri",
                extra={"jwks_uri": repr(jwks_uri), "discovery": discovery_url},
            )
            raise IdentityProviderUnavailable("the discovery document has no usable jwks_uri")
        return jwks_uri


class SharedSecret:
    """A shared HS256 secret (Supabase's legacy JWT secret) from Secrets Manager, cached a few minutes."""

    algorithms = SHARED_SECRET_ALGORITHMS
    unavailable = "the identity provider is unavailable; try again shortly"

    def __init__(self, secret_arn: str) -> None:
        from aws_lambda_powertools.utilities.parameters import SecretsProvider
        from botocore.config import Config

        self._secret_arn = secret_arn
        config = Config(connect_timeout=2, read_timeout=3, retries={"mode": "standard", "max_attempts": 2})
        self._provider = SecretsProvider(boto_config=config)

    def forget(self) -> None:
        self._provider.clear_cache()  # type: ignore[no-untyped-call]

    def verification_key(self, algorithm: str, kid: object) -> Any:
        from aws_lambda_powertools.utilities.parameters.exceptions import GetParameterError

        try:
            value = self._provider.get(self._secret_arn, max_age=SHARED_SECRET_MAX_AGE_SECONDS)
        except GetParameterError as exc:
            logger.error(
                "AUTH_HS256_SECRET_ARN could not be read from Secrets Manager", extra={"reason": str(exc)}
            )
            raise IdentityProviderUnavailable(self.unavailable) from None
        secret = str(value).strip().encode()
        if len(secret) < MIN_SHARED_SECRET_BYTES:
            logger.error(
                "AUTH_HS256_SECRET_ARN: the secret is shorter than 32 bytes; store the JWT secret exactly as "
                "the identity provider shows it"
            )
            raise IdentityProviderUnavailable(self.unavailable)
        return secret


class Authenticator:
    def __init__(self, auth: AuthSettings, keys: VerificationKeys) -> None:
        self._auth = auth
        self._keys = keys

    def forget_keys(self) -> None:
        self._keys.forget()

    @classmethod
    def from_settings(cls, auth: AuthSettings) -> Authenticator:
        keys = SharedSecret(auth.hs256_secret_arn) if auth.hs256_secret_arn else SigningKeys(auth)
        return cls(auth, keys)

    def authenticate(self, token: str | None) -> AppUser:
        if not token:
            raise Unauthenticated("sign in to continue")
        if len(token) > MAX_TOKEN_LENGTH:
            raise Unauthenticated("the token is too long")
        if not COMPACT_JWS.fullmatch(token):
            raise Unauthenticated("the token is malformed")
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError:
            raise Unauthenticated("the token is malformed") from None
        algorithm = header.get("alg")
        if not isinstance(algorithm, str) or algorithm not in self._keys.algorithms:
            raise Unauthenticated("the token's algorithm is not accepted")
        key = self._keys.verification_key(algorithm, header.get("kid"))
        claims = self._verified_claims(token, key, algorithm)
        return _user_from(claims, self._auth.organizations)

    def billing_subject(self, user: AppUser) -> BillingSubject:
        """Who pays for this user's clicks: the user, or in organization mode the organization their token
        names, if their role there may open its billing portal."""
        organizations = self._auth.organizations
        if organizations is None:
            return BillingSubject.user(user.user_id)
        if user.organization is None:
            raise OrganizationRequired("choose an organization first: this token names none")
        if not user.roles & organizations.billing_roles:
            raise BillingRoleRequired("only an organization's billing admins may open its billing portal")
        return BillingSubject.organization(user.organization)

    def _verified_claims(self, token: str, key: Any, algorithm: str) -> dict[str, Any]:
        auth = self._auth
        cognito_access = auth.token_use is TokenUse.ACCESS
        check_audience = auth.audience is not None and not cognito_access
        try:
            claims: dict[str, Any] = jwt.decode(
                token,
                key=key,
                algorithms=[algorithm],
                issuer=auth.issuer,
                audience=auth.audience,  # read only where verify_aud says so
                leeway=auth.leeway_seconds,
                # A key below RFC 7518's minimum (RSA < 2048 bits, an HMAC secret < 32 bytes) is refused.
                options={
                    "require": ["exp", "iss", "sub"],
                    "verify_aud": check_audience,
                    "enforce_minimum_key_length": True,
                },
            )
        except jwt.InvalidIssuerError:
            self._log_issuer_hint(token)
            raise Unauthenticated("the token is from another issuer") from None
        except jwt.PyJWTError as exc:
            raise Unauthenticated(_reason(exc)) from None
        if auth.authorized_parties:
            party = claims.get("azp")
            if not isinstance(party, str) or party not in auth.authorized_parties:
                raise Unauthenticated("the token was issued to another party")
        if auth.token_use is not TokenUse.ANY_OIDC:
            if claims.get("token_use") != auth.token_use.value:
                raise Unauthenticated(f"expected a Cognito {auth.token_use.value} token")
            if cognito_access and claims.get("client_id") != auth.audience:
                raise Unauthenticated("the token was issued to another client")
        return claims

    def _log_issuer_hint(self, token: str) -> None:
        """A correctly signed token whose `iss` differs from AUTH_ISSUER only by its last "/": say so."""
        try:
            issued_by = jwt.decode(token, options={"verify_signature": False}).get("iss")
        except jwt.PyJWTError:
            return
        configured = self._auth.issuer
        if isinstance(issued_by, str) and issued_by.rstrip("/") == configured.rstrip("/"):
            logger.error(
                "AUTH_ISSUER differs from the tokens' iss by a trailing slash; issuers are compared exactly",
                extra={"configured": configured, "fix": f"set AUTH_ISSUER to exactly {issued_by!r}"},
            )


def _user_from(claims: dict[str, Any], organizations: OrganizationSettings | None) -> AppUser:
    subject = claims.get("sub")
    # Reserved prefixes are the mapping table's own keys ("#…") and Checkout's organization references.
    if not usable_subject_id(subject):
        raise Unauthenticated("the token has no usable subject")
    email = claims.get("email")
    usable_email = _printable(email) and "@" in email and len(email) <= 512
    name = claims.get("name")
    organization, roles = None, frozenset[str]()
    if organizations is not None:
        organization = _one_organization(_claim(claims, organizations.org_claim))
        roles = _roles(_claim(claims, organizations.role_claim))
    return AppUser(
        user_id=subject,
        email=email if usable_email and claims.get("email_verified") is not False else None,
        name=name[:256] if _printable(name) else None,
        organization=organization,
        roles=roles,
    )


def _claim(claims: dict[str, Any], name: str) -> Any:
    """The claim named exactly `name` (Auth0's "https://example.com/roles"), else the dotted path (o.id)."""
    if name in claims:
        return claims[name]
    value: Any = claims
    for part in name.split("."):
        value = value.get(part) if isinstance(value, dict) else None
    return value


def _one_organization(value: Any) -> str | None:
    # A list (Keycloak's `organization`) names one organization only when it holds exactly one.
    if isinstance(value, list) and len(value) == 1:
        value = value[0]
    return value if usable_subject_id(value) else None


def _roles(value: Any) -> frozenset[str]:
    # One role (Clerk's o.rol, org_role) or a list of them (Cognito groups, Keycloak and Auth0 roles).
    values = value if isinstance(value, list) else [value]
    return frozenset(role for role in values if _printable(role))


def _printable(value: Any) -> TypeGuard[str]:
    """A claim we may store and send to Stripe: text without control characters or lone surrogates."""
    return isinstance(value, str) and bool(value.strip()) and value.isprintable()


def _reason(exc: jwt.PyJWTError) -> str:
    """Why a token was refused, in words for the log (another issuer is told apart before this)."""
    reasons: dict[type[jwt.PyJWTError], str] = {
        jwt.ExpiredSignatureError: "the token has expired",
        jwt.ImmatureSignatureError: "the token is not valid yet",
        jwt.InvalidAudienceError: "the token is for another audience",
        jwt.InvalidSignatureError: "the token's signature is invalid",
        jwt.MissingRequiredClaimError: "the token lacks a required claim",
    }
    for kind, reason in reasons.items():
        if isinstance(exc, kind):
            return reason
    return "the token is invalid"
