"""POST /stripe/webhook: Stripe's events keep the customer mapping true; everything else is in the layer."""

from __future__ import annotations

from functools import cache
from typing import TYPE_CHECKING, Any

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.logging import correlation_paths
from snapshot_restore_py import register_after_restore

from portal_links.composition import Webhooks, compose_webhooks
from portal_links.http import answer_webhook, contained

if TYPE_CHECKING:
    from aws_lambda_powertools.utilities.typing import LambdaContext

logger = Logger()
metrics = Metrics()


@cache
def webhooks() -> Webhooks:
    return compose_webhooks()


def after_restore() -> None:
    webhooks().after_restore()


webhooks()  # configuration errors fail the cold start, naming the setting
register_after_restore(after_restore)  # SnapStart: restored copies open their own connections


@contained
@logger.inject_lambda_context(correlation_id_path=correlation_paths.API_GATEWAY_HTTP)
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return answer_webhook(event, webhooks().service.handle, logger.get_correlation_id() or "")
