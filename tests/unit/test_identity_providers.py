"""Every identity provider, configured as its own docs lead a user to, reaches the portal; near-misses do not.

PROVIDERS is the one table: per provider the settings the README gives (rendered from here, and compared),
where each value is found, and a token shaped exactly as that provider issues it — header, claims,
algorithm, the issuer string its discovery document names, the JWKS where it publishes it. The dev
identity provider serves that shape on 127.0.0.1: the issuer keeps its path (and trailing slash), only
`https://host` becomes the local server.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import re
import time
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import boto3
import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from local.identity_provider import IdentityProvider
from local.server import Reply, serve_in_background
from local.template import load_template
from tests.conftest import APP, portal_session, problem, rows

ROOT = Path(__file__).resolve().parents[2]
README = (ROOT / "README.md").read_text()


@dataclass(frozen=True)
class Minting:
    """What a claim may depend on when the token is minted."""

    now: int
    issuer: str


Claim = Any  # a value, or a callable of Minting


def ago(seconds: int) -> Callable[[Minting], int]:
    return lambda minted: minted.now - seconds


NOW = ago(0)


@dataclass(frozen=True)
class NearMiss:
    """A token that must be refused: claims changed (None leaves one out), or signed otherwise."""

    claims: dict[str, Claim] = field(default_factory=dict)
    algorithm: str | None = None
    signed_with: str | None = None  # "the RSA public key" or "another secret", for HS256
    because: str = ""  # the refusal's detail, which tells the user's developer which check it failed


@dataclass(frozen=True)
class Organizations:
    """Organization mode as the provider's tokens carry it: the settings, and the claims an admin's and a
    member's tokens add (the organization, and a role that may pay or may not)."""

    org_claim: str
    role_claim: str
    billing_roles: str
    organization: str  # the id the admin's and the member's tokens name
    admin: dict[str, Claim]
    member: dict[str, Claim]
    where: str


@dataclass(frozen=True)
class Provider:
    name: str
    issuer: str  # exactly as the provider's discovery document (or docs) give it
    where: str  # where each value is found in the provider's console
    subject: str
    claims: dict[str, Claim]  # everything but iss, sub, exp (and iat, set at minting unless given)
    audience: str = ""
    authorized_parties: str = ""
    token_use: str = "oidc"
    jwks_url: str = ""  # "" = read jwks_uri from the issuer's discovery document
    discovered_jwks: str = ""  # that jwks_uri, where the provider publishes its keys
    hs256: bool = False  # the JWT secret from Secrets Manager instead of a JWKS
    cookie: str = ""
    algorithm: str = "RS256"
    kid: str = "key-1"
    header: dict[str, Any] = field(default_factory=dict)
    jwk_fields: dict[str, Any] = field(default_factory=dict)
    extra_jwks: tuple[dict[str, Any], ...] = ()
    examples: dict[str, str] = field(default_factory=dict)
    near_misses: dict[str, NearMiss] = field(default_factory=dict)
    organizations: Organizations | None = None


COGNITO_ISSUER = "https://cognito-idp.{region}.amazonaws.com/{user_pool_id}"
COGNITO = {
    "region": "us-east-1",
    "user_pool_id": "us-east-1_EXAMPLE12",
    "app_client_id": "1example23456789abcdefghij",
}
COGNITO_KID = "1234exampleKIDabcdEFGHijkLMNop5678QRSTuvwx="
COGNITO_WHERE = (
    "Cognito console → User pools → your pool: *User pool ID* and the Region; *App clients*: *Client ID*"
)
FIREBASE_JWKS = "https://www.googleapis.com/service_accounts/v1/jwk/securetoken@system.gserviceaccount.com"
SUPABASE_ISSUER = "https://{project_ref}.supabase.co/auth/v1"
SUPABASE = {"project_ref": "abcdefghijklmnopqrst"}
SUPABASE_CLAIMS: dict[str, Claim] = {
    "aud": "authenticated",
    "email": "ada@example.com",
    "phone": "",
    "app_metadata": {"provider": "email", "providers": ["email"]},
    "user_metadata": {"email_verified": True},
    "role": "authenticated",
    "aal": "aal1",
    "amr": [{"method": "password", "timestamp": NOW}],
    "session_id": "0b1d3c5e-6f70-4a1b-9c2d-3e4f5a6b7c8d",
    "is_anonymous": False,
}
SUPABASE_USER = "3f2b8c1e-4d5a-4e6f-8a9b-0c1d2e3f4a5b"

