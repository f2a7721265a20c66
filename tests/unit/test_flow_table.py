"""The flow table is the one source: docs, events, the demo and the domain modules agree with it."""

from __future__ import annotations

import ast
import json
from pathlib import Path

import pytest

from local.demo import DEMO_POLICY
from local.docs import flow_table
from local.events import SPECS
from portal_links.flows import FLOWS
from portal_links.policy import FlowPolicy

ROOT = Path(__file__).resolve().parents[2]
DOMAIN = ROOT / "layers/shared/portal_links"


def test_the_readme_flow_table_is_rendered_from_the_flow_table():
    assert flow_table() in (ROOT / "README.md").read_text()


@pytest.mark.parametrize("name", FLOWS)
def test_every_flow_has_an_event_that_reaches_it(name):
    specs = [
        spec for spec in SPECS.values() if spec.path == f"/portal/{name}" and spec.expected_status == 303
    ]

    assert specs, f"events/: add a flow-{name.replace('_', '-')}.json spec in local/events.py"


def test_the_demo_policy_enables_every_flow():
    document = json.loads(DEMO_POLICY.read_text())

    assert set(document["flows"]) == set(FLOWS)
    assert all(flow.get("enabled", True) for flow in document["flows"].values())


@pytest.mark.parametrize("name", FLOWS)
def test_each_flow_builds_flow_data_of_its_own_type(name):
    flow = FLOWS[name]
    policy = FlowPolicy(enabled=True, prices={"price_b": None}, max_quantity=5)
    subscription = _subscription()

    change = flow.vetted(policy, {"price": "price_b"})

    data = flow.flow_data(policy, subscription if flow.needs_subscription else None, change)

    assert data["type"] == name


def test_each_flow_name_is_a_literal_in_one_domain_module_only():
    where: dict[str, set[str]] = {name: set() for name in FLOWS}
    for module in DOMAIN.glob("*.py"):
        for node in ast.walk(ast.parse(module.read_text())):
            if isinstance(node, ast.Constant) and isinstance(node.value, str):
                for name in FLOWS:
                    if name in node.value:
                        where[name].add(module.name)

    assert where == {name: {"flows.py"} for name in FLOWS}


def _subscription():
    from portal_links.stripe_gateway import Subscription, SubscriptionItem

    return Subscription(
        "sub_1", "cus_1", "active", False, (SubscriptionItem("si_1", "price_a", "prod_1", 1),)
    )


def test_the_emulator_knows_exactly_the_flow_types_of_the_table():
    from local.stripe_emulator.billing_portal import ADDED_IN

    assert {kind for added in ADDED_IN.values() for kind in added.flow_types} == set(FLOWS)


@pytest.mark.parametrize("name", FLOWS)
def test_the_emulator_gates_each_flow_on_the_version_the_table_names(name):
    from local.stripe_emulator.billing_portal import known_to

    since = FLOWS[name].since_api_version
    assert name in known_to(since or "2020-01-01").flow_types
    if since is not None:
        assert name not in known_to("2020-01-01").flow_types
        assert name not in known_to(_day_before(since)).flow_types


def _day_before(version: str) -> str:
    from datetime import date, timedelta

    return (date.fromisoformat(version[:10]) - timedelta(days=1)).isoformat()
