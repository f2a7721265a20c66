"""What the operator watches: the metrics the code emits, and the alarms and dashboard that read them."""

from __future__ import annotations

import ast
import json
import re
from pathlib import Path
from typing import Any

import pytest

from local.template import load_template
from portal_links.http import ERRORS
from tests.conftest import TABLE, link_customer, portal_session

ROOT = Path(__file__).resolve().parents[2]
TEMPLATE = load_template()


def emf_records(printed: str) -> list[dict[str, Any]]:
    """The CloudWatch embedded-metric-format records among the lines the function printed."""
    records = []
    for line in printed.splitlines():
        if line.startswith("{") and '"_aws"' in line:
            records.append(json.loads(line))
    return records


def dimension_sets(record: dict[str, Any]) -> list[set[str]]:
    return [set(names) for names in record["_aws"]["CloudWatchMetrics"][0]["Dimensions"]]


@pytest.mark.parametrize(
    ("path", "flow"),
    [("/portal", "homepage"), ("/portal/payment_method_update", "payment_method_update")],
)
def test_each_session_is_counted_by_its_flow(handler, identity, stripe, aws, capsys, path, flow):
    link_customer(aws, "user-1", stripe.add_customer())
    capsys.readouterr()

    response = handler.request(path=path, token=identity.token("user-1"))

    assert response["statusCode"] == 303
    portal_session(response, stripe)
    records = emf_records(capsys.readouterr().out)
    [by_flow] = [record for record in records if "flow" in record]
    assert by_flow["flow"] == flow
    assert by_flow["PortalSessionsCreated"] == [1.0]
    assert by_flow["service"] == "portal-links"
    assert dimension_sets(by_flow) == [{"service", "flow"}]
    [batch] = [record for record in records if "flow" not in record]
    assert batch["PortalSessionsCreated"] == [1.0]
    assert dimension_sets(batch) == [{"service"}]


# What AWS publishes for the resources the template names (API Gateway's HTTP API metrics, by ApiId; Lambda's,
# by FunctionName), from their documentation; our own metrics must be ones the code emits.
AWS_METRICS = {
    "AWS/ApiGateway": ({"4xx", "5xx", "Count", "Latency", "IntegrationLatency", "DataProcessed"}, "ApiId"),
    "AWS/Lambda": (
        {"Throttles", "Errors", "Invocations", "Duration", "ConcurrentExecutions"},
        "FunctionName",
    ),
}
AWS_RESOURCES = {"ApiId": "PortalApi", "FunctionName": "PortalFunction"}
CODE = [ROOT / "layers/shared/portal_links", ROOT / "functions/portal"]
# A dashboard's SEARCH('{Namespace,dim,dim} MetricName="Name" dim="value"', 'Sum', 300)
SEARCH = re.compile(
    r"SEARCH\('\{(?P<ns>[^,}]+),(?P<dims>[^}]*)\} MetricName=\"(?P<name>\w+)\"(?P<rest>[^']*)'.*"
)


def written_as(reference: str) -> tuple[Any, ...]:
    """A reference as an alarm writes it (`!Ref`) and as the dashboard's `!Sub` does."""
    return ({"Ref": reference}, "${" + reference + "}")


def emitted_by_the_code() -> set[tuple[str, frozenset[str]]]:
    """(metric, dimension names) for every metric the code adds: by name in the source, and the error table's.

    Powertools adds the `service` dimension to each; a metric added on a receiver that also gets
    `add_dimension(name=...)` in the same function carries that dimension too.
    """
    emitted = {(entry.metric, frozenset({"service"})) for entry in ERRORS.values() if entry.metric}
    for source in (path for folder in CODE for path in folder.glob("*.py")):
        for function in ast.walk(ast.parse(source.read_text())):
            if not isinstance(function, ast.FunctionDef):
                continue
            calls = [node for node in ast.walk(function) if isinstance(node, ast.Call)]
            for call in calls:
                name = _keyword(call, "add_metric", "name")
                if name is None:
                    continue
                receiver = ast.unparse(call.func.value)  # type: ignore[attr-defined]
                dimensions = {
                    dimension
                    for other in calls
                    if (dimension := _keyword(other, "add_dimension", "name")) is not None
                    and ast.unparse(other.func.value) == receiver  # type: ignore[attr-defined]
                }
                emitted.add((name, frozenset({"service", *dimensions})))
    return emitted


def _keyword(call: ast.Call, method: str, keyword: str) -> str | None:
    if not (isinstance(call.func, ast.Attribute) and call.func.attr == method):
        return None
    for argument in call.keywords:
        if argument.arg == keyword and isinstance(argument.value, ast.Constant):
            return str(argument.value.value)
    return None


def alarm_metrics() -> dict[str, tuple[str, str, dict[str, Any]]]:
    """alarm → (namespace, metric, {dimension: value as the template writes it})."""
    return {
        name: (
            resource["Properties"]["Namespace"],
            resource["Properties"]["MetricName"],
            {d["Name"]: d["Value"] for d in resource["Properties"]["Dimensions"]},
        )
        for name, resource in TEMPLATE["Resources"].items()
        if resource["Type"] == "AWS::CloudWatch::Alarm"
    }


