"""A development OIDC issuer: its own signing keys, a discovery document and a JWKS, and token minting.

Tokens look like Cognito's or any OIDC issuer's (RS256 by default, ES256 on request); the service verifies
them exactly as it verifies production tokens, through discovery and the JWKS.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, cast

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
    def __init__(self, audience: str = DEV_AUDIENCE, *, issuer: str = "", fixed_key: bool = False) -> None:
        self.audience = audience
        if fixed_key:
            loaded = serialization.load_pem_private_key(DEV_SIGNING_KEY.read_bytes(), password=None)
            self.rsa_key = cast(rsa.RSAPrivateKey, loaded)
        else:
            self.rsa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self.ec_key = ec.generate_private_key(ec.SECP256R1())
        self.rsa_kid = "dev-fixed" if fixed_key else "dev-rsa"
        self.issuer = issuer
        self.url = ""
        self.jwks_fetches = 0
        self._server: LocalServer | None = None

    def jwks(self) -> dict[str, Any]:
        rsa_jwk = json.loads(RSAAlgorithm.to_jwk(self.rsa_key.public_key()))
        ec_jwk = json.loads(ECAlgorithm.to_jwk(self.ec_key.public_key()))
        return {
            "keys": [
                {**rsa_jwk, "kid": self.rsa_kid, "alg": "RS256", "use": "sig"},
                {**ec_jwk, "kid": "dev-ec", "alg": "ES256", "use": "sig"},
            ]
        }

    def discovery(self) -> dict[str, Any]:
        return {
            "issuer": self.issuer,
            "jwks_uri": f"{self.url or self.issuer}/.well-known/jwks.json",
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
        key: Any = self.rsa_key if algorithm == "RS256" else self.ec_key
        kid = self.rsa_kid if algorithm == "RS256" else "dev-ec"
        return jwt.encode(payload, key, algorithm=algorithm, headers={"kid": kid, **(headers or {})})

    def rotate(self) -> None:
        """Replace the RSA signing key (and its kid), as an issuer does on key rotation."""
        self.rsa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self.rsa_kid = f"dev-rsa-{int(time.time() * 1000)}"

    def document(self, path: str) -> dict[str, Any] | None:
        if path == "/.well-known/openid-configuration":
            return self.discovery()
        if path == "/.well-known/jwks.json":
            self.jwks_fetches += 1
            return self.jwks()
        return None

    def serve(self, port: int = 0) -> str:
        self._server = serve_in_background(self._respond, "identity-provider", port)
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        self.issuer = self.issuer or self.url
        return self.issuer

    def _respond(self, method: str, path: str, headers: dict[str, str], body: bytes) -> Reply:
        document = self.document(path) if method == "GET" else None
        payload = json.dumps(document or {"error": "not_found"}).encode()
        return Reply(200 if document is not None else 404, payload, [("Content-Type", "application/json")])

    def shutdown(self) -> None:
        if self._server is not None:
            self._server.stop()
            self._server = None

    @contextmanager
    def serving(self) -> Iterator[IdentityProvider]:
        self.serve()
        try:
            yield self
        finally:
            self.shutdown()
