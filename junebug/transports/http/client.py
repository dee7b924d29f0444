"""Requests to an aggregator: any method, any body, any headers.

:class:`AggregatorClient` is Junebug's :class:`~junebug.http.client.HttpClient`
(its connection pool, timeout, bounded body reading and redaction) with one
more method, :meth:`AggregatorClient.send`, for requests that are not JSON
POSTs.
"""

from __future__ import annotations

import attrs
from twisted.internet.defer import CancelledError, Deferred
from twisted.web.http_headers import Headers

from junebug.http.client import (
    MAX_POST_BODY_READ,
    HttpClient,
    _TimeoutExpiredError,
    basic_auth_header,
    describe_error,
    split_credentials,
)


@attrs.frozen
class SendResult:
    """What the aggregator answered: ``code`` None when nothing was received."""

    code: int | None
    body: str = ""
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.code is not None and 200 <= self.code < 300


class AggregatorClient(HttpClient):
    """An :class:`HttpClient` that can send any request (see the module doc)."""

    async def send(
        self,
        method: str,
        url: str,
        *,
        headers: dict[str, str],
        body: bytes | None,
        timeout: float,
        basic_auth: tuple[str, str] | None = None,
    ) -> SendResult:
        """Send one request; never raises for delivery problems.

        Userinfo in ``url`` (or ``basic_auth``) is sent as HTTP Basic.  At most
        64 KiB of the answer is read.
        """
        try:
            bare_url, credentials = split_credentials(url)
        except ValueError as exc:
            return SendResult(code=None, error=describe_error(exc))
        raw_headers = Headers()
        for name, value in headers.items():
            raw_headers.setRawHeaders(name.encode("latin-1"), [value.encode("latin-1")])
        credentials = basic_auth or credentials
        if credentials is not None:
            raw_headers.setRawHeaders(
                b"Authorization", [basic_auth_header(*credentials)]
            )
        try:
            response, raw, _truncated = await self._with_timeout(
                timeout,
                lambda: Deferred.fromCoroutine(
                    self._request(
                        method, bare_url, raw_headers, body, MAX_POST_BODY_READ
                    )
                ),
            )
        except CancelledError:
            raise
        except _TimeoutExpiredError as exc:
            return SendResult(code=None, error=str(exc))
        except Exception as exc:
            return SendResult(code=None, error=describe_error(exc))
        return SendResult(code=int(response.code), body=raw.decode("utf-8", "replace"))
