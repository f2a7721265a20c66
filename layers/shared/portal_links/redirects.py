"""Where we may send a user: only to the operator's allowed origins, never to a target the client invents."""

from __future__ import annotations

from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from portal_links.errors import InvalidParameter

MAX_URL_LENGTH = 2048
LOCAL_HOSTS = frozenset({"localhost", "127.0.0.1", "::1"})


def origin_of(url: str) -> str | None:
    """`scheme://host[:port]` of an absolute http(s) URL, with default ports dropped; None otherwise."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        return None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return None
    host = f"[{parts.hostname}]" if ":" in parts.hostname else parts.hostname
    default_port = 443 if parts.scheme == "https" else 80
    suffix = f":{port}" if port is not None and port != default_port else ""
    return f"{parts.scheme}://{host}{suffix}"


class ReturnUrls:
    def __init__(self, allowed_origins: frozenset[str], allow_insecure_localhost: bool, default: str) -> None:
        self._allowed = allowed_origins
        self._insecure_localhost = allow_insecure_localhost
        self.default = default

    def resolve(self, return_to: str | None) -> str:
        """The URL the user goes back to: `return_to` if it is safe and allowed, else the default."""
        if return_to is None:
            return self.default
        if not self.is_allowed(return_to):
            raise InvalidParameter(
                "return_to must be an absolute https URL on one of the app's allowed origins",
                param="return_to",
            )
        return return_to

    def is_allowed(self, url: str) -> bool:
        # Printable ASCII only: rules out backslashes, whitespace, control characters and look-alike hosts.
        if not url or len(url) > MAX_URL_LENGTH or any(not 0x21 <= ord(ch) <= 0x7E for ch in url):
            return False
        if "\\" in url:
            return False
        try:
            parts = urlsplit(url)
        except ValueError:
            return False
        if "@" in parts.netloc or parts.scheme not in ("https", "http"):
            return False
        if parts.scheme == "http" and not (self._insecure_localhost and parts.hostname in LOCAL_HOSTS):
            return False
        return self.is_allowed_origin(origin_of(url))

    def is_allowed_origin(self, origin: str | None) -> bool:
        return origin is not None and origin in self._allowed


def with_query(url: str, **params: str) -> str:
    """`url` with `params` set in its query string, keeping what was there."""
    parts = urlsplit(url)
    query = [
        (key, value) for key, value in parse_qsl(parts.query, keep_blank_values=True) if key not in params
    ]
    query.extend(params.items())
    return urlunsplit(parts._replace(query=urlencode(query)))
