"""A Stripe-compatible HTTP server for the endpoints Portal Links calls, on 127.0.0.1.

Split by job: `state` (objects, seeding), `params` (decoding, validation, errors), `resources`
(customers, products, prices, subscriptions), `billing_portal` (sessions and the API-version table),
`transport` (HTTP, authentication, idempotency, faults, recording), `portal_page` (the page at a session
URL), and `emulator` (the object tests hold). Run standalone: `python -m local.stripe_emulator --port 12111`.
"""

from local.stripe_emulator.emulator import StripeEmulator
from local.stripe_emulator.transport import RecordedRequest

__all__ = ["RecordedRequest", "StripeEmulator"]
