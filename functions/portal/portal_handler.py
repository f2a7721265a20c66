"""GET|POST /portal and /portal/{flow}: routes wired to the portal pipeline; the rest is in the layer."""

from __future__ import annotations

from functools import cache
from typing import TYPE_CHECKING

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.logging import correlation_paths
from snapshot_restore_py import register_after_restore, register_before_snapshot

from portal_links.composition import Portal, compose_portal
from portal_links.http import contained
from portal_links.routes import ApiEvent, ApiResponse, Router

if TYPE_CHECKING:
    from aws_lambda_powertools.utilities.typing import LambdaContext

logger = Logger()
metrics = Metrics()
router = Router()


@cache
def portal() -> Portal:
    return compose_portal()


@router.route("/portal", methods=("GET", "POST"))
def portal_homepage(event: ApiEvent, context: LambdaContext) -> ApiResponse:
    return portal_link(event, context, flow=None)


@router.route("/portal/<flow>", methods=("GET", "POST"))
def portal_deep_link(event: ApiEvent, context: LambdaContext, flow: str) -> ApiResponse:
    return portal_link(event, context, flow)


def portal_link(event: ApiEvent, context: LambdaContext, flow: str | None) -> ApiResponse:
    time_left = context.get_remaining_time_in_millis() / 1000
    return portal().http.answer(event, flow, time_left, portal().service.create_link, correlation_id())


@router.not_found
def not_found(event: ApiEvent, _: LambdaContext) -> ApiResponse:
    return portal().http.not_found(event, correlation_id())


def correlation_id() -> str:
    return logger.get_correlation_id() or ""


def before_snapshot() -> None:
    portal().prime()


def after_restore() -> None:
    portal().after_restore()


portal()  # configuration errors fail the cold start, naming the setting
# SnapStart (the Lambda runtime provides snapshot_restore_py); an on-demand cold start runs neither.
register_before_snapshot(before_snapshot)
register_after_restore(after_restore)


@contained
@logger.inject_lambda_context(correlation_id_path=correlation_paths.API_GATEWAY_HTTP)
@metrics.log_metrics
def lambda_handler(event: ApiEvent, context: LambdaContext) -> ApiResponse:
    return router.resolve(event, context)
