"""Integration: DynamoDB from moto's server over HTTP, the Stripe emulator over HTTP."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import boto3
import pytest
from moto.server import ThreadedMotoServer

from tests.conftest import TABLE, Invoker, cold_started_handler


@pytest.fixture(scope="session")
def moto_server() -> Iterator[str]:
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()


@pytest.fixture
def dynamodb(env: Callable[..., None], moto_server: str, customers_table: dict[str, Any]) -> Iterator[Any]:
    env(AWS_ENDPOINT_URL_DYNAMODB=moto_server)
    client = boto3.client("dynamodb", region_name="us-east-1", endpoint_url=moto_server)
    client.create_table(**customers_table)
    yield client
    client.delete_table(TableName=TABLE)


@pytest.fixture
def handler(dynamodb: Any) -> Invoker:
    return cold_started_handler()
