"""Every error code the server can answer is in the README (its table, its TypeScript) and the demo app."""

from __future__ import annotations

import re
from pathlib import Path

from local.demo_page import ERROR_MESSAGES
from portal_links.errors import PortalError, WebhookRefused
from portal_links.flows import FLOWS
from portal_links.http import error_entry

ROOT = Path(__file__).resolve().parents[2]
README = (ROOT / "README.md").read_text()


def error_kinds() -> dict[str, type[PortalError]]:
    """Every PortalError class that names its own code (PortalError itself is the internal error)."""
    kinds: list[type[PortalError]] = [PortalError]
    for kind in kinds:
        kinds.extend(kind.__subclasses__())
    return {kind.code: kind for kind in kinds if "code" in vars(kind)}


def portal_kinds() -> dict[str, type[PortalError]]:
    """The codes a portal client (a browser or fetch()) can get; webhook refusals only ever go to Stripe."""
    return {code: kind for code, kind in error_kinds().items() if not issubclass(kind, WebhookRefused)}


def test_the_readme_error_table_lists_every_code_with_its_status():
    section = README.split("\n## Errors\n")[1].split("\n## ")[0]
    documented = re.findall(r"^\| (\d{3}) \| `([a-z_]+)` \|", section, re.MULTILINE)

    assert {code: int(status) for status, code in documented} == {
        code: error_entry(kind("x")).status for code, kind in error_kinds().items()
    }


def test_the_demo_app_has_a_message_for_every_code_a_browser_can_come_back_with():
    # A browser without a valid sign-in goes to the sign-in page, never back with ?portal_error=.
    assert set(ERROR_MESSAGES) == set(portal_kinds()) - {"unauthenticated"}


def typescript_union(name: str) -> set[str]:
    """The string literals of `export type <name> = "a" | "b" …;` in the README's TypeScript helper."""
    [union] = re.findall(rf"^export type {name} =(.*?);$", README, re.MULTILINE | re.DOTALL)
    return set(re.findall(r'"([a-z_]+)"', union))


def test_the_typescript_helpers_error_codes_are_the_servers():
    assert typescript_union("PortalErrorCode") == set(portal_kinds())


def test_the_typescript_helpers_flows_and_parameters_are_the_flow_tables():
    [params] = re.findall(r"^export interface PortalParams \{(.*?)^\}", README, re.MULTILINE | re.DOTALL)

    assert typescript_union("PortalFlow") == set(FLOWS)
    assert set(re.findall(r"^  (\w+)\?:", params, re.MULTILINE)) == {
        name for flow in FLOWS.values() for name in flow.parameters
    }
