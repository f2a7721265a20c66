"""This project: the deployed handler module (functions/portal) on the shared layer's package."""

from portal_handler import lambda_handler, portal

__all__ = ["lambda_handler", "portal"]
