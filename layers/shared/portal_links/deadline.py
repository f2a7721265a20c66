"""One request's time budget, carried to every outside call so the user gets a 503, never a gateway timeout.

API Gateway gives up at 30 s and the function at its timeout; a request may make several Stripe calls,
each with retries. The pipeline starts the deadline; the Stripe gateway sizes every attempt to what is
left and stops retrying when nothing is.
"""

from __future__ import annotations

import time
from collections.abc import Callable

# Room kept before the function's own timeout for answering and flushing logs and metrics.
ANSWER_MARGIN_SECONDS = 1.5


class Deadline:
    def __init__(self, budget_seconds: float, clock: Callable[[], float] = time.monotonic) -> None:
        self._budget = budget_seconds
        self._clock = clock
        self._ends_at: float | None = None

    def start(self, time_left_seconds: float | None = None) -> None:
        """A new request begins; `time_left_seconds` is what the Lambda runtime still allows, if known."""
        budget = self._budget
        if time_left_seconds is not None:
            budget = min(budget, time_left_seconds - ANSWER_MARGIN_SECONDS)
        self._ends_at = self._clock() + max(budget, 0.0)

    def remaining(self) -> float:
        """Seconds left; without a started request, the whole budget."""
        if self._ends_at is None:
            return self._budget
        return max(self._ends_at - self._clock(), 0.0)
