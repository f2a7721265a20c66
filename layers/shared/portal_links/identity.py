"""Turning a token into an app user, or refusing.

Tokens are JWTs from the configured issuer (Cognito by default, any OIDC issuer by setting issuer and
audience), verified with PyJWT against the issuer's JWKS. The key set is cached for the container's life
and refetched on an unknown `kid` at most once a minute, so a flood of forged `kid`s cannot hammer the
issuer.
"""

from __future__ import annotations

import json
import re
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from typing import Any, NamedTuple, TypeGuard

import jwt

from portal_links.errors import IdentityProviderUnavailable, Unauthenticated
from portal_links.settings import AuthSettings, TokenUse

ALGORITHMS = ("RS256", "ES256")
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
            discovery = self._fetch(f"{self._auth.issuer}/.well-known/openid-configuration")
            if str(discovery.get("issuer", "")).rstrip("/") != self._auth.issuer:
                raise IdentityProviderUnavailable("the discovery document names a different issuer")
            jwks_uri = discovery.get("jwks_uri")
            if not isinstance(jwks_uri, str) or not jwks_uri.startswith(("https://", "http://")):
                raise IdentityProviderUnavailable("the discovery document has no usable jwks_uri")
            self._jwks_url = jwks_uri
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
            except (jwt.PyJWTError, ValueError, TypeError, KeyError, AttributeError):
                continue  # a malformed entry is skipped; tokens naming it are refused as unknown
        self._keys = keys
        self._fetched_at = now


class Authenticator:
    def __init__(self, auth: AuthSettings, keys: SigningKeys) -> None:
        self._auth = auth
        self._keys = keys

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
        algorithm, kid = header.get("alg"), header.get("kid")
        if algorithm not in ALGORITHMS:
            raise Unauthenticated("the token's algorithm is not accepted")
        if not isinstance(kid, str) or not kid:
            raise Unauthenticated("the token names no signing key")
        key = self._keys.key_for(kid)
        if key.algorithm_name != algorithm:
            raise Unauthenticated("the token's algorithm does not match its key")
        claims = self._verified_claims(token, key, algorithm)
        return _user_from(claims)

    def _verified_claims(self, token: str, key: jwt.PyJWK, algorithm: str) -> dict[str, Any]:
        cognito_access = self._auth.token_use is TokenUse.ACCESS
        try:
            claims: dict[str, Any] = jwt.decode(
                token,
                key=key.key,
                algorithms=[algorithm],
                issuer=self._auth.issuer,
                audience=None if cognito_access else self._auth.audience,
                leeway=self._auth.leeway_seconds,
                options={"require": ["exp", "iss", "sub"], "verify_aud": not cognito_access},
            )
        except jwt.PyJWTError as exc:
            raise Unauthenticated(_reason(exc)) from None
        if self._auth.token_use is not TokenUse.ANY_OIDC:
            if claims.get("token_use") != self._auth.token_use.value:
                raise Unauthenticated(f"expected a Cognito {self._auth.token_use.value} token")
            if cognito_access and claims.get("client_id") != self._auth.audience:
                raise Unauthenticated("the token was issued to another client")
        return claims


def _user_from(claims: dict[str, Any]) -> AppUser:
    subject = claims.get("sub")
    if not _printable(subject) or len(subject) > 255:
        raise Unauthenticated("the token has no usable subject")
    email = claims.get("email")
    usable_email = _printable(email) and "@" in email and len(email) <= 512
    name = claims.get("name")
    return AppUser(
        user_id=subject,
        email=email if usable_email and claims.get("email_verified") is not False else None,
        name=name[:256] if _printable(name) else None,
    )


def _printable(value: Any) -> TypeGuard[str]:
    """A claim we may store and send to Stripe: text without control characters or lone surrogates."""
    return isinstance(value, str) and bool(value.strip()) and value.isprintable()


def _reason(exc: jwt.PyJWTError) -> str:
    reasons: dict[type[jwt.PyJWTError], str] = {
        jwt.ExpiredSignatureError: "the token has expired",
        jwt.ImmatureSignatureError: "the token is not valid yet",
        jwt.InvalidIssuerError: "the token is from another issuer",
        jwt.InvalidAudienceError: "the token is for another audience",
        jwt.InvalidSignatureError: "the token's signature is invalid",
        jwt.MissingRequiredClaimError: "the token lacks a required claim",
    }
    for kind, reason in reasons.items():
        if isinstance(exc, kind):
            return reason
    return "the token is invalid"