def dashboard_metrics() -> list[tuple[str, str, dict[str, Any]]]:
    """Every metric a dashboard widget graphs, SEARCH expressions included, its ${...} left as written."""
    [dashboard] = [r for r in TEMPLATE["Resources"].values() if r["Type"] == "AWS::CloudWatch::Dashboard"]
    body = json.loads(dashboard["Properties"]["DashboardBody"]["Sub"])
    found = []
    for widget in body["widgets"]:
        for line in widget["properties"]["metrics"]:
            if isinstance(line[0], dict):
                query = SEARCH.fullmatch(line[0]["expression"])
                assert query is not None, line
                filters = dict(re.findall(r'(\w+)="([^"]*)"', query["rest"]))
                dimensions = {d: filters.get(d, "*") for d in query["dims"].split(",")}
                found.append((query["ns"], query["name"], dimensions))
            else:
                namespace, metric, *pairs = [part for part in line if not isinstance(part, dict)]
                found.append((namespace, metric, dict(zip(pairs[::2], pairs[1::2], strict=True))))
    return found


def assert_names_an_emitted_metric(namespace: str, metric: str, dimensions: dict[str, Any]) -> None:
    variables = TEMPLATE["Globals"]["Function"]["Environment"]["Variables"]
    if namespace in AWS_METRICS:
        metrics, dimension = AWS_METRICS[namespace]
        assert metric in metrics
        assert set(dimensions) == {dimension}
        assert dimensions[dimension] in written_as(AWS_RESOURCES[dimension])
        return
    assert namespace == variables["POWERTOOLS_METRICS_NAMESPACE"]
    assert (metric, frozenset(dimensions)) in emitted_by_the_code()
    service = variables["POWERTOOLS_SERVICE_NAME"]
    assert dimensions["service"] in written_as(service["Ref"])


def test_the_code_emits_the_metrics_the_readme_names():
    names = {name for name, _ in emitted_by_the_code()}

    assert names == {
        "PortalSessionsCreated",
        "CustomersCreated",
        "CustomersRecovered",
        "StaleCustomersReplaced",
        "AuthFailures",
        "UpstreamErrors",
        "InternalErrors",
        "MappingConflicts",
        "WebhookEvents",
        "WebhookSignatureFailures",
    }
    assert ("PortalSessionsCreated", frozenset({"service", "flow"})) in emitted_by_the_code()
    assert ("WebhookEvents", frozenset({"service", "action"})) in emitted_by_the_code()


@pytest.mark.parametrize("alarm", sorted(alarm_metrics()))
def test_every_alarm_names_a_metric_that_is_emitted(alarm):
    assert_names_an_emitted_metric(*alarm_metrics()[alarm])


def test_every_dashboard_graph_names_a_metric_that_is_emitted():
    graphed = dashboard_metrics()

    assert ("PortalLinks", "PortalSessionsCreated", {"flow": "*", "service": "${AWS::StackName}"}) in graphed
    for metric in graphed:
        assert_names_an_emitted_metric(*metric)


def test_the_alarms_cover_what_the_operator_must_hear_about():
    watched = {metric for _, metric, _ in alarm_metrics().values()}

    assert watched == {"5xx", "UpstreamErrors", "Throttles", "AuthFailures", "Latency"}


def test_every_alarm_notifies_the_alarm_topic_when_one_is_configured():
    target = {"If": ["HasAlarmTopicArn", {"Ref": "AlarmTopicArn"}, {"Ref": "AlarmTopic"}]}
    for name in alarm_metrics():
        actions = TEMPLATE["Resources"][name]["Properties"]["AlarmActions"]
        assert actions == {"If": ["NotifiesAlarms", [target], {"Ref": "AWS::NoValue"}]}, name


def _stripe_fails(handler, identity, stripe, aws):
    link_customer(aws, "user-1", stripe.add_customer())
    stripe.inject_fault("POST", "/v1/billing_portal/sessions", 503, times=3)
    return handler.request(token=identity.token("user-1"), accept="application/json")


def _stripe_refuses(handler, identity, stripe, aws):
    link_customer(aws, "user-1", stripe.add_customer())
    stripe.inject_fault("POST", "/v1/billing_portal/sessions", 400, error_type="invalid_request_error")
    return handler.request(token=identity.token("user-1"), accept="application/json")


def _no_token(handler, identity, stripe, aws):
    return handler.request(accept="application/json")


def _corrupted_row(handler, identity, stripe, aws):
    aws.put_item(TableName=TABLE, Item={"app_user_id": {"S": "user-1"}})  # no customer, no reservation
    return handler.request(token=identity.token("user-1"), accept="application/json")


# scenario: (status, the log line, its level, the metric counted or None)
FAILURES = {
    "Stripe unavailable": (_stripe_fails, 503, "dependency unavailable", "WARNING", "UpstreamErrors"),
    "Stripe refuses": (_stripe_refuses, 502, "payment provider refused", "ERROR", None),
    "no token": (_no_token, 401, "request not authenticated", "INFO", "AuthFailures"),
    "a bug": (_corrupted_row, 500, "unexpected error", "ERROR", "InternalErrors"),
}


@pytest.mark.parametrize("failure", FAILURES)
def test_each_failure_is_logged_at_its_level_and_counted(
    handler, identity, stripe, aws, capsys, caplog, failure
):
    given, status, message, level, metric = FAILURES[failure]
    capsys.readouterr()

    response = given(handler, identity, stripe, aws)

    assert response["statusCode"] == status
    [logged] = [record for record in caplog.records if record.getMessage() == message]
    assert logged.levelname == level
    # a bug's line carries its traceback for the operator (never the client); a refusal's, its reason
    if status == 500:
        assert logged.exc_info is not None
        assert isinstance(logged.exc_info[1], KeyError)
    else:
        assert (logged.exc_info, logged.code) == (None, json.loads(response["body"])["code"])
    if metric is not None:
        [record] = [record for record in emf_records(capsys.readouterr().out) if metric in record]
        assert record[metric] == [1.0]
        assert {"Name": metric, "Unit": "Count"} in record["_aws"]["CloudWatchMetrics"][0]["Metrics"]
