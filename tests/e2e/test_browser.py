"""A person's round trips through `make dev` in a real Chromium: sign in, every button, fetch(), errors."""

from __future__ import annotations

import json
import urllib.request

import pytest

from local.dev_env import DEV_STRIPE_KEY

pytestmark = pytest.mark.browser

SUBSCRIPTION_FLOWS = {
    "subscription_cancel",
    "subscription_update",
    "subscription_update_confirm",
    "subscription_pause",
}
BUTTONS = [
    ("payment_method_update", "payment_method_update"),
    ("subscription_cancel", "subscription_cancel"),
    ("subscription_update", "subscription_update"),
    ("subscription_update_confirm:price_pro_annual", "subscription_update_confirm"),
    ("customer_update", "customer_update"),
    ("subscription_pause", "subscription_pause"),
]


def stripe_get(dev_server, path: str):
    request = urllib.request.Request(
        f"{dev_server.stripe}{path}", headers={"Authorization": f"Bearer {DEV_STRIPE_KEY}"}
    )
    with urllib.request.urlopen(request, timeout=5) as response:
        return json.loads(response.read())


def sign_in(page, dev_server, user: str = "demo-user") -> None:
    page.goto(f"{dev_server.origin}/dev/sign-in?next=/")
    if user == "demo-user":
        page.get_by_test_id("sign-in:demo-user").click()
    else:
        page.get_by_placeholder("any user id").fill(user)
        page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(f"{dev_server.origin}/")
    assert page.get_by_test_id("user").inner_text() == user


def portal_fields(page, dev_server) -> dict[str, str]:
    page.wait_for_url(f"{dev_server.stripe}/p/session/**")
    cells = page.locator("td[data-field]")
    return {cells.nth(i).get_attribute("data-field"): cells.nth(i).inner_text() for i in range(cells.count())}


def test_signed_out_click_signs_in_and_comes_back_to_the_portal(page, dev_server, output):
    page.goto(f"{dev_server.origin}/")
    assert "Not signed in" in page.get_by_test_id("user").inner_text()
    page.screenshot(path=output / "demo-page-signed-out.png", full_page=True)

    page.get_by_test_id("portal").click()
    page.wait_for_url(f"{dev_server.origin}/dev/sign-in?**")
    page.get_by_test_id("sign-in:demo-user").click()
    page.wait_for_url(f"{dev_server.origin}/")
    page.screenshot(path=output / "demo-page.png", full_page=True)
    page.get_by_test_id("portal").click()

    fields = portal_fields(page, dev_server)
    assert fields["Flow"] == "homepage"
    assert fields["Customer"].startswith("cus_")
    assert fields["Return URL"] == f"{dev_server.origin}/app"
    page.screenshot(path=output / "portal-page.png", full_page=True)
    page.click("#return")
    page.wait_for_url(f"{dev_server.origin}/app")
    assert "Welcome back" in page.get_by_test_id("message").inner_text()


@pytest.mark.parametrize(("button", "flow"), BUTTONS)
def test_each_flow_button_opens_its_flow_for_the_users_subscription(page, dev_server, output, button, flow):
    sign_in(page, dev_server)

    page.get_by_test_id(button).click()

    fields = portal_fields(page, dev_server)
    assert fields["Flow"] == flow
    customer = fields["Customer"]
    [subscription] = stripe_get(dev_server, f"/v1/subscriptions?customer={customer}")["data"]
    expected_subscription = subscription["id"] if flow in SUBSCRIPTION_FLOWS else "—"
    assert fields["Subscription"] == expected_subscription
    if flow == "subscription_update_confirm":
        assert fields["Change to"] == "price_pro_annual, quantity 1"
        assert fields["Discount"] == "ANNUAL20"
    if flow == "subscription_cancel":
        assert fields["Retention offer"] == "STAY20"
    page.screenshot(path=output / f"portal-{flow}.png", full_page=True)


def test_completing_a_redirect_flow_lands_on_the_policy_target(page, dev_server):
    sign_in(page, dev_server)
    page.get_by_test_id("payment_method_update").click()
    fields = portal_fields(page, dev_server)
    assert fields["After completion"] == f"{dev_server.origin}/app?done=payment_method_update"

    page.click("#complete")

    page.wait_for_url(f"{dev_server.origin}/app?done=payment_method_update")
    assert page.get_by_test_id("message").inner_text() == "Done: payment_method_update."


def test_the_fetch_button_uses_json_and_navigates(page, dev_server):
    sign_in(page, dev_server)

    page.get_by_test_id("fetch").click()

    assert portal_fields(page, dev_server)["Flow"] == "homepage"


def test_a_first_time_user_gets_exactly_one_customer(page, dev_server):
    sign_in(page, dev_server, "first-timer")

    page.get_by_test_id("portal").click()
    first = portal_fields(page, dev_server)["Customer"]
    page.goto(f"{dev_server.origin}/")
    page.get_by_test_id("portal").click()
    second = portal_fields(page, dev_server)["Customer"]

    customers = stripe_get(dev_server, "/v1/customers?limit=100")["data"]
    mine = [c for c in customers if c["metadata"].get("app_user_id") == "first-timer"]
    assert [c["id"] for c in mine] == [first]
    assert second == first


def test_a_flow_that_cannot_apply_comes_back_with_a_readable_message(page, dev_server, output):
    sign_in(page, dev_server, "new-user")

    page.get_by_test_id("subscription_cancel").click()

    page.wait_for_url(f"{dev_server.origin}/app?portal_error=no_subscription")
    message = page.get_by_test_id("message")
    assert message.get_attribute("data-code") == "no_subscription"
    assert message.inner_text() == "You have no subscription to change yet."
    page.screenshot(path=output / "app-error.png", full_page=True)


def test_every_request_is_logged_in_one_line_without_portal_urls(dev_server):
    log = "\n".join(dev_server.output)

    assert "POST /portal 303 -> portal session" in log
    assert "/p/session/" not in log


def test_a_customer_deleted_in_stripe_heals_on_the_next_click(page, dev_server, output):
    # Given a user with a customer, who opens the portal once
    sign_in(page, dev_server, "healing-user")
    page.get_by_test_id("portal").click()
    first = portal_fields(page, dev_server)["Customer"]

    # When the customer is deleted at Stripe (the developer tool calls DELETE /v1/customers/{id})
    page.goto(f"{dev_server.origin}/")
    page.get_by_test_id("dev:delete-customer").click()
    page.wait_for_url(f"{dev_server.origin}/?dev=customer-deleted")
    assert "webhook unlinked it" in page.get_by_test_id("dev-notice").inner_text()
    page.screenshot(path=output / "dev-tools-customer-deleted.png", full_page=True)

    # Then the next click opens the portal for a new customer, linked in its place
    page.get_by_test_id("portal").click()
    second = portal_fields(page, dev_server)["Customer"]
    assert second.startswith("cus_")
    assert second != first
    customers = stripe_get(dev_server, "/v1/customers?limit=100")["data"]
    assert [c["id"] for c in customers if c["metadata"].get("app_user_id") == "healing-user"] == [second]
