"""A development OIDC issuer: its own signing keys, a discovery document and a JWKS, and token minting.

Tokens look like Cognito's or any OIDC issuer's (RS256 by default, ES256 on request, HS256 with a shared
secret); the service verifies them exactly as it verifies production tokens, through discovery and the
JWKS. For the provider tests it takes another provider's shape: the issuer's path (and the discovery
document's issuer string), where the JWKS lives and what its entries carry, the key ids, and tokens with
any header and claims (a value of None leaves that field out).
"""

from __future__ import annotations

import json
import secrets
import ssl
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, cast
from urllib.parse import urlsplit

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from jwt.algorithms import ECAlgorithm, RSAAlgorithm

from local.server import LocalServer, Reply, serve_in_background

DEV_AUDIENCE = "portal-links-dev"
# `make dev`'s issuer and the one the committed events/ tokens name.
DEV_ISSUER = "http://127.0.0.1:3000"
# A development-only key, committed on purpose so events/ tokens verify offline. Never trust it anywhere else.
DEV_SIGNING_KEY = Path(__file__).with_name("dev_signing_key.pem")


class IdentityProvider:
    def __init__(
        self,
        audience: str = DEV_AUDIENCE,
        *,
        issuer: str = "",
        fixed_key: bool = False,
        issuer_path: str = "",
        discovery_issuer: str | None = None,
        jwks_path: str = "/.well-known/jwks.json",
        rsa_kid: str | None = None,
        ec_kid: str = "dev-ec",
        jwk_fields: Mapping[str, Any] | None = None,
        extra_jwks: Sequence[dict[str, Any]] = (),
    ) -> None:
        self.audience = audience
        if fixed_key:
            loaded = serialization.load_pem_private_key(DEV_SIGNING_KEY.read_bytes(), password=None)
            self.rsa_key = cast(rsa.RSAPrivateKey, loaded)
        else:
            self.rsa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self.ec_key = ec.generate_private_key(ec.SECP256R1())
        self.rsa_kid = rsa_kid or ("dev-fixed" if fixed_key else "dev-rsa")
        self.ec_kid = ec_kid
        # An HS256 secret of 40 characters (Supabase asks its legacy JWT secrets for at least 32).
        self.hs256_secret = secrets.token_urlsafe(30)
        self.issuer = issuer
        self.issuer_path = issuer_path
        self.discovery_issuer = discovery_issuer
        self.jwks_path = jwks_path
        self.jwk_fields = dict(jwk_fields or {})
        self.extra_jwks = list(extra_jwks)
        self.url = ""
        self.jwks_fetches = 0
        self.discovery_fetches = 0
        self.accepts: list[str | None] = []  # the Accept header of each request, as the issuer saw it
        self._server: LocalServer | None = None

    def jwks(self) -> dict[str, Any]:
        rsa_jwk = json.loads(RSAAlgorithm.to_jwk(self.rsa_key.public_key()))
        ec_jwk = json.loads(ECAlgorithm.to_jwk(self.ec_key.public_key()))
        keys = [
            {**rsa_jwk, "kid": self.rsa_kid, "alg": "RS256", "use": "sig"},
            {**ec_jwk, "kid": self.ec_kid, "alg": "ES256", "use": "sig"},
        ]
        shaped = [_without_none({**key, **self.jwk_fields}) for key in keys]
        return {"keys": shaped + self.extra_jwks}

    def discovery(self) -> dict[str, Any]:
        return {
            "issuer": self.issuer if self.discovery_issuer is None else self.discovery_issuer,
            "jwks_uri": f"{self.url or self.issuer}{self.jwks_path}",
            "id_token_signing_alg_values_supported": ["RS256", "ES256"],
        }

    def token(
        self,
        sub: str,
        *,
        algorithm: str = "RS256",
        expires_in: int = 3600,
        headers: dict[str, Any] | None = None,
        **claims: Any,
    ) -> str:
        now = int(time.time())
        payload = {"iss": self.issuer, "aud": self.audience, "sub": sub, "iat": now, "exp": now + expires_in}
        payload.update(claims)
        signing_keys: dict[str, Any] = {"RS256": self.rsa_key, "ES256": self.ec_key}
        key = self.hs256_secret.encode() if algorithm.startswith("HS") else signing_keys[algorithm]
        kid = {"RS256": self.rsa_kid, "ES256": self.ec_kid}.get(algorithm)
        header = {"kid": kid, **(headers or {})}
        # PyJWT drops a falsy `typ` itself; every other field set to None is left out here.
        header = {name: value for name, value in header.items() if value is not None or name == "typ"}
        return jwt.encode(_without_none(payload), key, algorithm=algorithm, headers=header)

    def rotate(self) -> None:
        """Replace the RSA signing key (and its kid), as an issuer does on key rotation."""
        self.rsa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self.rsa_kid = f"dev-rsa-{int(time.time() * 1000)}"

    def document(self, path: str) -> dict[str, Any] | None:
        # Where the issuer's discovery document lives: under the issuer, with or without its last "/".
        if path == urlsplit(self.issuer).path.rstrip("/") + "/.well-known/openid-configuration":
            self.discovery_fetches += 1
            return self.discovery()
        if path == self.jwks_path:
            self.jwks_fetches += 1
            return self.jwks()
        return None

    def serve(self, port: int = 0, tls: ssl.SSLContext | None = None) -> str:
        """Serve on 127.0.0.1 (over https with `tls`, as issuers serve in production); the issuer's URL."""
        self._server = serve_in_background(self._respond, "identity-provider", port, tls)
        scheme = "https" if tls is not None else "http"
        self.url = f"{scheme}://127.0.0.1:{self._server.server_address[1]}"
        self.issuer = self.issuer or self.url + self.issuer_path
        return self.issuer

    def _respond(self, method: str, path: str, headers: dict[str, str], body: bytes) -> Reply:
        self.accepts.append(headers.get("accept"))
        document = self.document(path) if method == "GET" else None
        payload = json.dumps(document or {"error": "not_found"}).encode()
        return Reply(200 if document is not None else 404, payload, [("Content-Type", "application/json")])

    def shutdown(self) -> None:
        if self._server is not None:
            self._server.stop()
            self._server = None

    @contextmanager
    def serving(self, tls: ssl.SSLContext | None = None) -> Iterator[IdentityProvider]:
        self.serve(tls=tls)
        try:
            yield self
        finally:
            self.shutdown()


def _without_none(fields: Mapping[str, Any]) -> dict[str, Any]:
    return {name: value for name, value in fields.items() if value is not None}
