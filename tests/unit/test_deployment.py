"""What a team deploys agrees with the README: the parameters, `make deploy`, the API's protections."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path
from typing import Any

import pytest

from local.apigw import HttpApi
from local.deploy import SAMCONFIG, deploy_command
from local.server import Reply
from local.template import http_api_cors, http_api_routes, load_template
from tests.unit.test_readme_opening import make_dry_run

ROOT = Path(__file__).resolve().parents[2]
README = (ROOT / "README.md").read_text()
DEPLOY = README.split("\n## Deploy\n")[1].split("\n## ")[0]
TEMPLATE = load_template()
PARAMETERS = TEMPLATE["Parameters"]
APP = "https://app.example.com"


def documented_parameters() -> dict[str, str]:
    """parameter → its default as the README's parameter tables give it."""
    row = r"^\| `([A-Z][A-Za-z0-9]+)` \|(?: `[A-Z][A-Z_0-9]*` \|| — \|)? ([^|]+) \|"  # name, [env,] default
    rows = re.findall(row, DEPLOY, re.MULTILINE)
    return {name: default.strip() for name, default in rows}


def test_the_readme_documents_every_template_parameter_and_no_other():
    assert set(documented_parameters()) == set(PARAMETERS)


def test_the_readme_gives_each_parameters_default_and_marks_those_a_deploy_must_answer():
    required = {name for name, spec in PARAMETERS.items() if "Default" not in spec}
    documented = documented_parameters()

    assert {name for name, default in documented.items() if default == "—"} == required
    for name, default in documented.items():
        if default == "empty":
            assert PARAMETERS[name]["Default"] == "", name
        elif default.startswith("`"):
            assert default.split("`")[1] == str(PARAMETERS[name]["Default"]), name


def test_the_walkthroughs_saved_answers_are_the_required_parameters():
    [example] = re.findall(r"```toml\n(.*?)```", DEPLOY, re.S)
    answers = tomllib.loads(re.sub(r"^ {3}", "", example, flags=re.M))["default"]["deploy"]["parameters"]

    named = {answer.split("=", 1)[0] for answer in answers["parameter_overrides"]}
    # The example is a Cognito deployment: AuthAudience has a default (empty) but Cognito needs it.
    assert named == {name for name, spec in PARAMETERS.items() if "Default" not in spec} | {"AuthAudience"}
    for answer in answers["parameter_overrides"]:
        name, value = answer.split("=", 1)
        assert re.fullmatch(PARAMETERS[name].get("AllowedPattern", ".*"), value), answer


def test_make_deploy_builds_then_deploys():
    assert make_dry_run("deploy").splitlines()[-2:] == [
        ".venv/bin/sam build",
        ".venv/bin/python -m local.deploy",
    ]


def test_the_first_deploy_is_guided_and_later_ones_use_the_saved_answers(tmp_path):
    saved = tmp_path / "samconfig.toml"
    saved.write_text(
        SAMCONFIG.read_text() + 'parameter_overrides = "AuthIssuer=\\"https://issuer.example.com\\""\n'
    )

    assert deploy_command(SAMCONFIG) == ["sam", "deploy", "--guided"]  # the repository's: nothing saved
    assert deploy_command(tmp_path / "missing.toml") == ["sam", "deploy", "--guided"]
    assert deploy_command(saved) == ["sam", "deploy"]


def test_the_access_log_has_no_field_that_can_carry_a_token_or_a_portal_url():
    # Each $context variable here is set by API Gateway, not copied from the request: no path, query string,
    # header, cookie, user agent or authorizer claim, and the function's response body is never logged.
    safe = {
        "requestId",
        "requestTime",
        "httpMethod",
        "routeKey",
        "status",
        "protocol",
        "responseLength",
        "responseLatency",
        "integrationLatency",
        "integrationStatus",
        "integrationErrorMessage",
        "error.message",
        "error.responseType",
        "identity.sourceIp",
        "domainName",
    }
    log_format = TEMPLATE["Resources"]["PortalApi"]["Properties"]["AccessLogSettings"]["Format"]

    fields = re.findall(r'"(\w+)":"\$context\.([\w.]+)"', log_format)
    assert len(fields) == log_format.count("$")
    assert {variable for _, variable in fields} == safe


def test_a_fetch_caller_can_read_retry_after_across_origins():
    # The API as make dev puts it in front of the handler, from the template's CorsConfiguration.
    def unavailable(event: dict[str, Any]) -> dict[str, Any]:
        return {"statusCode": 503, "headers": {"Retry-After": "5"}, "body": "{}"}

    api = HttpApi(http_api_routes(), http_api_cors({"ALLOWED_ORIGINS": APP}), {"PortalFunction": unavailable})

    reply: Reply = api.answer("POST", "/portal", "", {"origin": APP}, b"")

    headers = {name.lower(): value for name, value in reply.headers}
    assert headers["retry-after"] == "5"
    assert "retry-after" in headers["access-control-expose-headers"].lower().split(",")


def test_the_api_is_throttled_and_the_function_optionally_capped_by_parameters():
    routes = TEMPLATE["Resources"]["PortalApi"]["Properties"]["DefaultRouteSettings"]
    function = TEMPLATE["Resources"]["PortalFunction"]["Properties"]

    assert routes == {
        "ThrottlingRateLimit": {"Ref": "ApiThrottlingRateLimit"},
        "ThrottlingBurstLimit": {"Ref": "ApiThrottlingBurstLimit"},
    }
    assert function["ReservedConcurrentExecutions"] == {
        "If": ["HasReservedConcurrency", {"Ref": "ReservedConcurrency"}, {"Ref": "AWS::NoValue"}]
    }
    assert PARAMETERS["ReservedConcurrency"]["Default"] == 0


@pytest.mark.parametrize("resource", ["ApiDomain", "ApiDomainMapping", "ApiDomainRecord"])
def test_the_custom_domain_exists_only_when_asked_for(resource):
    assert TEMPLATE["Resources"][resource]["Condition"] in ("HasCustomDomain", "HasHostedZone")
    assert PARAMETERS["ApiDomainName"]["Default"] == ""
