"""The HTTP transport: requests' adapters over one pool of connections, timeouts on every call, retries
where they are safe, error mapping, request accounting, and the read-only guard that makes `plan`
harmless.

Retries are urllib3's `Retry` (backoff, Retry-After): each request goes through a retrying or a
single-shot adapter according to its endpoint (`Endpoint.retry`), and the endpoint table is the one
place that decides which Immich calls may be repeated blindly and which change something
(`Endpoint.changes`, refused in a dry run).

Why not `requests.Session.request`: a call through a Session merges cookies, hooks, auth and settings
and walks redirects on every request, which cost the job about 0.45 ms of CPU per call (0.97 ms through
a Session, 0.53 ms through the adapter, measured alone against a real Immich), and the job needs none
of it: one server, an API key in a header, no cookies, no redirects followed. So the transport prepares
each request itself (`PreparedRequest.prepare`, as a Session does: a user and password in IMMICH_URL
still become Basic auth) and hands it to the adapter, with the proxy and CA settings read once from the
environment.
"""

from __future__ import annotations

import json
import logging
import os
import re
import threading
import time
from collections import Counter
from datetime import timedelta
from typing import Any

import requests
from requests.adapters import HTTPAdapter
from urllib3.util.retry import Retry

from job.clock import SYSTEM, Clock
from job.immich import errors
from job.immich.endpoints import Endpoint, changes

log = logging.getLogger("ext2int")

RETRY_AFTER_CAP = 60.0  # seconds; a server asking for more is treated as this, so shutdown stays prompt
CONNECT_TIMEOUT = 10.0  # seconds to open a connection (EXT2INT_HTTP_TIMEOUT is the wait for an answer)

_UUID = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")


def route_of(path: str) -> str:
    """'/api/assets/6f2f…/metadata' -> '/api/assets/{id}/metadata', for counting requests by kind."""
    return _UUID.sub("{id}", path.split("?", 1)[0])


class CappedRetry(Retry):
    """urllib3 Retry that never sleeps longer than RETRY_AFTER_CAP for a Retry-After header (works on
    every urllib3 2.x, with or without its own `retry_after_max`)."""

    def parse_retry_after(self, retry_after: str) -> float:
        return min(super().parse_retry_after(retry_after), RETRY_AFTER_CAP)


class _BigBlockAdapter(HTTPAdapter):
    """Sends request bodies in 256 KiB blocks instead of http.client's 8 KiB: a multi-GB upload then
    costs a few thousand reads of our streaming body, not hundreds of thousands."""

    def init_poolmanager(self, connections, maxsize, block=False, **pool_kwargs):
        pool_kwargs.setdefault("blocksize", 256 * 1024)
        super().init_poolmanager(connections, maxsize, block=block, **pool_kwargs)


def _retry_policy(retries: int) -> CappedRetry:
    """How a call that is safe to repeat is repeated (EXT2INT_HTTP_RETRIES)."""
    return CappedRetry(
        total=retries,
        connect=retries,
        read=min(retries, 2),
        status=retries,
        other=0,
        backoff_factor=0.5,
        backoff_max=20,
        status_forcelist=(429, 502, 503, 504),
        allowed_methods=None,  # only ever used for retry-safe endpoints
        respect_retry_after_header=True,
        raise_on_status=False,
        raise_on_redirect=False,
    )


