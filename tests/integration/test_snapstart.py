"""SnapStart: priming before the snapshot sends nothing; after the restore, the first request works, opens its
own connections to DynamoDB, Secrets Manager and Stripe, and reads the key and the JWKS again."""

from __future__ import annotations

import contextlib
import socket
import socketserver
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any
from urllib.parse import urlsplit

import boto3
import pytest
import snapshot_restore_py

from tests.conftest import API_KEY, TABLE, link_customer

SECRET = "portal-links/snapstart-key"


class CountingRelay(socketserver.ThreadingTCPServer):
    """A TCP relay on 127.0.0.1 in front of a stand-in: it counts the connections clients open, and those
    the client closed before the server did (a dropped keep-alive connection)."""

    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, target: str) -> None:
        parts = urlsplit(target)
        self.target = (parts.hostname or "127.0.0.1", parts.port or 80)
        self.opened = 0
        self.closed_by_client = 0
        super().__init__(("127.0.0.1", 0), _Relay)
        threading.Thread(target=self.serve_forever, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


class _Relay(socketserver.BaseRequestHandler):
    server: CountingRelay

    def handle(self) -> None:
        self.server.opened += 1
        client_done, server_done = threading.Event(), threading.Event()
        with socket.create_connection(self.server.target) as upstream:
            back = threading.Thread(
                target=_pipe, args=(upstream, self.request, server_done, client_done), daemon=True
            )
            back.start()
            if _pipe(self.request, upstream, client_done, server_done):
                self.server.closed_by_client += 1
            back.join()


def _pipe(source: socket.socket, sink: socket.socket, done: threading.Event, other: threading.Event) -> bool:
    """Copy until `source` ends; True if it ended before the other direction did."""
    try:
        while data := source.recv(65536):
            sink.sendall(data)
    except OSError:
        pass
    first = not other.is_set()
    done.set()
    with contextlib.suppress(OSError):
        sink.shutdown(socket.SHUT_WR)
    return first


@pytest.fixture
def relays(moto_server: str, stripe: Any) -> Iterator[dict[str, CountingRelay]]:
    started = {
        "dynamodb": CountingRelay(moto_server),
        "secretsmanager": CountingRelay(moto_server),
        "stripe": CountingRelay(stripe.url),
    }
    yield started
    for relay in started.values():
        relay.shutdown()
        relay.server_close()


@pytest.fixture
def deployed(
    env: Callable[..., None], dynamodb: Any, moto_server: str, relays: dict[str, CountingRelay]
) -> Any:
    """The key in Secrets Manager; DynamoDB, Secrets Manager and Stripe reached through counting relays."""
    secrets = boto3.client("secretsmanager", region_name="us-east-1", endpoint_url=moto_server)
    arn = secrets.create_secret(Name=SECRET, SecretString=API_KEY)["ARN"]
    env(
        STRIPE_API_KEY=None,
        STRIPE_SECRET_ARN=arn,
        AWS_ENDPOINT_URL_DYNAMODB=relays["dynamodb"].url,
        AWS_ENDPOINT_URL_SECRETS_MANAGER=relays["secretsmanager"].url,
        STRIPE_API_BASE=relays["stripe"].url,
    )
    yield secrets
    secrets.delete_secret(SecretId=SECRET, ForceDeleteWithoutRecovery=True)


def snapshot_and_restore() -> None:
    """What the Lambda runtime does around a snapshot: before-snapshot hooks last-registered first, then
    after-restore hooks in registration order."""
    for hook, args, kwargs in reversed(snapshot_restore_py.get_before_snapshot()):
        hook(*args, **kwargs)
    for hook, args, kwargs in snapshot_restore_py.get_after_restore():
        hook(*args, **kwargs)


def click(handler: Any, token: str) -> dict[str, Any]:
    return handler.request(token=token, accept="application/json")  # type: ignore[no-any-return]


def test_the_first_request_after_a_restore_opens_its_own_connections(
    deployed, handler, relays, dynamodb, identity, stripe
):
    # Given a container that served two clicks, Stripe's over one kept-alive connection, the key read once
    customer = stripe.add_customer()
    link_customer(dynamodb, "user-1", customer)
    token = identity.token("user-1")
    assert click(handler, token)["statusCode"] == 200
    assert click(handler, token)["statusCode"] == 200
    assert (relays["stripe"].opened, relays["secretsmanager"].opened) == (1, 1)
    jwks_fetches, dynamodb_before = identity.jwks_fetches, relays["dynamodb"].opened

    # When it is primed, snapshotted and restored, and the key was rotated meanwhile
    snapshot_and_restore()
    deployed.put_secret_value(SecretId=SECRET, SecretString="sk_test_rotated_while_snapshotted")

    # Then priming sent nothing anywhere, and the restored copy dropped the connection it was snapshotted with
    assert connections_opened(relays) == {"dynamodb": dynamodb_before, "secretsmanager": 1, "stripe": 1}
    assert len(stripe.requests_to("POST", "/v1/billing_portal/sessions")) == 2
    assert stripe.requests_to("POST", "/v1/customers") == []
    assert len(dynamodb.scan(TableName=TABLE)["Items"]) == 1
    assert eventually(lambda: relays["stripe"].closed_by_client == 1)

    # And its first request works, on a new connection, with the key and the JWKS read again
    assert click(handler, token)["statusCode"] == 200
    assert (relays["stripe"].opened, relays["secretsmanager"].opened) == (2, 2)
    # moto's server closes every connection after its answer, so each GetItem shows as a new one here.
    assert relays["dynamodb"].opened == dynamodb_before + 1
    assert identity.jwks_fetches == jwks_fetches + 1
    assert len(stripe.requests_to("POST", "/v1/billing_portal/sessions")) == 3


def connections_opened(relays: dict[str, CountingRelay]) -> dict[str, int]:
    return {name: relay.opened for name, relay in relays.items()}


def eventually(condition: Callable[[], bool], seconds: float = 2.0) -> bool:
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.01)
    return True


def test_restored_copies_do_not_share_the_random_state(handler):
    import random

    # Two copies restored from one snapshot start from the same state; the hook reseeds each.
    snapshotted = random.getstate()
    snapshot_and_restore()
    one = random.getstate()
    random.setstate(snapshotted)
    snapshot_and_restore()

    assert random.getstate() not in (snapshotted, one)


def test_the_template_snapshots_published_versions_behind_the_alias_the_api_calls():
    from local.template import load_template

    function = load_template()["Resources"]["PortalFunction"]["Properties"]

    assert function["SnapStart"] == {"ApplyOn": "PublishedVersions"}
    # With AutoPublishAlias, SAM points every HttpApi event's integration and permission at the alias.
    assert function["AutoPublishAlias"]
    assert {event["Type"] for event in function["Events"].values()} == {"HttpApi"}