# Each row's facts, one line each: where they come from.
PROVIDER_ROWS = (
    # docs.aws.amazon.com/cognito "Understanding the access token": header kid+alg only; client_id, no aud.
    Provider(
        "Amazon Cognito (access token)",
        COGNITO_ISSUER,
        COGNITO_WHERE,
        subject="aaaaaaaa-bbbb-cccc-dddd-example00001",
        audience="{app_client_id}",
        token_use="access",
        discovered_jwks=COGNITO_ISSUER + "/.well-known/jwks.json",
        kid=COGNITO_KID,
        header={"typ": None},
        claims={
            "aud": None,
            "cognito:groups": ["admins"],
            "version": 2,
            "client_id": "{app_client_id}",
            "origin_jti": "aaaaaaaa-bbbb-cccc-dddd-example00002",
            "event_id": "aaaaaaaa-bbbb-cccc-dddd-example00003",
            "token_use": "access",
            "scope": "aws.cognito.signin.user.admin openid email",
            "auth_time": NOW,
            "jti": "aaaaaaaa-bbbb-cccc-dddd-example00004",
            "username": "ada",
        },
        examples=COGNITO,
        near_misses={
            "an id token": NearMiss(
                {"token_use": "id", "aud": "{app_client_id}", "client_id": None},
                because="expected a Cognito access token",
            ),
            "another app client": NearMiss(
                {"client_id": "0therclient1234567890abcd"}, because="the token was issued to another client"
            ),
            "no token_use": NearMiss({"token_use": None}, because="expected a Cognito access token"),
        },
    ),
    # docs.aws.amazon.com/cognito "Understanding the identity (ID) token": aud is the app client id.
    Provider(
        "Amazon Cognito (ID token)",
        COGNITO_ISSUER,
        COGNITO_WHERE,
        subject="aaaaaaaa-bbbb-cccc-dddd-example00001",
        audience="{app_client_id}",
        token_use="id",
        discovered_jwks=COGNITO_ISSUER + "/.well-known/jwks.json",
        kid=COGNITO_KID,
        header={"typ": None},
        claims={
            "aud": "{app_client_id}",
            "email_verified": True,
            "cognito:username": "ada",
            "origin_jti": "aaaaaaaa-bbbb-cccc-dddd-example00002",
            "event_id": "aaaaaaaa-bbbb-cccc-dddd-example00003",
            "token_use": "id",
            "auth_time": NOW,
            "jti": "aaaaaaaa-bbbb-cccc-dddd-example00004",
            "email": "ada@example.com",
        },
        examples=COGNITO,
        near_misses={
            "an access token": NearMiss(
                {"token_use": "access", "client_id": "{app_client_id}", "aud": None},
                because="the token lacks a required claim",
            ),
            "another app client": NearMiss(
                {"aud": "0therclient1234567890abcd"}, because="the token is for another audience"
            ),
        },
        # Cognito has no organizations: a custom attribute names one (ID tokens carry `custom:` attributes),
        # and the user's groups are the roles (`cognito:groups`, in ID and access tokens).
        organizations=Organizations(
            org_claim="custom:org_id",
            role_claim="cognito:groups",
            billing_roles="billing-admins",
            organization="acme",
            admin={"custom:org_id": "acme", "cognito:groups": ["billing-admins", "staff"]},
            member={"custom:org_id": "acme", "cognito:groups": ["staff"]},
            where="a custom attribute `org_id` (readable by the app client) and a group per role",
        ),
    ),
    # auth0.com/docs "Get access tokens": iss ends in "/"; an API audience with openid adds …/userinfo.
    Provider(
        "Auth0",
        "https://{tenant}.auth0.com/",
        "Applications → APIs → your API: *Identifier* (the audience); the issuer is the tenant's domain "
        "(or custom domain) with `https://` and the trailing `/`",
        subject="auth0|64f1c0ffee0123456789abcd",
        audience="{api_identifier}",
        discovered_jwks="https://{tenant}.auth0.com/.well-known/jwks.json",
        kid="NjVBRjY5MDlCMUIwNzU4RTA2QzZFMDQ4QzQ2MDAyQjVDNjk1RTM2Qg",
        header={"typ": "JWT"},
        jwk_fields={"x5t": "NjVBRjY5MDlCMUIwNzU4RTA2QzZFMDQ4QzQ2MDAyQjVDNjk1RTM2Qg"},
        claims={
            "aud": ["{api_identifier}", "https://{tenant}.auth0.com/userinfo"],
            "azp": "AbCdEf0123456789AbCdEf0123456789",
            "scope": "openid profile email",
        },
        examples={
            "tenant": "example",
            "api_identifier": "https://api.example.com",
            "namespace": "example.com",
        },
        near_misses={
            "an ID token (aud: the client id)": NearMiss(
                {"aud": "AbCdEf0123456789AbCdEf0123456789"}, because="the token is for another audience"
            ),
            "another API": NearMiss(
                {"aud": ["https://other.example.com", "https://{tenant}.auth0.com/userinfo"]},
                because="the token is for another audience",
            ),
        },
        # auth0.com/docs "Work with Tokens and Organizations": org_id when the user logs in through one;
        # roles only through a namespaced custom claim an Action adds (event.authorization.roles).
        organizations=Organizations(
            org_claim="org_id",
            role_claim="https://{namespace}/roles",
            billing_roles="billing-admin",
            organization="org_9ybsU1dN2dKfDkBi",
            admin={"org_id": "org_9ybsU1dN2dKfDkBi", "https://{namespace}/roles": ["billing-admin"]},
            member={"org_id": "org_9ybsU1dN2dKfDkBi", "https://{namespace}/roles": ["viewer"]},
            where="log in with `organization`; a post-login Action sets the roles claim "
            "(`api.accessToken.setCustomClaim('https://<namespace>/roles', event.authorization.roles)`)",
        ),
    ),
    # clerk.com/docs "Session tokens" (v2 claims, no aud) and "Manual JWT verification" (azp, __session).
    Provider(
        "Clerk",
        "https://{frontend_api}",
        "API keys page: *Frontend API URL* (the issuer) and *JWKS URL*; the authorized parties are your "
        "app's origins (Clerk copies the request's `Origin` into `azp`)",
        subject="user_2abcDEFghiJKLmnoPQRstuVWXyz",
        authorized_parties=APP,
        jwks_url="https://{frontend_api}/.well-known/jwks.json",
        cookie="__session",
        kid="ins_2abcDEFghiJKLmnoPQRstuVWXyz",
        header={"typ": "JWT", "cat": "cl_B7d4PD111AAA"},
        claims={
            "aud": None,
            "azp": APP,
            "fva": [7, -1],
            "jti": "1234567890abcdef1234",
            "nbf": ago(10),
            "sid": "sess_2abcDEFghiJKLmnoPQRstuVWXyz",
            "v": 2,
            "pla": "u:free",
        },
        examples={"frontend_api": "clerk.example.com"},
        near_misses={
            "another origin's token": NearMiss(
                {"azp": "https://evil.example.com"}, because="the token was issued to another party"
            ),
            "no azp": NearMiss({"azp": None}, because="the token was issued to another party"),
        },
        # clerk.com/docs "Session tokens", v2: the active organization in `o` (`id`, `rol` without the
        # `org:` prefix); v1 tokens carry `org_id` and `org_role` ("org:admin") instead.
        organizations=Organizations(
            org_claim="o.id",
            role_claim="o.rol",
            billing_roles="admin",
            organization="org_2abcDEFghiJKLmnoPQRstuVWXyz",
            admin={"o": {"id": "org_2abcDEFghiJKLmnoPQRstuVWXyz", "slg": "acme", "rol": "admin", "per": ""}},
            member={
                "o": {"id": "org_2abcDEFghiJKLmnoPQRstuVWXyz", "slg": "acme", "rol": "member", "per": ""}
            },
            where="the active organization (v1 tokens: `org_id`, `org_role`, roles as `org:admin`)",
        ),
    ),
    # developer.okta.com "Authorization servers": the "default" server, aud api://default; kid+alg header.
    Provider(
        "Okta",
        "https://{okta_domain}/oauth2/default",
        "Security → API → Authorization Servers → *default*: *Issuer URI* and *Audience*",
        subject="ada@example.com",
        audience="api://default",
        discovered_jwks="https://{okta_domain}/oauth2/default/v1/keys",
        kid="kVvq0a5z1Yp2EXAMPLEkid3Xr8GdWfTn",
        header={"typ": None},
        claims={
            "ver": 1,
            "jti": "AT.xtjhr8FeMkyMfgLiFzVYOYPbgqWdd6ONULT3ffeK7d4",
            "aud": "api://default",
            "cid": "0oaosna3ilNxgPTmk0h7",
            "uid": "00uixa271s6x7qt8I0h7",
            "scp": ["openid", "email"],
            "auth_time": NOW,
        },
        examples={"okta_domain": "example.okta.com"},
        near_misses={
            "the org authorization server's token": NearMiss(
                {"iss": "https://{okta_domain}"}, because="the token is from another issuer"
            ),
            "another authorization server's audience": NearMiss(
                {"aud": "api://other"}, because="the token is for another audience"
            ),
        },
    ),
    # Keycloak access tokens: aud "account", typ "Bearer", azp the client; its certs also list an "enc" key.
    Provider(
        "Keycloak",
        "https://{host}/realms/{realm}",
        "Realm settings → *OpenID Endpoint Configuration* (`issuer`); Clients → your client: *Client ID* "
        "(the `azp`). With an *Audience* mapper on the client, set `AUTH_AUDIENCE` too",
        subject="fd8fc3d3-0a39-41f7-9468-45926f658e41",
        authorized_parties="{client_id}",
        discovered_jwks="https://{host}/realms/{realm}/protocol/openid-connect/certs",
        kid="KAa6_SOruKWTZN1zSQgX_VHuwlN7FQEoIlBigATjRr0",
        header={"typ": "JWT"},
        extra_jwks=(
            {"kid": "enc-5mT0", "kty": "RSA", "alg": "RSA-OAEP", "use": "enc", "n": "sXch", "e": "AQAB"},
        ),
        claims={
            "auth_time": NOW,
            "jti": "e1ac2e55-a655-464b-9039-6874c52398e3",
            "aud": "account",
            "typ": "Bearer",
            "azp": "{client_id}",
            "sid": "c09af47f-db7c-4013-bff6-60b78b959786",
            "acr": "1",
            "allowed-origins": [APP],
            "realm_access": {"roles": ["offline_access", "uma_authorization"]},
            "resource_access": {"account": {"roles": ["manage-account", "view-profile"]}},
            "scope": "openid profile email",
            "email_verified": True,
            "name": "Ada Lovelace",
            "preferred_username": "ada",
            "email": "ada@example.com",
        },
        examples={"host": "sso.example.com", "realm": "acme", "client_id": "portal-app"},
        near_misses={
            "another client's token": NearMiss(
                {"azp": "admin-cli"}, because="the token was issued to another party"
            ),
            "another realm": NearMiss(
                {"iss": "https://{host}/realms/master"}, because="the token is from another issuer"
            ),
        },
        # Keycloak's Organizations: the `organization` scope's claim lists the aliases, one when the app
        # asks for `organization:<alias>`; realm roles are the user's in every organization.
        organizations=Organizations(
            org_claim="organization",
            role_claim="realm_access.roles",
            billing_roles="billing-admin",
            organization="acme",
            admin={
                "organization": ["acme"],
                "realm_access": {"roles": ["offline_access", "uma_authorization", "billing-admin"]},
            },
            member={
                "organization": ["acme"],
                "realm_access": {"roles": ["offline_access", "uma_authorization"]},
            },
            where="scope `organization:<alias>` (one organization per token); a realm role per billing role",
        ),
    ),
    # firebase.google.com/docs/auth/admin/verify-id-tokens: aud and iss name the project; RS256 with kid.
    Provider(
        "Firebase Authentication",
        "https://securetoken.google.com/{project_id}",
        f"Project settings → General: *Project ID*. The keys are discovered (`{FIREBASE_JWKS}`)",
        subject="kGQ1uK9xIbSfe0EXAMPLEuid1234",
        audience="{project_id}",
        discovered_jwks=FIREBASE_JWKS,
        kid="a1b2c3d4e5f60718293a4b5c6d7e8f9012345678",
        header={"typ": "JWT"},
        claims={
            "aud": "{project_id}",
            "name": "Ada Lovelace",
            "auth_time": NOW,
            "user_id": "kGQ1uK9xIbSfe0EXAMPLEuid1234",
            "email": "ada@example.com",
            "email_verified": True,
            "firebase": {"identities": {"email": ["ada@example.com"]}, "sign_in_provider": "password"},
        },
        examples={"project_id": "portal-links-demo"},
        near_misses={
            "another project": NearMiss(
                {"aud": "someone-elses-app"}, because="the token is for another audience"
            ),
            "a session cookie": NearMiss(
                {"iss": "https://session.firebase.google.com/{project_id}"},
                because="the token is from another issuer",
            ),
        },
    ),
    # supabase.com/docs "JWT Signing Keys" (ES256, JWKS URL) and "JWT Claims Reference" (aud authenticated).
    Provider(
        "Supabase (signing keys)",
        SUPABASE_ISSUER,
        "Project Settings → JWT Keys: the JWKS URL; the issuer is the project URL + `/auth/v1`",
        subject=SUPABASE_USER,
        audience="authenticated",
        jwks_url=SUPABASE_ISSUER + "/.well-known/jwks.json",
        algorithm="ES256",
        kid="3a18cfe2-7226-43b0-bbb4-7c5242f2406e",
        header={"typ": "JWT"},
        jwk_fields={"key_ops": ["verify"], "ext": True},
        claims=SUPABASE_CLAIMS,
        examples=SUPABASE,
        near_misses={
            "HS256 with the legacy JWT secret": NearMiss(
                algorithm="HS256", because="the token's algorithm is not accepted"
            ),
            "another project": NearMiss(
                {"iss": "https://zyxwvutsrqponmlkjihg.supabase.co/auth/v1"},
                because="the token is from another issuer",
            ),
        },
    ),
    # supabase.com/docs "JWT Signing Keys": the legacy JWT secret signs HS256 (and the anon key).
    Provider(
        "Supabase (legacy JWT secret)",
        SUPABASE_ISSUER,
        "Project Settings → JWT Keys → *Legacy JWT Secret*: store it as a Secrets Manager secret",
        subject=SUPABASE_USER,
        audience="authenticated",
        hs256=True,
        algorithm="HS256",
        header={"typ": "JWT"},
        claims=SUPABASE_CLAIMS,
        examples=SUPABASE,
        near_misses={
            "RS256 from a JWKS": NearMiss(algorithm="RS256", because="the token's algorithm is not accepted"),
            "HS256 signed with the RSA public key": NearMiss(
                signed_with="the RSA public key", because="the token's signature is invalid"
            ),
            "another project's secret": NearMiss(
                signed_with="another secret", because="the token's signature is invalid"
            ),
            "the anon API key": NearMiss(
                {"iss": "supabase", "ref": "{project_ref}", "role": "anon", "aud": None, "sub": None},
                because="the token lacks a required claim",
            ),
        },
    ),
    # learn.microsoft.com "Access token claims reference": v2.0 iss ends in /v2.0, aud is the API's client id.
    Provider(
        "Microsoft Entra ID (v2.0)",
        "https://login.microsoftonline.com/{tenant_id}/v2.0",
        "App registrations → your API: *Directory (tenant) ID* and *Application (client) ID*; in its "
        "manifest set `api.requestedAccessTokenVersion` (older manifests: `accessTokenAcceptedVersion`) "
        "to `2`, else its tokens carry the v1.0 issuer",
        subject="AAAAAAAAAAAAAAAAAAAAAIkzqFVrSaSaFHy782bbtaQ",
        audience="{application_client_id}",
        discovered_jwks="https://login.microsoftonline.com/{tenant_id}/discovery/v2.0/keys",
        kid="L1KfKFI_jnXbwWc22xZxw1sUHH0",
        header={"typ": "JWT"},
        jwk_fields={"alg": None, "x5t": "L1KfKFI_jnXbwWc22xZxw1sUHH0", "issuer": "{issuer}"},
        claims={
            "aud": "{application_client_id}",
            "nbf": NOW,
            "aio": "Y2NgYEjZ2MxxEXAMPLE",
            "azp": "11112222-bbbb-3333-cccc-4444dddd5555",
            "azpacr": "0",
            "name": "Ada Lovelace",
            "oid": "00000000-0000-0000-66f3-3332eca7ea81",
            "preferred_username": "ada@contoso.example",
            "rh": "0.AAAAEXAMPLE.",
            "scp": "access_as_user",
            "tid": "{tenant_id}",
            "uti": "fqiBqXLPj0eQa82S-IYFAA",
            "ver": "2.0",
        },
        examples={
            "tenant_id": "aaaabbbb-0000-cccc-1111-dddd2222eeee",
            "application_client_id": "00001111-aaaa-2222-bbbb-3333cccc4444",
        },
        near_misses={
            "a v1.0 token": NearMiss(
                {
                    "iss": "https://sts.windows.net/{tenant_id}/",
                    "ver": "1.0",
                    "aud": "api://{application_client_id}",
                },
                because="the token is from another issuer",
            ),
            "a Microsoft Graph token": NearMiss(
                {"aud": "00000003-0000-0000-c000-000000000000"}, because="the token is for another audience"
            ),
            "another tenant": NearMiss(
                {"iss": "https://login.microsoftonline.com/ffffffff-0000-cccc-1111-dddd2222eeee/v2.0"},
                because="the token is from another issuer",
            ),
        },
    ),
)
PROVIDERS = {provider.name: provider for provider in PROVIDER_ROWS}

