"""What can go wrong talking to Immich, as types the rest of the job can act on.

Every error names the call (method and path, never the key) and what the server said, so the
one-line message a person reads says where it happened and what to do.
"""

from __future__ import annotations

import re
from typing import Any


class ImmichError(Exception):
    """Base: `call` is 'METHOD /api/path', `status` the HTTP status (None if no answer came)."""

    exit_code = 1
    hint = ""

    def __init__(self, call: str, detail: str, status: int | None = None):
        self.call = call
        self.detail = detail
        self.status = status
        text = f"{call}: {detail}"
        if self.hint:
            text += f" ({self.hint})"
        super().__init__(text)


class Unreachable(ImmichError):
    """No usable answer: connection refused, DNS, TLS, timeouts after retries, or not an Immich server."""

    exit_code = 3
    hint = "check IMMICH_URL and that the server is up and reachable from here"


class NotImmich(Unreachable):
    hint = "IMMICH_URL must point at the Immich server itself (the address of its web page), not a proxy error page"


class KeyRefused(ImmichError):
    exit_code = 3
    hint = "the API key was refused: create a new key in Immich (Account Settings > API Keys) and set IMMICH_API_KEY"


class ProxyRefused(ImmichError):
    """401 from a proxy or gateway in front of Immich, not Immich's "Invalid API key"."""

    exit_code = 3
    hint = ("check that IMMICH_URL is Immich itself; if a proxy needs a login, give it in IMMICH_URL as "
            "https://user:password@host (the password is never shown)")


class PermissionMissing(ImmichError):
    """403 naming a permission the API key lacks."""

    def __init__(self, call: str, permission: str, status: int = 403):
        self.permission = permission
        plural = "s" if "," in permission else ""
        self.hint = f"edit the API key in Immich (Account Settings > API Keys) to add {permission}, or use a key with all permissions"
        super().__init__(call, f"the API key lacks the permission{plural} {permission}", status)


class Forbidden(ImmichError):
    """403 without a permission name: an admin-only endpoint or an asset of someone else."""


class NotFound(ImmichError):
    """The thing is not there (or not visible to this key): 404, or Immich's 400 'Not found'."""


class BadRequest(ImmichError):
    """400: the server rejected what we sent. A bug on our side or a server we do not know."""


class ServerError(ImmichError):
    """5xx or 429 that did not go away after retries."""


class UnexpectedResponse(ImmichError):
    """The answer is not what Immich answers: HTML, truncated or malformed JSON, an unknown shape."""

    exit_code = 3
    hint = "is IMMICH_URL an Immich server of version 2.0 or newer?"


class BrokenAnswer(ImmichError):
    """The answer's body broke off or arrived cut in transit. A call that is safe to repeat is asked again."""


class CutAnswer(Unreachable, BrokenAnswer):
    """The connection ended before the body its headers announced."""


class TruncatedJSON(UnexpectedResponse, BrokenAnswer):
    """The body ended inside the JSON document."""


class TooOld(ImmichError):
    exit_code = 3


class DryRunViolation(RuntimeError):
    """A mutating request was attempted during `plan`. Always a bug; the request was not sent."""


class TruncatedTransfer(Exception):
    """A download ended early, ran long, or failed mid-body. Deliberately not an OSError: urllib3 must
    not treat it as a connection problem and retry a half-sent upload."""


# --- what an answer means ------------------------------------------------------------------------

_PERMISSION = re.compile(r"Missing required permission: ([\w.]+)")
_NOT_FOUND = re.compile(r"not found|no [\w.]+ access|must exist", re.IGNORECASE)


def raise_for(call: str, response: Any) -> None:
    """The error an answer that is not a success means (`response`: a requests.Response)."""
    status = response.status_code
    message = _server_message(response)
    if status == 401:
        if message:  # Immich's own JSON answer: the key itself was refused
            raise KeyRefused(call, f"HTTP 401 {message}", status)
        raise ProxyRefused(call, "HTTP 401 without Immich's answer: something in front of Immich asked "
                                        "for its own login", status)
    if status in (301, 302, 303, 307, 308):
        where = response.headers.get("location", "nowhere")
        raise NotImmich(call, f"answered HTTP {status}, a redirect to {where}: set IMMICH_URL to the address "
                                     "it points at (or to Immich itself, if it is a login page)", status)
    if status == 403:
        match = _PERMISSION.search(message)
        if match:
            raise PermissionMissing(call, match.group(1))
        raise Forbidden(call, f"HTTP 403 {message or 'Forbidden'}", status)
    if status == 404 or (status == 400 and _NOT_FOUND.search(message)):
        raise NotFound(call, f"HTTP {status} {message or 'Not Found'}", status)
    if status == 400:
        raise BadRequest(call, f"HTTP 400 {message}", status)
    if status >= 500 and response.headers.get("content-type", "").startswith("text/html"):
        raise NotImmich(call, f"answered HTTP {status} with an HTML page: a proxy in front of Immich?", status)
    if status == 429 or status >= 500:
        raise ServerError(call, f"HTTP {status} {message or response.reason or ''}".strip(), status)
    if response.headers.get("content-type", "").startswith("text/html"):
        raise NotImmich(call, f"answered HTTP {status} with an HTML page", status)
    raise UnexpectedResponse(call, f"answered HTTP {status} {message}".strip(), status)


def _server_message(response: Any) -> str:
    try:
        body = response.json()
    except ValueError:
        return ""
    if not isinstance(body, dict):
        return ""
    message = body.get("message", "")
    if isinstance(message, list):
        message = "; ".join(str(m) for m in message)
    details = [
        f"{'.'.join(str(p) for p in e.get('path', []))}: {e.get('message', '')}"
        for e in body.get("errors") or []
        if isinstance(e, dict)
    ]
    text = str(message)
    if details:
        text += " (" + "; ".join(details) + ")"
    return text[:300]
