"""Stripe API versions: from which one each optional session parameter exists, and how versions compare.

Read from the stripe-python wheels that first type each parameter (`stripe/_api_version.py` and
`stripe/params/...`); a flow's own first version is in its flow table entry.
"""

from __future__ import annotations

# `customer_account` (Accounts v2 used as customers) on portal sessions and subscription lists: 14.1.0.
ACCOUNTS_AS_CUSTOMERS = "2025-12-15.clover"
# `after_expiration` on portal sessions: 16.1.0 (absent in 16.0.0, 2026-09-30.endive).
AFTER_EXPIRATION = "2026-10-28.endive"


def has(pinned: str, since: str | None) -> bool:
    """Whether a request pinned to `pinned` may use what exists from `since` on (None: always).
    Stripe's versions sort by their date prefix (YYYY-MM-DD.name)."""
    return since is None or pinned[:10] >= since[:10]
