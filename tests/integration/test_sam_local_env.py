"""The env file `make dev` writes for `sam local --env-vars` takes each events/ file to its documented status.

There is no Docker here, so SAM CLI's own code resolves the function's environment from template.yaml and the
file (declared variables only, the file over the template), and the handler runs in-process with exactly that
environment, the container's name for this machine turned back into 127.0.0.1.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from unittest import mock
from urllib.parse import urlsplit

import pytest

from local.dev_env import (
    CALLED_URLS,
    CONTAINER_HOST,
    DEV_TABLE,
    DEV_WEBHOOK_SECRET,
    SAM_FUNCTION,
    SAM_FUNCTIONS,
    write_sam_env_file,
)
from local.events import EVENTS_DIR, SPECS, route_for
from local.identity_provider import DEV_ISSUER
from local.stack import LocalStack, local_stack
from local.template import TEMPLATE, function_variables
from portal_links.settings import load_settings, load_webhook_settings
from tests.conftest import Invoker, cold_started_handler


def cold_started(function: str) -> Invoker:
    """The function's handler, its container state rebuilt from the current environment."""
    if function == SAM_FUNCTION:
        return cold_started_handler()
    import webhook_handler

    webhook_handler.webhooks.cache_clear()
    webhook_handler.webhooks()
    return Invoker(webhook_handler)


# SAM CLI's template validation warns about its own dependencies' deprecations.
pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


def sam_local_environment(env_file: Path, function: str) -> dict[str, str]:
    """What `sam local invoke --env-vars <env_file> --region us-east-1` sets in the function's container."""
    from samcli.commands.local.lib.local_lambda import LocalLambdaRunner
    from samcli.lib.providers.sam_function_provider import SamFunctionProvider
    from samcli.lib.providers.sam_stack_provider import SamLocalStackProvider

    # A shell without the stand-ins' settings: `sam local` would fill declared variables from it.
    shell = {name: os.environ[name] for name in ("PATH", "HOME") if name in os.environ}
    with mock.patch.dict(os.environ, shell, clear=True):
        stacks, _ = SamLocalStackProvider.get_stacks(str(TEMPLATE), parameter_overrides={})
        functions = SamFunctionProvider(stacks)
        runner = LocalLambdaRunner(
            local_runtime=None,
            function_provider=functions,
            cwd=str(TEMPLATE.parent),
            real_path=str(TEMPLATE.parent),
            aws_region="us-east-1",
            env_vars_values=json.loads(env_file.read_text()),
        )
        # The private step `sam local` takes to build a container's environment; no container is started.
        environment: dict[str, str] = runner._make_env_vars(functions.get(function)).resolve()
    return environment


@pytest.fixture(scope="module")
def dev_stack() -> Iterator[LocalStack]:
    """make dev's stand-ins, seeded; moto's state is per process, so its table goes when they stop."""
    with mock.patch.dict(os.environ), local_stack(DEV_ISSUER, serve_identity=True) as stack:
        yield stack
        stack.dynamodb.delete_table(TableName=DEV_TABLE)


@pytest.fixture(scope="module")
def env_file(dev_stack: LocalStack, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    path = tmp_path_factory.mktemp("sam-local") / "dev-env.json"
    write_sam_env_file(path, dev_stack.environment)
    return {"path": path, "document": json.loads(path.read_text())}


@pytest.fixture(scope="module")
def container(env_file: dict[str, Any]) -> dict[str, dict[str, str]]:
    """Each function's container environment, by its logical id."""
    return {function: sam_local_environment(env_file["path"], function) for function in SAM_FUNCTIONS}


def test_the_file_sets_only_variables_the_template_declares(env_file):
    assert tuple(env_file["document"]) == SAM_FUNCTIONS
    for function, values in env_file["document"].items():
        assert set(values) <= set(function_variables(function)), function  # `sam local` ignores any other


def test_the_stand_ins_are_named_as_a_container_sees_this_machine(env_file):
    values = env_file["document"][SAM_FUNCTION]

    for name in CALLED_URLS:
        assert urlsplit(values[name]).hostname == CONTAINER_HOST, name


def test_the_functions_start_with_the_containers_environment(container):
    settings = load_settings(container[SAM_FUNCTION])  # a cold start in the container: no setting is refused
    webhook = load_webhook_settings(container["WebhookFunction"])

    assert settings.stripe.api_base is not None
    assert urlsplit(settings.stripe.api_base).hostname == CONTAINER_HOST
    assert settings.stripe.secret_arn is None
    assert webhook.signing_secret == DEV_WEBHOOK_SECRET
    assert urlsplit(container["WebhookFunction"]["AWS_ENDPOINT_URL_DYNAMODB"]).hostname == CONTAINER_HOST


def test_every_event_gets_its_documented_status(container, dev_stack):
    answers = {}
    for name in sorted(SPECS):
        event = json.loads((EVENTS_DIR / name).read_text())
        # The route decides the function, and so the container's environment, as API Gateway does.
        route, _ = route_for(event["requestContext"]["http"]["method"], event["rawPath"])
        function = route.function if route else SAM_FUNCTION
        on_this_machine = {k: v.replace(CONTAINER_HOST, "127.0.0.1") for k, v in container[function].items()}
        with mock.patch.dict(os.environ, on_this_machine, clear=True):
            answers[name] = cold_started(function)(event)["statusCode"]

    assert answers == {name: spec.expected_status for name, spec in SPECS.items()}
    assert dev_stack.emulator is not None
    assert len(dev_stack.emulator.sessions()) == sum(
        1 for spec in SPECS.values() if spec.expected_status in (200, 303) and spec.user is not None
    )
