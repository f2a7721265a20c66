"""POST /stripe/webhook: Stripe's events keep the customer mapping true; everything else is in the layer."""

from __future__ import annotations

from functools import cache
from typing import Any

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.utilities.typing import LambdaContext

from portal_links.composition import compose_webhooks
from portal_links.http import answer_webhook, contained
from portal_links.webhooks import WebhookService

logger = Logger()
metrics = Metrics()


@cache
def webhooks() -> WebhookService:
    return compose_webhooks()


webhooks()  # configuration errors fail the cold start, naming the setting


@contained
@logger.inject_lambda_context(correlation_id_path=correlation_paths.API_GATEWAY_HTTP)
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return answer_webhook(event, webhooks().handle, logger.get_correlation_id() or "")
