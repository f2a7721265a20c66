"""Every forged, stale or misdirected token is 401; every return_to trick is refused; nothing is created."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from local.identity_provider import IdentityProvider
from tests.conftest import APP, portal_session, problem, rows


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def unsigned(header: dict, claims: dict, signature: bytes = b"") -> str:
    head = b64(json.dumps(header).encode())
    body = b64(json.dumps(claims).encode())
    return f"{head}.{body}.{b64(signature)}"


def claims_for(identity: IdentityProvider, **overrides) -> dict:
    now = int(time.time())
    return {"iss": identity.issuer, "aud": identity.audience, "sub": "user-1", "exp": now + 600, **overrides}


def hs256_with_public_key(identity: IdentityProvider) -> str:
    public_pem = identity.rsa_key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    head = b64(json.dumps({"alg": "HS256", "typ": "JWT", "kid": identity.rsa_kid}).encode())
    body = b64(json.dumps(claims_for(identity)).encode())
    signature = hmac.new(public_pem, f"{head}.{body}".encode(), hashlib.sha256).digest()
    return f"{head}.{body}.{b64(signature)}"


def signed_by_stranger(identity: IdentityProvider) -> str:
    stranger = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return jwt.encode(claims_for(identity), stranger, algorithm="RS256", headers={"kid": identity.rsa_kid})


def tampered_claims(identity: IdentityProvider) -> str:
    head, _, signature = identity.token("user-1").split(".")
    return f"{head}.{b64(json.dumps(claims_for(identity, sub='admin')).encode())}.{signature}"


def without_claim(name: str):
    """A token the issuer signed properly, but without the claim `name`."""

    def token(idp):
        claims = {key: value for key, value in claims_for(idp).items() if key != name}
        return jwt.encode(claims, idp.rsa_key, algorithm="RS256", headers={"kid": idp.rsa_kid})

    return token


MALFORMED = "the token is malformed"
NOT_ACCEPTED = "the token's algorithm is not accepted"
BAD_SIGNATURE = "the token's signature is invalid"
# name: (the token, the detail of its 401)
TOKENS = {
    "malformed": (lambda idp: "not-a-jwt", MALFORMED),
    "garbage segments": (lambda idp: "a.b.c", MALFORMED),
    "expired": (lambda idp: idp.token("user-1", expires_in=-120), "the token has expired"),
    "not yet valid": (
        lambda idp: idp.token("user-1", nbf=int(time.time()) + 600),
        "the token is not valid yet",
    ),
    "wrong issuer": (
        lambda idp: idp.token("user-1", iss="https://issuer.evil.example"),
        "the token is from another issuer",
    ),
    "wrong audience": (
        lambda idp: idp.token("user-1", aud="someone-else"),
        "the token is for another audience",
    ),
    "no audience": (lambda idp: unsigned({"alg": "none"}, {}), MALFORMED),
    "alg none": (lambda idp: unsigned({"alg": "none", "kid": idp.rsa_kid}, claims_for(idp)), MALFORMED),
    "alg none uppercase": (
        lambda idp: unsigned({"alg": "NONE", "kid": idp.rsa_kid}, claims_for(idp)),
        MALFORMED,
    ),
    "alg none with a signature": (
        lambda idp: unsigned({"alg": "none", "kid": idp.rsa_kid}, claims_for(idp), b"sig"),
        NOT_ACCEPTED,
    ),
    "HS256 signed with the public key": (hs256_with_public_key, NOT_ACCEPTED),
    "unknown kid": (
        lambda idp: idp.token("user-1", headers={"kid": "who-knows"}),
        "the token was signed with an unknown key",
    ),
    "no kid": (
        lambda idp: jwt.encode(claims_for(idp), idp.rsa_key, algorithm="RS256"),
        "the token names no signing key",
    ),
    "an empty kid": (lambda idp: idp.token("user-1", headers={"kid": ""}), "the token names no signing key"),
    "a kid that is not text": (
        lambda idp: unsigned({"alg": "RS256", "kid": 5}, claims_for(idp), b"sig"),
        MALFORMED,
    ),
    "missing sub": (without_claim("sub"), "the token lacks a required claim"),
    "bad signature": (signed_by_stranger, BAD_SIGNATURE),
    "tampered claims": (tampered_claims, BAD_SIGNATURE),
    "RS384 not allowed": (
        lambda idp: jwt.encode(claims_for(idp), idp.rsa_key, algorithm="RS384", headers={"kid": idp.rsa_kid}),
        NOT_ACCEPTED,
    ),
    "ES256 header on the RSA key": (
        lambda idp: jwt.encode(claims_for(idp), idp.ec_key, algorithm="ES256", headers={"kid": idp.rsa_kid}),
        "the token's algorithm does not match its key",
    ),
    "missing exp": (without_claim("exp"), "the token lacks a required claim"),
    "empty subject": (lambda idp: idp.token(""), "the token has no usable subject"),
    "oversized": (lambda idp: idp.token("user-1", padding="x" * 9000), "the token is too long"),
}


@pytest.mark.parametrize("name", TOKENS)
def test_bad_tokens_are_401_and_nothing_is_created(handler, identity, stripe, aws, name):
    mint, detail = TOKENS[name]

    response = handler.request(token=mint(identity), accept="application/json")

    assert response["statusCode"] == 401, name
    assert problem(response)["code"] == "unauthenticated"
    assert problem(response)["detail"] == detail
    assert stripe.requests() == []
    assert rows(aws) == []


@pytest.mark.parametrize("name", ["expired", "wrong audience", "alg none", "bad signature"])
def test_bad_cookie_tokens_send_the_browser_to_sign_in(handler, identity, name):
    response = handler.request(cookie=TOKENS[name][0](identity), headers={"origin": APP})

    assert response["statusCode"] == 303
    assert response["headers"]["Location"].startswith(f"{APP}/sign-in?next=")


def test_es256_tokens_are_accepted(handler, identity, stripe):
    response = handler.request(token=identity.token("user-1", algorithm="ES256"))

    assert response["statusCode"] == 303
    portal_session(response, stripe)


def test_small_clock_skew_is_tolerated(handler, identity, stripe):
    response = handler.request(token=identity.token("user-1", nbf=int(time.time()) + 10))

    assert response["statusCode"] == 303
    portal_session(response, stripe)


class TestCognitoTokens:
    @pytest.fixture
    def cognito_access(self, redeploy, handler):
        redeploy(AUTH_TOKEN_USE="access", AUTH_AUDIENCE="client-123")
        return handler

    def access_token(self, identity, **claims):
        identity_claims = {"token_use": "access", "client_id": "client-123", "aud": None, **claims}
        return identity.token("user-1", **{k: v for k, v in identity_claims.items() if v is not None})

    def test_access_token_for_our_client_is_accepted(self, cognito_access, identity, stripe):
        token = jwt.encode(
            {**claims_for(identity), "token_use": "access", "client_id": "client-123"} | {"aud": None},
            identity.rsa_key,
            algorithm="RS256",
            headers={"kid": identity.rsa_kid},
        )

        response = cognito_access.request(token=token)

        assert response["statusCode"] == 303
        portal_session(response, stripe)

    @pytest.mark.parametrize(
        ("claims", "detail"),
        [
            ({"token_use": "id", "client_id": "client-123"}, "expected a Cognito access token"),
            ({"client_id": "client-123"}, "expected a Cognito access token"),
            ({"token_use": "access", "client_id": "other-client"}, "the token was issued to another client"),
            ({"token_use": "access"}, "the token was issued to another client"),
        ],
    )
    def test_wrong_token_use_or_client_is_401(self, cognito_access, identity, stripe, claims, detail):
        token = jwt.encode(
            {**claims_for(identity), **claims},
            identity.rsa_key,
            algorithm="RS256",
            headers={"kid": identity.rsa_kid},
        )
        response = cognito_access.request(token=token, accept="application/json")

        assert response["statusCode"] == 401
        assert problem(response)["code"] == "unauthenticated"
        assert problem(response)["detail"] == detail
        assert stripe.requests() == []

    def test_id_token_mode_checks_audience_and_token_use(self, redeploy, handler, identity, stripe):
        redeploy(AUTH_TOKEN_USE="id")

        good = handler.request(token=identity.token("user-1", token_use="id"))
        portal_session(good, stripe)
        access = handler.request(
            token=identity.token("user-1", token_use="access"), accept="application/json"
        )

        assert good["statusCode"] == 303
        assert access["statusCode"] == 401
        assert problem(access)["code"] == "unauthenticated"
        assert problem(access)["detail"] == "expected a Cognito id token"


class TestSigningKeys:
    def test_keys_are_fetched_once_per_container(self, handler, identity, stripe):
        before = identity.jwks_fetches

        for _ in range(3):
            portal_session(handler.request(token=identity.token("user-1")), stripe)

        assert identity.jwks_fetches - before == 1

    def test_a_flood_of_unknown_kids_refetches_at_most_once_a_minute(self, handler, identity, stripe):
        portal_session(handler.request(token=identity.token("user-1")), stripe)
        before = identity.jwks_fetches

        for n in range(20):
            response = handler.request(
                token=identity.token("user-1", headers={"kid": f"forged-{n}"}), accept="application/json"
            )
            assert problem(response)["detail"] == "the token was signed with an unknown key"

        assert identity.jwks_fetches == before

    def test_issuer_down_is_503_not_401(self, redeploy, handler, identity, stripe):
        redeploy(AUTH_JWKS_URL="http://127.0.0.1:9/jwks.json")

        response = handler.request(token=identity.token("user-1"), accept="application/json")

        assert response["statusCode"] == 503
        assert problem(response)["code"] == "identity_provider_unavailable"
        assert stripe.requests() == []


RETURN_TO_TRICKS = [
    "//evil.com",
    "//evil.com/account",
    "https://app.example.com.evil.com/",
    "https://evil.com@app.example.com/",
    "https://app.example.com@evil.com/",
    "https://app.example.com:443@evil.com/",
    "https:\\\\evil.com",
    "https://app.example.com\\@evil.com/",
    "https:/\\evil.com",
    "javascript:alert(1)",
    "JavaScript:alert(document.cookie)",
    "data:text/html,<script>alert(1)</script>",
    "http://app.example.com/account",
    "https://\u0430pp.example.com/",
    "https://app.example.com\u2025evil.com/",
    "https://app.example.com%2F@evil.com/",
    "/relative/path",
    "https:/evil.com",
    "https:evil.com",
    "ftp://app.example.com/",
    "https://evil.com/https://app.example.com/",
    " https://app.example.com/",
    "https://app.example.com:8443/",
    "https://app.example.com\t.evil.com/",
    "https://app.example.com\n/",
    "https://app.example.com%00.evil.com/",
    "https://app.example.com./",
    "http://localhost.evil.com:5173/",
    "http://localhost:5174/",
    "https://[::1]/",
    "",
    "https://app.example.com/" + "a" * 3000,
]


@pytest.mark.parametrize("return_to", RETURN_TO_TRICKS)
def test_return_to_tricks_are_refused(handler, identity, stripe, aws, return_to):
    response = handler.request(
        token=identity.token("user-1"), form={"return_to": return_to}, accept="application/json"
    )

    assert response["statusCode"] == 400, return_to
    body = problem(response)
    assert body["code"] == "invalid_parameter"
    assert body["param"] == "return_to"
    assert stripe.requests() == []
    assert rows(aws) == []


@pytest.mark.parametrize(
    "return_to",
    [
        f"{APP}/account",
        f"{APP}:443/billing?x=1#plan",
        "http://localhost:5173/callback",
        "https://APP.example.com/x",
    ],
)
def test_allowed_return_to_is_accepted(handler, identity, stripe, return_to):
    response = handler.request(token=identity.token("user-1"), form={"return_to": return_to})

    assert response["statusCode"] == 303
    assert portal_session(response, stripe)["return_url"] == return_to
