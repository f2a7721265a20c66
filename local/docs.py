"""The README tables that are derived from code: rendered here, and a test keeps the README equal to them.

`python -m local.docs` prints them, to paste when the tables change.
"""

from __future__ import annotations

from portal_links.flows import COMMON_PARAMETERS, FLOWS, Flow

PARAMETER_ORDER = ("subscription", "price", "quantity", "return_to", "locale")


def _parameters(names: frozenset[str]) -> str:
    ordered = [name for name in PARAMETER_ORDER if name in names] + sorted(names - set(PARAMETER_ORDER))
    return ", ".join(f"`{name}`" for name in ordered)


def _applies_to(flow: Flow) -> str:
    if flow.eligibility is None:
        return "—"
    states = ", ".join(sorted(flow.eligibility.statuses))
    extra = "" if flow.eligibility.already_canceling_qualifies else ", not already set to cancel"
    return f"{states}{extra} (else `{flow.eligibility.refusal.code}`)"


def flow_table() -> str:
    rows = [
        "| flow | button | route | the client may send | subscriptions it applies to | Stripe API |",
        "| --- | --- | --- | --- | --- | --- |",
        f"| portal homepage | Manage subscription | `/portal` | {_parameters(COMMON_PARAMETERS)} | — | any |",
    ]
    for flow in FLOWS.values():
        default = "" if flow.enabled_by_default else " (off by default)"
        since = f"≥ {flow.since_api_version}" if flow.since_api_version else "any"
        rows.append(
            f"| `{flow.name}`{default} | {flow.title} | `/portal/{flow.name}` "
            f"| {_parameters(flow.parameters)} | {_applies_to(flow)} | {since} |"
        )
    return "\n".join(rows) + "\n"


def webhook_table() -> str:
    from portal_links.webhooks import WEBHOOK_EVENTS

    rows = ["| event | what it does to the mapping |", "| --- | --- |"]
    rows += [f"| `{kind}` | {rule.summary} |" for kind, rule in WEBHOOK_EVENTS.items()]
    return "\n".join(rows) + "\n"


if __name__ == "__main__":
    print(flow_table(), webhook_table(), sep="\n", end="")
