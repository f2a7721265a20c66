"""Organization mode in a real Chromium through `make dev ORGANIZATIONS=1`: Acme's admin opens Acme's portal,
a member without a billing role comes back with a readable message."""

from __future__ import annotations

import pytest

from tests.e2e.test_browser import portal_fields, stripe_get

pytestmark = pytest.mark.browser


def sign_in_as(page, server, user: str) -> None:
    page.goto(f"{server.origin}/dev/sign-in?next=/")
    page.get_by_test_id(f"sign-in:{user}").click()
    page.wait_for_url(f"{server.origin}/")
    assert page.get_by_test_id("user").inner_text() == user


def test_the_organizations_billing_admin_opens_the_organizations_portal(
    page, organizations_dev_server, output
):
    server = organizations_dev_server
    page.goto(f"{server.origin}/dev/sign-in?next=/")
    page.screenshot(path=output / "organizations-sign-in.png", full_page=True)
    sign_in_as(page, server, "acme-admin")

    page.get_by_test_id("subscription_cancel").click()

    # The portal is Acme's: its customer, its subscription
    fields = portal_fields(page, server)
    customer = stripe_get(server, f"/v1/customers/{fields['Customer']}")
    assert customer["metadata"]["app_org_id"] == "acme"
    [subscription] = stripe_get(server, f"/v1/subscriptions?customer={fields['Customer']}")["data"]
    assert fields["Subscription"] == subscription["id"]
    # and the demo policy's after_expiration reached it: an expired link can be recovered for a week
    assert fields["After expiration"].startswith("customer login until ")
    page.screenshot(path=output / "organizations-admin-portal.png", full_page=True)


def test_a_member_without_a_billing_role_comes_back_with_a_readable_message(
    page, organizations_dev_server, output
):
    server = organizations_dev_server
    sign_in_as(page, server, "acme-member")

    page.get_by_test_id("portal").click()

    page.wait_for_url(f"{server.origin}/app?portal_error=billing_role_required")
    message = page.get_by_test_id("message")
    assert message.get_attribute("data-code") == "billing_role_required"
    assert message.inner_text() == (
        "Only your organization's billing admins can manage its subscription. Ask one of them."
    )
    page.screenshot(path=output / "organizations-member-refused.png", full_page=True)


def test_a_user_without_an_organization_is_told_to_choose_one(page, organizations_dev_server):
    server = organizations_dev_server
    sign_in_as(page, server, "demo-user")

    page.get_by_test_id("portal").click()

    page.wait_for_url(f"{server.origin}/app?portal_error=organization_required")
    assert page.get_by_test_id("message").get_attribute("data-code") == "organization_required"