COMMON_NEAR_MISSES = {
    "another issuer": NearMiss(
        {"iss": lambda minted: "https://attacker.example" + urlsplit(minted.issuer).path},
        because="the token is from another issuer",
    ),
    "the issuer's slash variant": NearMiss(
        {"iss": lambda minted: slash_variant(minted.issuer)}, because="the token is from another issuer"
    ),
    "expired": NearMiss({"exp": ago(120)}, because="the token has expired"),
}


def slash_variant(issuer: str) -> str:
    return issuer[:-1] if issuer.endswith("/") else issuer + "/"


def placeholders(text: str, values: dict[str, str]) -> str:
    return re.sub(r"\{(\w+)\}", lambda name: values[name.group(1)], text)


def for_readme(text: str) -> str:
    return re.sub(r"\{(\w+)\}", lambda name: "<" + name.group(1).replace("_", "-") + ">", text)


def provider_table() -> str:
    def cell(value: str) -> str:
        return f"`{for_readme(value)}`" if value else "—"

    rows = [
        "| provider | `AUTH_ISSUER` | `AUTH_AUDIENCE` | `AUTH_AUTHORIZED_PARTIES` | `AUTH_TOKEN_USE` "
        "| `AUTH_JWKS_URL` | cookie (`AUTH_COOKIE_NAME`) | where to find them |",
        "| --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for provider in PROVIDERS.values():
        jwks = cell(provider.jwks_url) if provider.jwks_url else "discovered"
        if provider.hs256:
            jwks = "— (`AUTH_HS256_SECRET_ARN`: the secret's ARN)"
        parties = provider.authorized_parties.replace(APP, "{app_origin}")
        rows.append(
            f"| {provider.name} | {cell(provider.issuer)} | {cell(provider.audience)} | {cell(parties)} "
            f"| `{provider.token_use}` | {jwks} | {cell(provider.cookie)} | {provider.where} |"
        )
    return "\n".join(rows) + "\n"


def organization_table() -> str:
    rows = [
        "| provider | `AUTH_ORG_CLAIM` | `AUTH_ROLE_CLAIM` | `AUTH_BILLING_ROLES` (an example) | set it up |",
        "| --- | --- | --- | --- | --- |",
    ]
    for provider in PROVIDERS.values():
        orgs = provider.organizations
        if orgs is not None:
            rows.append(
                f"| {provider.name} | `{for_readme(orgs.org_claim)}` | `{for_readme(orgs.role_claim)}` "
                f"| `{orgs.billing_roles}` | {orgs.where} |"
            )
    return "\n".join(rows) + "\n"


class ServedProvider:
    """One provider's issuer, discovery document and JWKS on 127.0.0.1, and its tokens."""

    def __init__(self, provider: Provider) -> None:
        self.provider = provider
        issuer = self.example(provider.issuer)
        keys_at = self.example(provider.jwks_url or provider.discovered_jwks or provider.issuer)
        # The provider's kid on the key it signs with; the dev issuer's other key gets another kid.
        elliptic = provider.algorithm == "ES256"
        self.identity = IdentityProvider(
            issuer_path=urlsplit(issuer).path,
            jwks_path=urlsplit(keys_at).path,
            rsa_kid=provider.kid + "-rsa" if elliptic else provider.kid,
            ec_kid=provider.kid if elliptic else provider.kid + "-ec",
            jwk_fields=self.filled(provider.jwk_fields, Minting(0, issuer)),
            extra_jwks=provider.extra_jwks,
        )

    def example(self, text: str) -> str:
        return placeholders(text, self.provider.examples)

    def local(self, url: str) -> str:
        """The provider's URL on the local server: its path (and trailing slash) kept, its host replaced."""
        return self.identity.url + urlsplit(self.example(url)).path

    def settings(self, secret_arn: str | None = None) -> dict[str, str | None]:
        provider = self.provider
        return {
            "AUTH_ISSUER": self.identity.issuer,
            "AUTH_AUDIENCE": self.example(provider.audience) or None,
            "AUTH_AUTHORIZED_PARTIES": self.example(provider.authorized_parties) or None,
            "AUTH_TOKEN_USE": provider.token_use,
            "AUTH_JWKS_URL": self.local(provider.jwks_url) if provider.jwks_url else None,
            "AUTH_HS256_SECRET_ARN": secret_arn if provider.hs256 else None,
            "AUTH_COOKIE_NAME": provider.cookie or None,
        }

    def token(self, near_miss: NearMiss | None = None) -> str:
        provider, miss = self.provider, near_miss or NearMiss()
        minted = Minting(int(time.time()), self.identity.issuer)
        claims = self.filled({**provider.claims, **miss.claims}, minted)
        header = {"typ": None, **provider.header}
        if miss.signed_with is not None:
            return self.signed_otherwise(miss.signed_with, claims)
        sub = claims.pop("sub", provider.subject)
        algorithm = miss.algorithm or provider.algorithm
        return self.identity.token(sub, algorithm=algorithm, headers=header, **claims)

    def filled(self, value: Any, minted: Minting) -> Any:
        """Placeholders replaced by the examples (and `{issuer}`), callables called, at every depth."""
        if callable(value):
            return value(minted)
        if isinstance(value, str):
            return placeholders(value, {**self.provider.examples, "issuer": minted.issuer})
        if isinstance(value, list):
            return [self.filled(item, minted) for item in value]
        if isinstance(value, dict):
            return {self.filled(name, minted): self.filled(item, minted) for name, item in value.items()}
        return value

    def signed_otherwise(self, how: str, claims: dict[str, Any]) -> str:
        payload = {"iss": self.identity.issuer, "sub": self.provider.subject, "exp": int(time.time()) + 600}
        payload |= {name: value for name, value in claims.items() if value is not None}
        if how == "another secret":
            return jwt.encode(payload, "another-projects-jwt-secret-of-40-chars!", algorithm="HS256")
        public_pem = self.identity.rsa_key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        # By hand: PyJWT refuses a PEM as an HMAC key; an attacker does not.
        head = b64url(json.dumps({"alg": "HS256", "typ": "JWT", "kid": self.identity.rsa_kid}).encode())
        signing_input = f"{head}.{b64url(json.dumps(payload).encode())}"
        return (
            f"{signing_input}.{b64url(hmac.new(public_pem, signing_input.encode(), hashlib.sha256).digest())}"
        )


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


@pytest.fixture(params=list(PROVIDERS))
def served(request) -> Iterator[ServedProvider]:
    provider = ServedProvider(PROVIDERS[request.param])
    with provider.identity.serving():
        yield provider


def deploy(served: ServedProvider, redeploy: Callable[..., None], **overrides: str | None) -> None:
    """Deploy as the README's row for that provider says (the JWT secret stored in Secrets Manager)."""
    arn = None
    if served.provider.hs256:
        client = boto3.client("secretsmanager", region_name="us-east-1")
        arn = client.create_secret(Name="jwt-secret", SecretString=served.identity.hs256_secret)["ARN"]
    redeploy(**{**served.settings(arn), **overrides})


@pytest.fixture
def configured(served: ServedProvider, redeploy, aws) -> ServedProvider:
    deploy(served, redeploy)
    return served


def test_the_readme_provider_table_is_rendered_from_the_table():
    table = provider_table()

    assert table in README, f"README.md: replace the identity provider table with\n{table}"


def test_the_readme_organization_claims_table_is_rendered_from_the_table():
    table = organization_table()

    assert table in README, f"README.md: replace the organization claims table with\n{table}"


def test_every_auth_setting_is_in_the_readme_and_passed_by_the_template():
    read = set(
        re.findall(r'"(AUTH_[A-Z0-9_]+)"', (ROOT / "layers/shared/portal_links/settings.py").read_text())
    )
    found = re.findall(r"^\| (—|`Auth\w+`) \| `(AUTH_\w+)` \|", README, re.MULTILINE)
    rows = {env: parameter.strip("`") for parameter, env in found}
    template = load_template()
    environment = template["Resources"]["PortalFunction"]["Properties"]["Environment"]["Variables"]
    passed = {env: ref["Ref"] for env, ref in environment.items() if env.startswith("AUTH_")}

    assert set(rows) == read
    assert passed == {env: parameter for env, parameter in rows.items() if parameter != "—"}
    assert set(passed.values()) <= set(template["Parameters"])


def test_a_token_shaped_as_the_provider_issues_it_reaches_the_portal(configured, handler, stripe, aws):
    # Given a deployment configured as the provider's row says, and a token exactly as that provider issues it
    token = configured.token()

    # When a fetch() caller sends it
    response = handler.request(token=token, accept="application/json")

    # Then it gets the portal session the emulator created, for the token's subject
    assert response["statusCode"] == 200, response["body"]
    [session] = stripe.sessions()
    assert json.loads(response["body"]) == {"url": session["url"]}
    assert session["url"].startswith(f"{stripe.url}/p/session/")
    assert [row["app_user_id"]["S"] for row in rows(aws)] == [configured.provider.subject]


def test_the_token_in_a_cookie_reaches_the_portal_from_a_form_post(configured, handler, stripe):
    cookie = configured.provider.cookie or "session"

    response = handler.request(headers={"cookie": f"{cookie}={configured.token()}", "origin": APP})

    assert response["statusCode"] == 303
    portal_session(response, stripe)
    assert len(stripe.sessions()) == 1


NEAR_MISSES = [
    pytest.param(name, miss, id=f"{name}: {miss}")
    for name, provider in PROVIDERS.items()
    for miss in [*COMMON_NEAR_MISSES, *provider.near_misses]
]


@pytest.mark.parametrize(("served", "near_miss"), NEAR_MISSES, indirect=["served"])
def test_near_misses_are_refused_and_nothing_is_created(configured, handler, stripe, aws, near_miss):
    miss = {**COMMON_NEAR_MISSES, **configured.provider.near_misses}[near_miss]

    response = handler.request(token=configured.token(miss), accept="application/json")

    assert response["statusCode"] == 401, response["body"]
    assert miss.because, "a near miss names the detail it is refused with"
    assert problem(response)["detail"] == miss.because
    assert problem(response)["code"] == "unauthenticated"
    assert stripe.requests() == []
    assert rows(aws) == []


ORGANIZATION_PROVIDERS = [name for name, provider in PROVIDERS.items() if provider.organizations]


def organization_mode(served: ServedProvider) -> dict[str, str]:
    """The README's organization claims row for the provider, as settings."""
    orgs = served.provider.organizations
    assert orgs is not None
    return {
        "AUTH_ORG_CLAIM": served.example(orgs.org_claim),
        "AUTH_ROLE_CLAIM": served.example(orgs.role_claim),
        "AUTH_BILLING_ROLES": orgs.billing_roles,
    }


@pytest.fixture
def organized(served: ServedProvider, redeploy, aws) -> ServedProvider:
    deploy(served, redeploy, **organization_mode(served))
    return served


@pytest.mark.parametrize("served", ORGANIZATION_PROVIDERS, indirect=True)
def test_in_organization_mode_an_admins_token_opens_the_organizations_portal(organized, handler, stripe, aws):
    # Given organization mode configured as the provider's row says, and an admin's token as it issues it
    orgs = organized.provider.organizations
    assert orgs is not None
    token = organized.token(NearMiss(orgs.admin))

    # When a fetch() caller sends it
    response = handler.request(token=token, accept="application/json")

    # Then the portal opens for the organization's customer, keyed by the organization
    assert response["statusCode"] == 200, response["body"]
    [customer] = stripe.customers()
    assert customer["metadata"]["app_org_id"] == orgs.organization
    assert customer["metadata"]["app_org_opened_by"] == organized.provider.subject
    assert "app_user_id" not in customer["metadata"]
    assert [row["app_user_id"]["S"] for row in rows(aws)] == [f"#org#{orgs.organization}"]


@pytest.mark.parametrize("served", ORGANIZATION_PROVIDERS, indirect=True)
def test_in_organization_mode_a_members_token_is_refused_and_nothing_is_written(
    organized, handler, stripe, aws
):
    orgs = organized.provider.organizations
    assert orgs is not None

    response = handler.request(token=organized.token(NearMiss(orgs.member)), accept="application/json")

    assert response["statusCode"] == 403, response["body"]
    assert problem(response)["code"] == "billing_role_required"
    assert stripe.requests() == []
    assert rows(aws) == []


@pytest.mark.parametrize("served", ORGANIZATION_PROVIDERS, indirect=True)
def test_in_organization_mode_a_token_without_an_organization_is_refused(organized, handler, stripe, aws):
    # The provider's token as it issues it for a user who has no (active) organization
    response = handler.request(token=organized.token(), accept="application/json")

    assert response["statusCode"] == 403, response["body"]
    assert problem(response)["code"] == "organization_required"
    assert stripe.requests() == []
    assert rows(aws) == []


def test_the_issuer_setting_off_by_a_slash_is_refused_and_the_log_names_the_fix(
    served, redeploy, handler, stripe, aws, caplog
):
    # Given the provider's issuer configured with the trailing slash added or removed
    deploy(served, redeploy, AUTH_ISSUER=slash_variant(served.identity.issuer))

    # When its token arrives
    response = handler.request(token=served.token(), accept="application/json")

    # Then nothing is accepted: discovery names the real issuer (503), else the token's iss differs (401)
    discovered = not (served.provider.jwks_url or served.provider.hs256)
    assert (response["statusCode"], problem(response)["code"]) == (
        (503, "identity_provider_unavailable") if discovered else (401, "unauthenticated")
    )
    assert stripe.requests() == []
    # and the log line says exactly what to set
    [logged] = [record for record in caplog.records if hasattr(record, "fix")]
    assert logged.fix == f"set AUTH_ISSUER to exactly {served.identity.issuer!r}"
    assert logged.configured == slash_variant(served.identity.issuer)
    assert logged.getMessage() == (
        "AUTH_ISSUER differs from the issuer its discovery document names, which its tokens carry"
        if discovered
        else "AUTH_ISSUER differs from the tokens' iss by a trailing slash; issuers are compared exactly"
    )


class TestSharedSecretMode:
    """Supabase's legacy HS256: only with AUTH_HS256_SECRET_ARN, then only HS256 and no JWKS at all."""

    @pytest.fixture
    def legacy(self, redeploy, aws) -> Iterator[ServedProvider]:
        served = ServedProvider(PROVIDERS["Supabase (legacy JWT secret)"])
        with served.identity.serving():
            deploy(served, redeploy)
            yield served

    def test_no_discovery_or_jwks_is_fetched(self, legacy, handler, stripe):
        response = handler.request(token=legacy.token(), accept="application/json")

        assert response["statusCode"] == 200
        portal_session(response, stripe)
        assert (legacy.identity.discovery_fetches, legacy.identity.jwks_fetches) == (0, 0)

    def test_the_secret_is_read_once_and_cached(self, legacy, handler, stripe):
        portal_session(handler.request(token=legacy.token(), accept="application/json"), stripe)
        client = boto3.client("secretsmanager", region_name="us-east-1")
        client.put_secret_value(
            SecretId="jwt-secret", SecretString="a-rotated-secret-that-is-40-characters!!"
        )

        response = handler.request(token=legacy.token(), accept="application/json")

        assert response["statusCode"] == 200
        portal_session(response, stripe)

    def test_the_secret_is_kept_five_minutes_not_the_parameters_default(
        self, legacy, env, handler, stripe, monkeypatch
    ):
        # Given Powertools' own default cache age set to one second (POWERTOOLS_PARAMETERS_MAX_AGE)
        monkeypatch.setenv("POWERTOOLS_PARAMETERS_MAX_AGE", "1")
        portal_session(handler.request(token=legacy.token(), accept="application/json"), stripe)
        old_token = legacy.token()
        boto3.client("secretsmanager", region_name="us-east-1").put_secret_value(
            SecretId="jwt-secret", SecretString="a-rotated-secret-that-is-40-characters!!"
        )

        # When more than that second has passed
        time.sleep(1.5)
        response = handler.request(token=old_token, accept="application/json")

        # Then the secret read first still verifies: it is kept for its own five minutes
        portal_session(response, stripe)

    @pytest.mark.parametrize("value", ["too-short-for-hs256", "   "])
    def test_an_unusable_secret_is_503_and_nothing_is_created(self, legacy, handler, stripe, aws, value):
        boto3.client("secretsmanager", region_name="us-east-1").put_secret_value(
            SecretId="jwt-secret", SecretString=value
        )

        response = handler.request(token=legacy.token(), accept="application/json")

        assert response["statusCode"] == 503
        assert problem(response)["code"] == "identity_provider_unavailable"
        assert stripe.requests() == []
        assert rows(aws) == []

    def test_a_missing_secret_is_503_not_500(self, legacy, redeploy, handler, stripe, caplog):
        redeploy(AUTH_HS256_SECRET_ARN="arn:aws:secretsmanager:us-east-1:123456789012:secret:nowhere-AbCdEf")

        response = handler.request(token=legacy.token(), accept="application/json")

        assert response["statusCode"] == 503
        assert problem(response)["code"] == "identity_provider_unavailable"
        assert problem(response)["detail"] == "the identity provider is unavailable; try again shortly"
        assert stripe.requests() == []
        [logged] = [record for record in caplog.records if record.levelname == "ERROR"]
        assert logged.getMessage() == "AUTH_HS256_SECRET_ARN could not be read from Secrets Manager"
        assert "ResourceNotFoundException" in logged.reason

    # The token for the short secret is made on purpose; PyJWT warns its maker, as it should.
    @pytest.mark.filterwarnings("ignore::jwt.warnings.InsecureKeyLengthWarning")
    @pytest.mark.parametrize(("length", "accepted"), [(32, True), (31, False)])
    def test_a_secret_of_32_bytes_is_long_enough_and_31_is_not(
        self, legacy, handler, stripe, aws, caplog, length, accepted
    ):
        legacy.identity.hs256_secret = "s" * length
        boto3.client("secretsmanager", region_name="us-east-1").put_secret_value(
            SecretId="jwt-secret", SecretString=legacy.identity.hs256_secret
        )

        response = handler.request(token=legacy.token(), accept="application/json")

        if accepted:
            portal_session(response, stripe)
            return
        assert response["statusCode"] == 503
        assert problem(response)["code"] == "identity_provider_unavailable"
        assert problem(response)["detail"] == "the identity provider is unavailable; try again shortly"
        [logged] = [record for record in caplog.records if record.levelname == "ERROR"]
        assert logged.getMessage() == (
            "AUTH_HS256_SECRET_ARN: the secret is shorter than 32 bytes; store the JWT secret exactly as "
            "the identity provider shows it"
        )
        assert rows(aws) == []

    def test_a_secrets_manager_that_cannot_be_reached_is_503_within_seconds(
        self, redeploy, handler, stripe, aws, silent_endpoint
    ):
        # Given a Secrets Manager endpoint whose connections are never accepted
        served = ServedProvider(PROVIDERS["Supabase (legacy JWT secret)"])
        with served.identity.serving():
            deploy(served, redeploy, AWS_ENDPOINT_URL_SECRETS_MANAGER=silent_endpoint)

            # When a token arrives
            started = time.monotonic()
            response = handler.request(token=served.token(), accept="application/json")

        # Then the user hears 503 after three connection attempts of 2 s each and their back-off (at most
        # 1 + 2 s), long before API Gateway's 30 s
        assert response["statusCode"] == 503
        assert problem(response)["code"] == "identity_provider_unavailable"
        assert 6.0 <= time.monotonic() - started < 11.0
        assert stripe.requests() == []
        assert rows(aws) == []

    def test_a_secrets_manager_that_fails_three_reads_is_503(self, redeploy, handler, stripe, aws):
        # Given a Secrets Manager that fails twice, then answers after 3.5 s (past the 3 s read timeout),
        # and would answer at once a fourth time
        served = ServedProvider(PROVIDERS["Supabase (legacy JWT secret)"])
        attempts: list[str | None] = []

        def three_failures(method: str, path: str, headers: dict[str, str], body: bytes) -> Reply:
            attempts.append(headers.get("x-amz-target"))
            if len(attempts) <= 2:
                failure = {"__type": "InternalServiceError", "message": "try again"}
                return Reply(
                    500, json.dumps(failure).encode(), [("Content-Type", "application/x-amz-json-1.1")]
                )
            if len(attempts) == 3:
                time.sleep(3.5)
            secret = {"Name": "jwt-secret", "SecretString": served.identity.hs256_secret, "VersionId": "v1"}
            return Reply(200, json.dumps(secret).encode(), [("Content-Type", "application/x-amz-json-1.1")])

        server = serve_in_background(three_failures, "secrets-manager")
        with served.identity.serving():
            deploy(
                served,
                redeploy,
                AWS_ENDPOINT_URL_SECRETS_MANAGER=f"http://127.0.0.1:{server.server_address[1]}",
            )

            # When a token arrives
            response = handler.request(token=served.token(), accept="application/json")
        server.stop()

        # Then the user hears 503 after the read and its two retries, not a fourth read
        assert response["statusCode"] == 503
        assert problem(response)["code"] == "identity_provider_unavailable"
        assert attempts == ["secretsmanager.GetSecretValue"] * 3
        assert stripe.requests() == []


def malformed_entries(identity: IdentityProvider) -> list[Any]:
    good = identity.jwks()["keys"][0]
    kid = identity.rsa_kid
    return [
        1,
        "a string",
        None,
        {**good, "kid": 5},
        {"kid": kid, "kty": "RSA", "e": "AQAB"},
        {**good, "n": "not base64url!"},
        {**good, "kty": "XYZ"},
        {**good, "alg": "none"},
        {"kid": kid, "kty": "EC", "crv": "P-256", "x": "AAAA", "y": "AAAA"},
        {**good, "use": "enc"},
    ]


UNKNOWN_KEY = (401, "the token was signed with an unknown key")
JWKS_DOCUMENTS: dict[str, tuple[Callable[[IdentityProvider], Any], tuple[int, str] | None]] = {
    "no keys": (lambda identity: {}, UNKNOWN_KEY),
    "keys that are not a list": (lambda identity: {"keys": {"kid": identity.rsa_kid}}, UNKNOWN_KEY),
    # One entry has the token's kid and a modulus that decodes to a key too weak for the token's signature.
    "only malformed entries": (
        lambda identity: {"keys": malformed_entries(identity)},
        (401, "the token is invalid"),
    ),
    "only malformed entries, none the token's": (
        lambda identity: {"keys": malformed_entries(identity)[:4]},
        UNKNOWN_KEY,
    ),
    "a symmetric key under the token's kid": (
        lambda identity: {
            "keys": [{"kid": identity.rsa_kid, "kty": "oct", "k": "c2VjcmV0LXNlY3JldC1zZWNyZXQ"}]
        },
        (401, "the token's algorithm does not match its key"),
    ),
    "malformed entries beside the good key": (
        lambda identity: {"keys": [*malformed_entries(identity), identity.jwks()["keys"][0]]},
        None,
    ),
    "a JSON array": (lambda identity: [identity.jwks()], (503, "did not return a JSON object")),
    # `use` is optional in a JWK: a key without it signs
    "a key without use": (
        lambda identity: {"keys": [{k: v for k, v in identity.jwks()["keys"][0].items() if k != "use"}]},
        None,
    ),
}


@pytest.mark.parametrize("name", JWKS_DOCUMENTS)
def test_a_malformed_jwks_refuses_tokens_without_a_500(handler, identity, stripe, monkeypatch, caplog, name):
    document, refusal = JWKS_DOCUMENTS[name]
    served = document(identity)
    monkeypatch.setattr(identity, "jwks", lambda: served)

    response = handler.request(token=identity.token("user-1"), accept="application/json")

    if refusal is None:
        portal_session(response, stripe)
        return
    status, detail = refusal
    assert response["statusCode"] == status, response["body"]
    body = problem(response)
    assert body["code"] == ("unauthenticated" if status == 401 else "identity_provider_unavailable")
    assert body["detail"].endswith(detail)
    assert stripe.requests() == []
    usable = [r for r in caplog.records if r.getMessage().startswith("the JWKS has no usable signing keys")]
    assert len(usable) == (1 if detail == UNKNOWN_KEY[1] else 0)
    for logged in usable:
        assert (
            logged.getMessage() == "the JWKS has no usable signing keys; every token is refused until it has"
        )
        assert logged.jwks_url == f"{identity.url}/.well-known/jwks.json"
        assert logged.expected == '{"keys": [{"kid": …, "kty": …}]}'


def test_a_key_below_2048_bits_is_refused(handler, identity, stripe, monkeypatch):
    weak = rsa.generate_private_key(public_exponent=65537, key_size=1024)  # noqa: S505 - the point of the test
    monkeypatch.setattr(identity, "rsa_key", weak)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", jwt.InsecureKeyLengthWarning)
        token = identity.token("user-1")

    response = handler.request(token=token, accept="application/json")

    assert response["statusCode"] == 401
    assert problem(response)["code"] == "unauthenticated"
    assert problem(response)["detail"] == "the token is invalid"
    assert stripe.requests() == []
