"""`make dev`'s developer controls: what the Stripe Dashboard and Checkout would do, to watch the mapping.

Deleting a customer goes through Stripe's own API (`DELETE /v1/customers/{id}`), so the emulator emits
`customer.deleted` and delivers it, signed, to make dev's /stripe/webhook. Finishing a Checkout has no API
(the customer does it on Stripe's page), so the emulator does it directly, emitting its events the same way.
"""

from __future__ import annotations

from typing import Any

import stripe

from local.stripe_emulator import StripeEmulator

CHECKOUT_PRICE = "price_pro_monthly"  # the demo world's plan


class StripeDevTools:
    def __init__(self, emulator: StripeEmulator, dynamodb: Any, table: str, api_key: str) -> None:
        self._emulator = emulator
        self._dynamodb = dynamodb
        self._table = table
        self._api = stripe.StripeClient(api_key, base_addresses={"api": emulator.url})

    def delete_customer(self, subject_key: str) -> str:
        """Delete the subject's Stripe customer, as someone would in the Dashboard."""
        item = self._dynamodb.get_item(TableName=self._table, Key={"app_user_id": {"S": subject_key}}).get(
            "Item"
        )
        customer = (item or {}).get("stripe_customer_id", {}).get("S")
        if customer is None:
            return "no-customer"
        self._api.v1.customers.delete(customer)
        return "customer-deleted"

    def checkout(self, reference: str, email: str) -> str:
        """Subscribe as Stripe Checkout would, with `client_reference_id` naming the subject (the user's id,
        or `org:<organization id>`)."""
        self._emulator.complete_checkout(reference, CHECKOUT_PRICE, email=email)
        return "checkout-completed"

    def replay_events(self) -> str:
        """Deliver every event again, as the Dashboard's "Resend" does: the mapping must not change."""
        for event in self._emulator.events():
            self._emulator.resend(event["id"])
        return "events-replayed"