class Transport:
    """One pool of connections for the whole run; thread-safe for the job's concurrent workers."""

    def __init__(
        self,
        base_url: str,
        api_key: str,
        *,
        timeout: float,
        retries: int,
        pool_size: int,
        read_only: bool = False,
        user_agent: str = "immich-ext2int",
        clock: Clock = SYSTEM,
    ):
        """`timeout`, `retries` and `pool_size` come from the settings (EXT2INT_HTTP_TIMEOUT,
        EXT2INT_HTTP_RETRIES, Pools): no second default here."""
        self.base_url = base_url.rstrip("/")
        self.read_only = read_only
        self.retries = retries
        self.sleep = clock.sleep
        self.timeout = (CONNECT_TIMEOUT, timeout)
        # identity: Immich gzips JSON answers for a client that accepts it, which costs CPU on both sides
        # for little (the job runs beside Immich; its bytes are the photos, which do not compress)
        self.headers = {"x-api-key": api_key, "Accept": "application/json", "User-Agent": user_agent,
                        "Accept-Encoding": "identity"}
        # Proxy and CA settings (HTTPS_PROXY, NO_PROXY, REQUESTS_CA_BUNDLE) are honoured like other tools,
        # but read once: requests with trust_env re-reads the environment and ~/.netrc on every call,
        # which cost a third of the job's CPU per asset.
        self.proxies = requests.utils.get_environ_proxies(self.base_url)
        ca_bundle = os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get("CURL_CA_BUNDLE")
        self.verify: bool | str = ca_bundle if ca_bundle and self.base_url.startswith("https://") else True
        self.retrying = _BigBlockAdapter(max_retries=_retry_policy(retries), pool_connections=2, pool_maxsize=pool_size)
        self.single = _BigBlockAdapter(max_retries=Retry(0, read=False, redirect=0), pool_connections=2,
                                       pool_maxsize=pool_size)
        self._lock = threading.Lock()
        self.counts: Counter[tuple[str, str]] = Counter()
        self.seconds: Counter[tuple[str, str]] = Counter()  # until the answer's headers: the server's share

    # --- accounting ---------------------------------------------------------------------------

    @property
    def total_requests(self) -> int:
        with self._lock:
            return sum(self.counts.values())

    @property
    def mutating_requests(self) -> int:
        with self._lock:
            return sum(n for (method, route), n in self.counts.items() if changes(method, route))

    def by_route(self) -> dict[str, dict[str, float]]:
        """Requests and seconds until the answer began, per kind of call: where the server's time goes."""
        with self._lock:
            return {f"{m} {r}": {"count": n, "seconds": round(self.seconds[(m, r)], 3)} for (m, r), n in self.counts.items()}

    # --- calls --------------------------------------------------------------------------------

    def request(
        self,
        endpoint: Endpoint,
        *ids: str,
        json_body: Any = None,
        params: dict[str, Any] | None = None,
        data: Any = None,
        headers: dict[str, str] | None = None,
        stream: bool = False,
        expect: tuple[int, ...] = (200, 201, 204),
        timeout: tuple[float, float] | None = None,
    ) -> requests.Response:
        """Send one call to `endpoint` (with `ids` in its path); return the response when its status is in
        `expect`, else raise the matching ImmichError. The key is in the transport's headers only, never in a
        message."""
        method = endpoint.method
        api_path = "/api" + endpoint.url_path(*ids)
        call = endpoint.call
        if self.read_only and endpoint.changes:
            raise errors.DryRunViolation(f"{call} refused: this is a dry run (plan); nothing may change")
        route = (method, route_of(api_path))
        with self._lock:
            self.counts[route] += 1
        try:
            prepared = requests.PreparedRequest()
            prepared.prepare(method=method, url=self.base_url + api_path, params=params, json=json_body, data=data,
                             headers={**self.headers, **headers} if headers else self.headers)
            adapter = self.retrying if endpoint.retry else self.single
            started = time.perf_counter()
            response = adapter.send(prepared, stream=stream, timeout=timeout or self.timeout, verify=self.verify,
                                    cert=None, proxies=self.proxies)
            response.elapsed = timedelta(seconds=time.perf_counter() - started)  # until the answer's headers
            if not stream:
                response.content  # noqa: B018 - read the body now, as requests does: the connection goes back
        except errors.TruncatedTransfer:
            raise
        except requests.exceptions.ConnectTimeout:
            raise errors.Unreachable(call, "connection timed out") from None
        except requests.exceptions.ReadTimeout:
            raise errors.Unreachable(call, "no answer within the timeout") from None
        except requests.exceptions.SSLError as exc:
            raise errors.Unreachable(call, f"TLS failed: {str(exc)[:200]} (a private certificate authority? set "
                                           "REQUESTS_CA_BUNDLE to its certificate file)") from None
        except requests.exceptions.ConnectionError as exc:
            raise errors.Unreachable(call, f"connection failed: {_reason(exc)}") from None
        except requests.exceptions.ChunkedEncodingError as exc:  # the body broke off (stream=False reads it here)
            raise errors.CutAnswer(call, f"the answer broke off: {_reason(exc)}") from None
        except requests.exceptions.RequestException as exc:
            raise errors.Unreachable(call, f"request failed: {str(exc)[:200]}") from None
        with self._lock:
            self.seconds[route] += response.elapsed.total_seconds()
        if endpoint.changes:  # ids only: the key is a header, bodies are not logged
            log.debug("%s %s -> %s", method, api_path, response.status_code)
        if response.status_code in expect:
            return response
        try:
            errors.raise_for(call, response)
        finally:
            response.close()
        raise AssertionError("unreachable")

    def json(self, endpoint: Endpoint, *ids: str, **kwargs: Any) -> Any:
        """The call's JSON answer. urllib3 retries a call that got no answer; an answer whose body broke
        off on the way is only seen here, and a call that is safe to repeat is asked again (twice)."""
        retries = min(self.retries, 2) if endpoint.retry else 0
        attempt = 0
        while True:
            try:
                return parse_json(endpoint.call, self.request(endpoint, *ids, **kwargs))
            except errors.BrokenAnswer:
                if attempt == retries:
                    raise
                self.sleep(0.25 * 2**attempt)
                attempt += 1

    def close(self) -> None:
        self.retrying.close()
        self.single.close()


def parse_json(call: str, response: requests.Response) -> Any:
    if response.status_code == 204 or not response.content:
        return None
    content_type = response.headers.get("content-type", "")
    text = response.text
    if "json" not in content_type and text.lstrip().startswith("<"):
        raise errors.NotImmich(call, f"answered with an HTML page (HTTP {response.status_code}), not JSON")
    try:
        return json.loads(text)
    except ValueError:
        what = "truncated JSON" if text.strip().startswith(("{", "[")) else "an answer that is not JSON"
        error = errors.TruncatedJSON if what == "truncated JSON" else errors.UnexpectedResponse
        raise error(call, f"sent {what} (HTTP {response.status_code}, {len(text)} bytes)") from None


def _reason(exc: requests.exceptions.RequestException) -> str:
    text = str(exc)
    for marker in ("Connection refused", "Name or service not known", "No route to host", "Temporary failure in name resolution",
                   "Connection reset", "Remote end closed connection", "Connection aborted", "timed out", "Max retries exceeded"):
        if marker in text:
            return marker.lower()
    return text[:160]
