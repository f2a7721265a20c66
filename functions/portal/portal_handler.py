"""POST|GET /portal: wires the routes to the portal service; everything else lives in the layer."""

from __future__ import annotations

from functools import cache
from typing import Any

from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.event_handler import APIGatewayHttpResolver, Response
from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext

from portal_links.errors import PortalError, RouteNotFound, Unauthenticated, Unavailable
from portal_links.http import PortalHttp
from portal_links.portal import PortalService, build_portal_service
from portal_links.settings import load_settings

logger = Logger()
metrics = Metrics()
tracer = Tracer()
app = APIGatewayHttpResolver()


@cache
def portal() -> tuple[PortalService, PortalHttp]:
    settings = load_settings()
    return build_portal_service(settings), PortalHttp(settings)


@app.route("/portal", method=["GET", "POST"])
def portal_homepage() -> Response[str]:
    return portal_link(flow=None)


@app.route("/portal/<flow>", method=["GET", "POST"])
def portal_deep_link(flow: str) -> Response[str]:
    return portal_link(flow)


def portal_link(flow: str | None) -> Response[str]:
    service, http = portal()
    request = http.read_request(app.current_event, flow, service.parameters_for(flow))
    return http.success(app.current_event, service.create_link(request))


@app.not_found
def not_found(_: Exception) -> Response[str]:
    return failure(RouteNotFound("there is no such route; see the README for the portal endpoints"))


@app.exception_handler(Exception)  # type: ignore[untyped-decorator]
def on_error(error: Exception) -> Response[str]:
    return failure(error)


def failure(error: Exception) -> Response[str]:
    if isinstance(error, Unauthenticated):
        metrics.add_metric(name="AuthFailures", unit=MetricUnit.Count, value=1)
        logger.info("request not authenticated", extra={"reason": str(error)})
    elif isinstance(error, Unavailable):
        metrics.add_metric(name="UpstreamErrors", unit=MetricUnit.Count, value=1)
        logger.warning("dependency unavailable", extra={"code": error.code, "reason": str(error)})
    elif isinstance(error, PortalError):
        logger.info("request refused", extra={"code": error.code, "reason": str(error)})
    else:
        logger.exception("unexpected error")
    return portal()[1].failure(app.current_event, error, logger.get_correlation_id() or "")


portal()  # configuration errors fail the cold start, naming the setting


@logger.inject_lambda_context(correlation_id_path=correlation_paths.API_GATEWAY_HTTP)
@metrics.log_metrics
@tracer.capture_lambda_handler(capture_response=False)  # the response holds the portal URL
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return app.resolve(event, context)
