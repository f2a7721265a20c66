"""The pages `make dev` serves around the API: the demo app with its buttons, its return page, and sign-in."""

from __future__ import annotations

from html import escape

from portal_links.flows import FLOWS

# What the app shows for each ?portal_error=<code> the API sends a browser back with.
ERROR_MESSAGES = {
    "no_subscription": "You have no subscription to change yet.",
    "subscription_ambiguous": "You have several subscriptions; choose the one you mean.",
    "subscription_not_cancelable": "This subscription cannot be canceled right now.",
    "subscription_not_updatable": "This subscription cannot be changed right now.",
    "subscription_unchanged": "That is already your plan.",
    "subscription_not_found": "We could not find that subscription.",
    "no_billing_account": "There is no billing account for you yet.",
    "unknown_flow": "That billing action is not available.",
    "not_found": "That billing link does not exist.",
    "csrf_rejected": "That request did not come from this app.",
    "organization_required": "Choose an organization first: its billing is managed per organization.",
    "billing_role_required": "Only your organization's billing admins can manage its subscription. "
    "Ask one of them.",
    "invalid_parameter": "Something in that request was not valid.",
    "unknown_parameter": "That request asked for something the app does not allow.",
    "stripe_unavailable": "Billing is briefly unavailable. Please try again in a moment.",
    "store_unavailable": "Billing is briefly unavailable. Please try again in a moment.",
    "identity_provider_unavailable": "Sign-in is briefly unavailable. Please try again in a moment.",
    "stripe_rejected": "Billing could not be opened. Please contact support.",
    "portal_not_configured": "Billing is not set up yet. Please contact support.",
    "internal_error": "Something went wrong on our side. Please try again.",
}
STYLE = (
    "<style>body{font-family:system-ui,sans-serif;max-width:44rem;margin:2.5rem auto;padding:0 1rem;"
    "color:#1a1a2e}form{display:inline-block;margin:.25rem .25rem .25rem 0}button{padding:.55rem 1rem;"
    "border-radius:.4rem;border:1px solid #635bff;background:#635bff;color:#fff;cursor:pointer}"
    "button.secondary{background:#fff;color:#635bff}.notice{padding:.75rem 1rem;border-radius:.4rem;"
    "background:#fff4e5;border:1px solid #f5a623}.ok{background:#e6f7ee;border-color:#2e9e5b}"
    "code{background:#f3f3f8;padding:.1rem .3rem;border-radius:.2rem}</style>"
)


def _page(title: str, body: str) -> str:
    return (
        f"<!doctype html><html lang='en'><head><meta charset='utf-8'><title>{escape(title)}</title>"
        f"{STYLE}</head><body>{body}</body></html>"
    )


def _button(
    action: str, label: str, return_to: str, test_id: str, extra: dict[str, str] | None = None
) -> str:
    fields = {"return_to": return_to, **(extra or {})}
    hidden = "".join(
        f"<input type='hidden' name='{escape(name)}' value='{escape(value)}'>"
        for name, value in fields.items()
    )
    return (
        f"<form method='post' action='{escape(action)}'>{hidden}"
        f"<button data-testid='{escape(test_id)}'>{escape(label)}</button></form>"
    )


DEV_NOTICES = {
    "customer-deleted": "Your Stripe customer was deleted, as in the Dashboard; the webhook unlinked it. "
    "The next click makes a new one.",
    "no-customer": "You have no Stripe customer yet.",
    "checkout-completed": "You subscribed through (emulated) Checkout; the webhook linked that customer.",
    "events-replayed": "Every event was delivered again; the mapping did not change.",
}


def _dev_tools(notice: str | None) -> str:
    """make dev only: what the Stripe Dashboard and Checkout would do, to watch the mapping stay true."""
    controls = (
        ("delete-customer", "Delete my Stripe customer"),
        ("checkout", "Subscribe through Checkout"),
        ("replay", "Replay every webhook event"),
    )
    forms = "".join(
        f"<form method='post' action='/dev/stripe/{name}'>"
        f"<button class='secondary' data-testid='dev:{name}'>{label}</button></form>"
        for name, label in controls
    )
    said = (
        f"<p class='notice ok' data-testid='dev-notice'>{escape(DEV_NOTICES[notice])}</p>"
        if notice in DEV_NOTICES
        else ""
    )
    return f"<h2>Developer tools <small>(make dev only)</small></h2>{said}<div>{forms}</div>"


