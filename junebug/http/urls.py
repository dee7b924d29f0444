"""Which URLs Junebug accepts as callbacks (``mo_url``, ``event_url``, ``status_url``).

A callback URL is ``http://`` or ``https://`` with a host; anything else
(``file://``, ``gopher://``, a URL without a host) is refused where it is
given, with a 400 naming the field, and never stored.  Which *addresses* a
callback may reach is decided when it is delivered (see
:mod:`junebug.http.networks`).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, Final
from urllib.parse import urlsplit

from junebug.errors import ApiUsageError
from junebug.http.client import redact_url

SCHEMES: Final = ("http", "https")


def http_url_problem(url: str) -> str | None:
    """Why ``url`` is not an ``http(s)://`` URL with a host, or ``None``."""
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - parsing the port is the check
    except ValueError as exc:
        return f"not a URL ({exc})"
    if parts.scheme.lower() not in SCHEMES:
        return "must be an http:// or https:// URL"
    if not parts.hostname:
        return "must name a host"
    return None


def check_callback_urls(values: Mapping[str, Any], names: Iterable[str]) -> None:
    """Raise :class:`ApiUsageError` for the first of ``names`` in ``values``
    that is set and not an acceptable callback URL (unset, null and empty
    strings are no URL)."""
    for name in names:
        value = values.get(name)
        if value is None or value == "":
            continue
        problem = (
            "must be a string"
            if not isinstance(value, str)
            else http_url_problem(value)
        )
        if problem is not None:
            shown = redact_url(value) if isinstance(value, str) else repr(value)
            raise ApiUsageError(f'"{name}" {problem}, got {shown!r}')
