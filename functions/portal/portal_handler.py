"""GET|POST /portal and /portal/{flow}: routes wired to the portal pipeline; the rest is in the layer."""

from __future__ import annotations

from functools import cache
from typing import Any

from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.event_handler import APIGatewayHttpResolver, Response
from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.utilities.typing import LambdaContext

from portal_links.composition import compose_portal
from portal_links.http import PortalHttp, contained
from portal_links.portal import PortalService

logger = Logger()
metrics = Metrics()
tracer = Tracer()
app = APIGatewayHttpResolver()


@cache
def portal() -> tuple[PortalService, PortalHttp]:
    return compose_portal()


@app.route("/portal", method=["GET", "POST"])
def portal_homepage() -> Response[str]:
    return portal_link(flow=None)


@app.route("/portal/<flow>", method=["GET", "POST"])
def portal_deep_link(flow: str) -> Response[str]:
    return portal_link(flow)


def portal_link(flow: str | None) -> Response[str]:
    service, http = portal()
    time_left = app.lambda_context.get_remaining_time_in_millis() / 1000
    return http.answer(app.current_event.raw_event, flow, time_left, service.create_link, correlation_id())


@app.not_found
def not_found(_: Exception) -> Response[str]:
    return portal()[1].not_found(app.current_event.raw_event, correlation_id())


def correlation_id() -> str:
    return logger.get_correlation_id() or ""


portal()  # configuration errors fail the cold start, naming the setting


@contained
@logger.inject_lambda_context(correlation_id_path=correlation_paths.API_GATEWAY_HTTP)
@metrics.log_metrics
@tracer.capture_lambda_handler(capture_response=False)  # the response holds the portal URL
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return app.resolve(event, context)