def demo_page(
    origin: str,
    user: str | None,
    flows: dict[str, list[str]],
    *,
    dev_tools: bool = False,
    notice: str | None = None,
) -> str:
    """The app's billing page: a button per enabled flow (one per allow-listed price where it takes one)."""
    back = f"{origin}/app"
    if user:
        who = (
            f"<p>Signed in as <strong data-testid='user'>{escape(user)}</strong>. "
            "<form method='post' action='/dev/sign-out'>"
            "<button class='secondary'>Sign out</button></form></p>"
        )
    else:
        who = "<p data-testid='user'>Not signed in. <a href='/dev/sign-in?next=/'>Sign in</a></p>"
    buttons = [_button("/portal", "Manage subscription", back, "portal")]
    for flow, prices in flows.items():
        title = FLOWS[flow].title
        if "price" in FLOWS[flow].parameters:  # one button per allow-listed target price
            buttons.extend(
                _button(f"/portal/{flow}", f"{title}: {price}", back, f"{flow}:{price}", {"price": price})
                for price in prices
            )
        else:
            buttons.append(_button(f"/portal/{flow}", title, back, flow))
    script = """
<script>
document.getElementById('fetch-portal').addEventListener('click', async () => {
  const out = document.getElementById('fetch-result');
  const res = await fetch('/portal', {method: 'POST', credentials: 'same-origin',
    headers: {'Accept': 'application/json', 'Content-Type': 'application/json'},
    body: JSON.stringify({return_to: location.origin + '/app'})});
  const body = await res.json();
  if (res.ok) { location.assign(body.url); } else { out.textContent = body.code + ': ' + body.detail; }
});
</script>"""
    body = (
        "<h1>Acme SaaS <small>(Portal Links demo)</small></h1>"
        f"{who}<h2>Billing</h2><div>{''.join(buttons)}</div>"
        "<p><button id='fetch-portal' class='secondary' data-testid='fetch'>"
        "Open portal with fetch()</button> "
        "<span id='fetch-result' data-testid='fetch-result'></span></p>"
        f"{_dev_tools(notice) if dev_tools and user else ''}"
        '<p>From a terminal: <code>curl -i -X POST -H "Authorization: Bearer $(curl -s '
        f"'{escape(origin)}/dev/token?user=demo-user')\" {escape(origin)}/portal</code></p>{script}"
    )
    return _page("Acme SaaS — billing", body)


def app_page(error: str | None, done: str | None) -> str:
    if error:
        message = ERROR_MESSAGES.get(error, "Something went wrong.")
        notice = f"<p class='notice' data-testid='message' data-code='{escape(error)}'>{escape(message)}</p>"
    elif done:
        notice = f"<p class='notice ok' data-testid='message'>Done: {escape(done)}.</p>"
    else:
        notice = "<p class='notice ok' data-testid='message'>Welcome back from the billing portal.</p>"
    return _page(
        "Acme SaaS — account", f"<h1>Your account</h1>{notice}<p><a href='/'>Back to billing</a></p>"
    )


def sign_in_page(next_url: str, users: dict[str, str]) -> str:
    buttons = "".join(
        "<form method='post' action='/dev/sign-in'>"
        f"<input type='hidden' name='next' value='{escape(next_url)}'>"
        f"<input type='hidden' name='user' value='{escape(user)}'>"
        f"<button data-testid='sign-in:{escape(user)}'>{escape(label)}</button></form><br>"
        for user, label in users.items()
    )
    other = (
        "<form method='post' action='/dev/sign-in'>"
        f"<input type='hidden' name='next' value='{escape(next_url)}'>"
        "<input name='user' placeholder='any user id' required pattern='[A-Za-z0-9_.@-]{1,64}'> "
        "<button class='secondary'>Sign in</button></form>"
    )
    return _page(
        "Sign in (dev identity provider)", f"<h1>Sign in</h1><p>Pick a demo user:</p>{buttons}{other}"
    )
