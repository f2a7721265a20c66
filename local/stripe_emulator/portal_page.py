"""What a person sees at a session URL: the session the service asked for, and ways out."""

from __future__ import annotations

import html
from datetime import UTC, datetime
from urllib.parse import urlsplit

from local.stripe_emulator.state import StripeObject

EXPIRED = "<!doctype html><title>Session expired</title><h1>This portal session has expired</h1>"


def session_at(sessions: list[StripeObject], path: str) -> StripeObject | None:
    return next((s for s in sessions if urlsplit(s["url"]).path == path), None)


def _after_expiration(value: StripeObject | None) -> str:
    if value is None:
        return "—"
    expires_at = value["customer_login"]["expires_at"]
    until = (
        "" if expires_at is None else f" until {datetime.fromtimestamp(expires_at, UTC):%Y-%m-%d %H:%M} UTC"
    )
    return f"customer login{until}"


def portal_page(session: StripeObject | None) -> tuple[int, str]:
    if session is None:
        return 404, EXPIRED
    flow = session["flow"] or {}
    after = flow.get("after_completion") or {}
    subject = next((flow[k] for k in flow if k.startswith("subscription") and flow[k]), None) or {}
    rows = {
        "Customer": session["customer_account"] or session["customer"],
        "Flow": flow.get("type", "homepage"),
        "Subscription": subject.get("subscription", "—"),
        "After completion": (after.get("redirect") or {}).get("return_url") or after.get("type", "—"),
        "Return URL": session["return_url"] or "—",
        "Locale": session["locale"] or "auto",
        "Configuration": session["configuration"],
        "After expiration": _after_expiration(session.get("after_expiration")),
    }
    confirm = flow.get("subscription_update_confirm") or {}
    if confirm:
        [item] = confirm["items"]
        discounts = ", ".join(v for d in confirm.get("discounts") or [] for v in d.values())
        rows["Change to"] = f"{item.get('price', 'same price')}, quantity {item.get('quantity', 'unchanged')}"
        rows["Discount"] = discounts or "—"
    retention = (flow.get("subscription_cancel") or {}).get("retention")
    if retention:
        rows["Retention offer"] = retention["coupon_offer"]["coupon"]
    done = (after.get("redirect") or {}).get("return_url") or session["return_url"] or "#"
    table = "".join(
        f"<tr><th>{html.escape(k)}</th><td data-field='{html.escape(k)}'>{html.escape(str(v))}</td></tr>"
        for k, v in rows.items()
    )
    page = (
        "<!doctype html><html><head><meta charset='utf-8'><title>Customer portal (emulated)</title>"
        "<style>body{font-family:system-ui;margin:3rem auto;max-width:40rem}th{text-align:left;"
        "padding-right:1rem}a{display:inline-block;margin:1rem 1rem 0 0}</style></head><body>"
        "<h1>Customer portal <small>(Stripe emulator)</small></h1>"
        f"<table>{table}</table>"
        f"<a id='return' href='{html.escape(session['return_url'] or '#')}'>Return to the app</a>"
        f"<a id='complete' href='{html.escape(done)}'>Complete the flow</a></body></html>"
    )
    return 200, page
