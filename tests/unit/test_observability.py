"""What the operator watches: the metrics the code emits, and the alarms and dashboard that read them."""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.conftest import link_customer


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
    records = emf_records(capsys.readouterr().out)
    [by_flow] = [record for record in records if "flow" in record]
    assert by_flow["flow"] == flow
    assert by_flow["PortalSessionsCreated"] == [1.0]
    assert by_flow["service"] == "portal-links"
    assert dimension_sets(by_flow) == [{"service", "flow"}]
    [batch] = [record for record in records if "flow" not in record]
    assert batch["PortalSessionsCreated"] == [1.0]
    assert dimension_sets(batch) == [{"service"}]
