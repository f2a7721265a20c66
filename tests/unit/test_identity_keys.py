"""Where the issuer's signing keys come from and how long they are trusted, as production finds them:
discovery over https, a discovery document naming a bad jwks_uri, the refetch on an unknown key at most
once a minute, the refresh after a day, an issuer too slow to answer, and a JWKS too large to read."""

from __future__ import annotations

import datetime
import ipaddress
import json
import ssl
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from local.identity_provider import IdentityProvider
from local.server import LocalServer, Reply, serve_in_background
from tests.conftest import portal_session, problem, rows

DAY = 24 * 3600.0
JWKS_READ_LIMIT = 1_000_000


@dataclass(frozen=True)
class Certificates:
    ca: Path  # what the function is told to trust (SSL_CERT_FILE)
    server: ssl.SSLContext  # the issuer's side: a certificate for 127.0.0.1 that the CA signed


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


@pytest.fixture(scope="module")
def certificates(tmp_path_factory: pytest.TempPathFactory) -> Certificates:
    """A test CA, made here, and the certificate it signs for the local issuer."""
    folder = tmp_path_factory.mktemp("tls")
    now = datetime.datetime.now(datetime.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = (
        x509.CertificateBuilder()
        .subject_name(_name("Portal Links test CA"))
        .issuer_name(_name("Portal Links test CA"))
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=False,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    leaf = (
        x509.CertificateBuilder()
        .subject_name(_name("127.0.0.1"))
        .issuer_name(ca.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), False
        )
        .sign(ca_key, hashes.SHA256())
    )
    (folder / "ca.pem").write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    (folder / "server.pem").write_bytes(leaf.public_bytes(serialization.Encoding.PEM))
    (folder / "server.key").write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    server = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server.load_cert_chain(folder / "server.pem", folder / "server.key")
    return Certificates(folder / "ca.pem", server)


@pytest.fixture
def issuer(certificates: Certificates, redeploy, aws) -> Iterator[IdentityProvider]:
    """An issuer as production has one: https, keys found through discovery, its CA trusted by the system
    (SSL_CERT_FILE is where OpenSSL, and so urllib, looks for the trusted CAs)."""
    # A path ending in X: the discovery document's URL is built from it character for character.
    with IdentityProvider(issuer_path="/tenantX").serving(tls=certificates.server) as served:
        redeploy(AUTH_ISSUER=served.issuer, AUTH_AUDIENCE=served.audience, SSL_CERT_FILE=str(certificates.ca))
        yield served


@pytest.fixture
def clock(handler, issuer, monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """The container's clock for its key cache, moved by the test: `clock[0] += DAY` is a day later."""
    now = [1000.0]
    keys = handler.module.portal()[0]._authenticator._keys
    monkeypatch.setattr(keys, "_clock", lambda: now[0])
    return now


@contextmanager
def served_at(respond: Callable[[], bytes]) -> Iterator[str]:
    """A JWKS URL on a plain-http server answering `respond()`."""
    server: LocalServer = serve_in_background(lambda *_: Reply(200, respond()), "jwks")
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/jwks.json"
    finally:
        server.stop()


def assert_refused(response: dict[str, Any], status: int, code: str) -> dict[str, Any]:
    assert response["statusCode"] == status, response["body"]
    body = problem(response)
    assert body["code"] == code
    return body


class TestDiscoveryOverHttps:
    def test_a_token_reaches_the_portal_through_https_discovery(self, issuer, handler, stripe, aws):
        response = handler.request(token=issuer.token("user-1"), accept="application/json")

        portal_session(response, stripe)
        assert (issuer.discovery_fetches, issuer.jwks_fetches) == (1, 1)
        assert issuer.accepts == ["application/json", "application/json"]
        assert [row["app_user_id"]["S"] for row in rows(aws)] == ["user-1"]

    def test_a_local_http_issuer_may_keep_its_keys_on_https(
        self, issuer, redeploy, handler, stripe, aws, monkeypatch
    ):
        # Given a local issuer on plain http whose discovery document names the https server's JWKS
        with IdentityProvider().serving() as local:
            monkeypatch.setattr(issuer, "jwks", local.jwks)
            document = {**local.discovery(), "jwks_uri": f"{issuer.url}{issuer.jwks_path}"}
            monkeypatch.setattr(local, "discovery", lambda: document)
            redeploy(AUTH_ISSUER=local.issuer, AUTH_AUDIENCE=local.audience)

            response = handler.request(token=local.token("user-1"), accept="application/json")

        # Then the keys come over https, at least as safely as the document naming them
        portal_session(response, stripe)
        assert (local.discovery_fetches, local.jwks_fetches, issuer.jwks_fetches) == (1, 0, 1)
        assert [row["app_user_id"]["S"] for row in rows(aws)] == ["user-1"]

    def test_an_issuer_whose_certificate_is_not_trusted_is_503(
        self, issuer, handler, stripe, aws, monkeypatch
    ):
        monkeypatch.delenv("SSL_CERT_FILE")

        response = handler.request(token=issuer.token("user-1"), accept="application/json")

        body = assert_refused(response, 503, "identity_provider_unavailable")
        discovery = f"{issuer.issuer}/.well-known/openid-configuration"
        assert body["detail"] == f"could not fetch {discovery}: URLError"
        assert issuer.discovery_fetches == 0
        assert stripe.requests() == []
        assert rows(aws) == []


class TestBadJwksUri:
    @pytest.fixture(
        params=["a file: URL", "plain http", "not a URL", "a number", "null", "a list", "missing"],
    )
    def jwks_uri(self, request, issuer, tmp_path: Path) -> Iterator[Any]:
        """What the discovery document names; a URL of it would hold the issuer's very keys."""
        (tmp_path / "jwks.json").write_text(json.dumps(issuer.jwks()))
        if request.param == "plain http":
            with served_at(lambda: json.dumps(issuer.jwks()).encode()) as url:
                yield url
            return
        yield {
            "a file: URL": (tmp_path / "jwks.json").as_uri(),
            "not a URL": "jwks.json",
            "a number": 42,
            "null": None,
            "a list": [f"{issuer.url}/.well-known/jwks.json"],
            "missing": ...,
        }[request.param]

    def test_the_first_request_is_503_and_the_log_says_why(
        self, issuer, jwks_uri, handler, stripe, aws, monkeypatch, caplog
    ):
        document = {key: value for key, value in issuer.discovery().items() if key != "jwks_uri"}
        if jwks_uri is not ...:
            document["jwks_uri"] = jwks_uri
        monkeypatch.setattr(issuer, "discovery", lambda: document)

        response = handler.request(token=issuer.token("user-1"), accept="application/json")

        body = assert_refused(response, 503, "identity_provider_unavailable")
        assert body["detail"] == "the discovery document has no usable jwks_uri"
        assert issuer.jwks_fetches == 0
        [logged] = [r for r in caplog.records if r.levelname == "ERROR" and "jwks_uri" in r.getMessage()]
        assert logged.getMessage() == "the issuer's discovery document names no https jwks_uri"
        assert logged.jwks_uri == repr(None if jwks_uri is ... else jwks_uri)
        assert logged.discovery == f"{issuer.issuer}/.well-known/openid-configuration"
        assert stripe.requests() == []
        assert rows(aws) == []

    @pytest.mark.parametrize(
        ("named", "detail"),
        [
            (None, "the discovery document names no issuer"),
            ("https://issuer.example", "the issuer's discovery document names another issuer"),
        ],
    )
    def test_a_discovery_document_not_naming_its_issuer_is_503(
        self, issuer, handler, stripe, monkeypatch, named, detail
    ):
        document = {key: value for key, value in issuer.discovery().items() if key != "issuer"}
        if named is not None:
            document["issuer"] = named
        monkeypatch.setattr(issuer, "discovery", lambda: document)

        response = handler.request(token=issuer.token("user-1"), accept="application/json")

        body = assert_refused(response, 503, "identity_provider_unavailable")
        assert body["detail"] == detail
        assert issuer.jwks_fetches == 0
        assert stripe.requests() == []


class TestKeyCache:
    def test_an_unknown_key_is_looked_up_at_most_once_a_minute(self, issuer, clock, handler, stripe):
        portal_session(handler.request(token=issuer.token("user-1"), accept="application/json"), stripe)
        issuer.rotate()

        clock[0] += 59.9
        too_soon = handler.request(token=issuer.token("user-1"), accept="application/json")
        assert assert_refused(too_soon, 401, "unauthenticated")["detail"] == (
            "the token was signed with an unknown key"
        )
        assert issuer.jwks_fetches == 1

        clock[0] += 0.1
        a_minute_on = handler.request(token=issuer.token("user-1"), accept="application/json")
        portal_session(a_minute_on, stripe)
        assert issuer.jwks_fetches == 2

    def test_the_keys_are_fetched_again_after_a_day_so_a_withdrawn_key_stops_working(
        self, issuer, clock, handler, stripe
    ):
        # Given a token signed with the key the container cached
        old_token = issuer.token("user-1")
        portal_session(handler.request(token=old_token, accept="application/json"), stripe)
        # And the issuer withdrew that key and signs with a new one now
        issuer.rotate()

        # When exactly a day has passed, the cached keys still serve
        clock[0] += DAY
        portal_session(handler.request(token=old_token, accept="application/json"), stripe)
        assert issuer.jwks_fetches == 1

        # Then a moment later they are fetched again: the withdrawn key is refused, the new one works
        clock[0] += 1
        refused = handler.request(token=old_token, accept="application/json")
        assert assert_refused(refused, 401, "unauthenticated")["detail"] == (
            "the token was signed with an unknown key"
        )
        assert issuer.jwks_fetches == 2
        portal_session(handler.request(token=issuer.token("user-1"), accept="application/json"), stripe)
        assert (issuer.discovery_fetches, issuer.jwks_fetches) == (1, 2)  # where the keys are is kept


class TestJwksEndpoint:
    """A JWKS at AUTH_JWKS_URL that answers slowly, or too much."""

    def test_an_issuer_slower_than_the_fetch_timeout_is_503_without_waiting_for_it(
        self, redeploy, handler, identity, stripe, aws
    ):
        def slowly() -> bytes:
            time.sleep(6)
            return json.dumps(identity.jwks()).encode()

        with served_at(slowly) as url:
            redeploy(AUTH_JWKS_URL=url)
            started = time.monotonic()

            response = handler.request(token=identity.token("user-1"), accept="application/json")

            assert time.monotonic() - started < 5
        assert assert_refused(response, 503, "identity_provider_unavailable")["detail"] == (
            f"could not fetch {url}: TimeoutError"
        )
        assert stripe.requests() == []
        assert rows(aws) == []

    @pytest.mark.parametrize(("size", "accepted"), [(JWKS_READ_LIMIT, True), (JWKS_READ_LIMIT + 1, False)])
    def test_a_jwks_is_read_up_to_a_million_bytes(self, redeploy, handler, identity, stripe, size, accepted):
        document = json.dumps(identity.jwks())
        padded = (document[:-1] + " " * (size - len(document)) + "}").encode()

        with served_at(lambda: padded) as url:
            redeploy(AUTH_JWKS_URL=url)
            response = handler.request(token=identity.token("user-1"), accept="application/json")

        if accepted:
            portal_session(response, stripe)
        else:
            assert_refused(response, 503, "identity_provider_unavailable")
            assert stripe.requests() == []


class TestIssuerSetting:
    """Issuers are compared exactly; when only a trailing slash differs, the log names the fix."""

    @pytest.fixture(
        params=[("/tenantX", "/tenantX/"), ("/tenantX/", "/tenantX")], ids=["slash added", "removed"]
    )
    def off_by_a_slash(self, request, redeploy, aws) -> Iterator[IdentityProvider]:
        configured, issued = request.param
        with IdentityProvider(issuer_path=issued).serving() as served:
            redeploy(
                AUTH_ISSUER=served.url + configured,
                AUTH_AUDIENCE=served.audience,
                AUTH_JWKS_URL=served.url + served.jwks_path,
            )
            yield served

    def test_a_token_whose_iss_differs_by_a_slash_is_refused_and_the_log_says_what_to_set(
        self, off_by_a_slash, handler, stripe, caplog
    ):
        response = handler.request(token=off_by_a_slash.token("user-1"), accept="application/json")

        assert (
            assert_refused(response, 401, "unauthenticated")["detail"] == "the token is from another issuer"
        )
        [logged] = [record for record in caplog.records if hasattr(record, "fix")]
        assert logged.getMessage() == (
            "AUTH_ISSUER differs from the tokens' iss by a trailing slash; issuers are compared exactly"
        )
        assert logged.fix == f"set AUTH_ISSUER to exactly {off_by_a_slash.issuer!r}"
        assert logged.configured != off_by_a_slash.issuer
        assert logged.configured.rstrip("/") == off_by_a_slash.issuer.rstrip("/")
        assert stripe.requests() == []

    def test_a_token_from_another_issuer_gets_no_such_hint(self, off_by_a_slash, handler, caplog):
        token = off_by_a_slash.token("user-1", iss="https://attacker.example/tenantX/")

        response = handler.request(token=token, accept="application/json")

        assert (
            assert_refused(response, 401, "unauthenticated")["detail"] == "the token is from another issuer"
        )
        assert not [record for record in caplog.records if hasattr(record, "fix")]
