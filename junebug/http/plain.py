"""Callbacks that are not JSON POSTs: the Kannel and Jasmin dialects' requests.

Junebug's own callbacks POST JSON (:meth:`HttpClient.post_json`).  A client
of another gateway's HTTP interface expects that gateway's requests instead:
Kannel GETs a ``dlr-url`` and GETs or POSTs text to an ``sms-service`` URL,
Jasmin POSTs (or GETs) form fields and wants ``ACK/Jasmin`` back.  A
:class:`PlainRequest` says how one such callback is made; it is plain data,
so a failed one is retried from the durable retry queue
(:mod:`junebug.http.delivery`) exactly as it was first made.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

import attrs

METHODS: Final = ("GET", "POST")


@attrs.frozen
class PlainRequest:
    """One callback request: its method, body and what a success answers."""

    method: str = "GET"
    #: The ``Content-Type`` of ``data`` (None: no body).
    content_type: str | None = None
    #: The body, sent as UTF-8.
    data: str | None = None
    #: Extra request headers.
    headers: tuple[tuple[str, str], ...] = ()
    #: A 2xx answer counts as delivered only if its body, stripped, is this
    #: (Jasmin's ``ACK/Jasmin``); another answer is a failure to retry.
    expect: str | None = None

    def as_job(self) -> dict[str, Any]:
        """The fields a delivery job stores (see :func:`from_job`)."""
        return {
            "method": self.method,
            "content_type": self.content_type,
            "data": self.data,
            "headers": [list(pair) for pair in self.headers],
            "expect": self.expect,
        }


def from_job(job: Mapping[str, Any]) -> PlainRequest | None:
    """The request a delivery job describes, or None for a JSON POST job."""
    method = job.get("method")
    if method not in METHODS:
        return None
    headers = tuple(
        (str(pair[0]), str(pair[1]))
        for pair in job.get("headers") or ()
        if isinstance(pair, list | tuple) and len(pair) == 2
    )
    return PlainRequest(
        method=method,
        content_type=job.get("content_type"),
        data=job.get("data"),
        headers=headers,
        expect=job.get("expect"),
    )
