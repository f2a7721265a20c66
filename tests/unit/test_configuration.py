"""A misconfigured deployment fails its cold start with a message naming the setting."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from portal_links.errors import ConfigurationError
from portal_links.settings import MissingCustomerPolicy, TokenUse

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize(
    ("overrides", "setting"),
    [
        ({"CUSTOMERS_TABLE": None}, "CUSTOMERS_TABLE"),
        ({"AUTH_ISSUER": None}, "AUTH_ISSUER"),
        ({"AUTH_ISSUER": "http://issuer.example.com"}, "AUTH_ISSUER"),
        ({"AUTH_AUDIENCE": ""}, "AUTH_AUDIENCE"),
        ({"AUTH_TOKEN_USE": "refresh"}, "AUTH_TOKEN_USE"),
        ({"AUTH_COOKIE_NAME": "bad name;"}, "AUTH_COOKIE_NAME"),
        ({"AUTH_JWKS_URL": "ftp://keys.example.com"}, "AUTH_JWKS_URL"),
        ({"AUTH_ISSUER": "https://example.auth0.com/.well-known/openid-configuration"}, "AUTH_ISSUER"),
        ({"AUTH_AUDIENCE": None, "AUTH_AUTHORIZED_PARTIES": " , "}, "AUTH_AUDIENCE"),
        (
            {"AUTH_TOKEN_USE": "access", "AUTH_AUDIENCE": None, "AUTH_AUTHORIZED_PARTIES": "x"},
            "AUTH_AUDIENCE",
        ),
        ({"AUTH_TOKEN_USE": "access", "AUTH_AUTHORIZED_PARTIES": "x"}, "AUTH_AUTHORIZED_PARTIES"),
        ({"AUTH_HS256_SECRET_ARN": "jwt-secret"}, "AUTH_HS256_SECRET_ARN"),
        (
            {
                "AUTH_HS256_SECRET_ARN": "arn:aws:secretsmanager:us-east-1:123456789012:secret:jwt-AbCdEf",
                "AUTH_JWKS_URL": "https://example.supabase.co/auth/v1/.well-known/jwks.json",
            },
            "AUTH_HS256_SECRET_ARN",
        ),
        ({"ALLOWED_ORIGINS": "https://app.example.com/path"}, "ALLOWED_ORIGINS"),
        ({"ALLOWED_ORIGINS": " , "}, "ALLOWED_ORIGINS"),
        ({"ALLOWED_ORIGINS": "http://app.example.com"}, "ALLOWED_ORIGINS"),
        ({"ALLOW_INSECURE_LOCALHOST": "yes"}, "ALLOW_INSECURE_LOCALHOST"),
        ({"DEFAULT_RETURN_URL": "https://elsewhere.example.com/account"}, "DEFAULT_RETURN_URL"),
        ({"SIGN_IN_URL": "http://app.example.com/sign-in"}, "SIGN_IN_URL"),
        ({"MISSING_CUSTOMER": "maybe"}, "MISSING_CUSTOMER"),
        ({"STRIPE_API_KEY": None}, "STRIPE_SECRET_ARN"),
        (
            {"STRIPE_SECRET_ARN": "arn:aws:secretsmanager:us-east-1:123456789012:secret:x"},
            "STRIPE_SECRET_ARN",
        ),
        ({"STRIPE_API_KEY": "pk_test_publishable"}, "STRIPE_API_KEY"),
        ({"STRIPE_TIMEOUT_SECONDS": "45"}, "STRIPE_TIMEOUT_SECONDS"),
        ({"STRIPE_TIMEOUT_SECONDS": "soon"}, "STRIPE_TIMEOUT_SECONDS"),
        ({"STRIPE_MAX_NETWORK_RETRIES": "0"}, "STRIPE_MAX_NETWORK_RETRIES"),
        ({"STRIPE_MAX_NETWORK_RETRIES": "2.5"}, "STRIPE_MAX_NETWORK_RETRIES"),
        ({"PORTAL_POLICY": "{", "PORTAL_POLICY_FILE": None}, "PORTAL_POLICY"),
        ({"PORTAL_POLICY": "{}", "PORTAL_POLICY_FILE": "portal-policy.json"}, "PORTAL_POLICY"),
        # A container's name for its host is as local as localhost, and as insecure: only when allowed.
        (
            {
                "AUTH_JWKS_URL": "http://host.docker.internal:3000/jwks.json",
                "ALLOW_INSECURE_LOCALHOST": None,
                "ALLOWED_ORIGINS": "https://app.example.com",
                "AUTH_ISSUER": "https://issuer.example.com",
            },
            "AUTH_JWKS_URL",
        ),
        ({"STRIPE_API_BASE": "http://stripe.example.com"}, "STRIPE_API_BASE"),
    ],
)
def test_bad_setting_fails_the_cold_start_naming_it(env, aws, overrides, setting):
    import portal_handler

    env(**overrides)
    portal_handler.portal.cache_clear()

    with pytest.raises(ConfigurationError) as raised:
        portal_handler.portal()

    assert raised.value.setting == setting
    assert str(raised.value).startswith(f"{setting}: ")


def test_defaults_are_sensible(env, aws):
    import portal_handler

    env(AUTH_TOKEN_USE=None, MISSING_CUSTOMER=None, AUTH_COOKIE_NAME=None)
    portal_handler.portal.cache_clear()

    service = portal_handler.portal().service

    settings = service._settings
    assert settings.missing_customer is MissingCustomerPolicy.CREATE
    assert settings.auth.token_use is TokenUse.ANY_OIDC
    assert settings.auth.cookie_name == "session"
    assert settings.stripe.max_network_retries == 2
    assert settings.stripe.timeout_seconds == 3.0
    assert settings.stripe.api_version == "2026-10-28.endive"


def test_neither_an_audience_nor_authorized_parties_is_refused_naming_both(env, aws):
    import portal_handler

    env(AUTH_AUDIENCE=None)
    portal_handler.portal.cache_clear()

    with pytest.raises(ConfigurationError, match="AUTH_AUTHORIZED_PARTIES"):
        portal_handler.portal()


def test_the_issuer_is_kept_exactly_as_configured(env, aws):
    import portal_handler

    env(AUTH_ISSUER="https://example.auth0.com/", AUTH_AUDIENCE=None, AUTH_AUTHORIZED_PARTIES=" a, b ,")
    portal_handler.portal.cache_clear()

    auth = portal_handler.portal()[0]._settings.auth
    assert auth.issuer == "https://example.auth0.com/"
    assert auth.audience is None
    assert auth.authorized_parties == frozenset({"a", "b"})


def test_importing_the_handler_with_a_bad_setting_fails_at_init(base_env):
    env = {**os.environ, **base_env, "ALLOWED_ORIGINS": "not-an-origin"}
    env["PYTHONPATH"] = os.pathsep.join(str(ROOT / p) for p in ("layers/shared", "functions/portal", "."))

    result = subprocess.run(
        [sys.executable, "-c", "import portal_handler"], env=env, capture_output=True, text=True, check=False
    )

    assert result.returncode != 0
    assert "ConfigurationError: ALLOWED_ORIGINS: 'not-an-origin' is not an origin" in result.stderr
