"""SnapStart priming: a client's first-call work (lazy imports, endpoint rules, response parsing), done
before the snapshot with answers given here, so that no request leaves the function and nothing is cached."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from botocore.awsrequest import AWSResponse, HTTPHeaders

_HOOK = "portal-links-priming"


@contextmanager
def answered_locally(client: Any, answer: dict[str, Any]) -> Iterator[None]:
    """Every call of this botocore client parses to `answer` and sends nothing (as botocore's Stubber)."""
    event = f"before-call.{client.meta.service_model.service_id.hyphenize()}"
    client.meta.events.register_first(
        event, lambda **_: (AWSResponse("", 200, HTTPHeaders(), None), answer), _HOOK
    )
    try:
        yield
    finally:
        client.meta.events.unregister(event, unique_id=_HOOK)
