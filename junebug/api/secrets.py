"""Keep channel secrets out of API responses.

Responses show ``***`` in place of passwords, tokens and the password of any
URL's userinfo, unless the request asks for them with ``?show_secrets=true``.
When a client sends a redacted value back (GET, edit, POST the whole thing),
the stored secret is kept rather than overwritten with ``***``.
"""

from __future__ import annotations

import re
from typing import Any

from twisted.web.iweb import IRequest

from junebug.http.client import redact_url

PLACEHOLDER = "***"
#: Keys whose values are secrets wherever they appear.
SECRET_KEY = re.compile(r"(pass(word)?|secret|token|api_?key|private_?key)$", re.I)


def wants_secrets(request: IRequest) -> bool:
    args = request.args or {}
    values = args.get(b"show_secrets") or []
    return bool(values) and values[0].lower() in (b"1", b"true", b"yes")


def redact(value: Any) -> Any:
    """A copy of ``value`` with secrets replaced by the placeholder."""
    if isinstance(value, dict):
        return {
            key: (
                PLACEHOLDER
                if SECRET_KEY.search(str(key)) and isinstance(item, str) and item
                else redact(item)
            )
            for key, item in value.items()
        }
    if isinstance(value, list):
        return [redact(item) for item in value]
    if isinstance(value, str) and "://" in value and "@" in value:
        return redact_url(value)
    return value


def restore(new: Any, old: Any) -> Any:
    """``new`` with every placeholder (or redacted URL) put back from ``old``."""
    if isinstance(new, dict) and isinstance(old, dict):
        return {key: restore(item, old.get(key)) for key, item in new.items()}
    if isinstance(new, list) and isinstance(old, list):
        return [
            restore(item, old[i] if i < len(old) else None)
            for i, item in enumerate(new)
        ]
    if new == PLACEHOLDER and isinstance(old, str):
        return old
    if (
        isinstance(new, str)
        and isinstance(old, str)
        and "***@" in new
        and redact_url(old) == new
    ):
        return old
    return new
