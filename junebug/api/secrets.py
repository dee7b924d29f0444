"""Keep channel secrets out of API responses.

Responses show ``***`` in place of the secret fields of each transport's
config class, of passwords and tokens elsewhere, and of the password of any
URL's userinfo (see :mod:`junebug.redaction`), unless the request asks for
them with ``?show_secrets=true``.  When a client sends a redacted value back
(GET, edit, POST the whole thing), the stored secret is kept rather than
overwritten with ``***``.
"""

from __future__ import annotations

from typing import Any

from twisted.web.iweb import IRequest

from junebug.http.client import redact_url
from junebug.redaction import PLACEHOLDER, redact, redact_config


def wants_secrets(request: IRequest) -> bool:
    args = request.args or {}
    values = args.get(b"show_secrets") or []
    return bool(values) and values[0].lower() in (b"1", b"true", b"yes")


def redact_channel(view: dict[str, Any], config_class: type[Any] | None) -> Any:
    """A channel as the API shows it: ``config`` hidden along its transport's
    config class (``None``: the type is unknown), everything else (tokens,
    ``metadata``...) by key name and URL."""
    shown = redact({key: value for key, value in view.items() if key != "config"})
    if "config" in view:
        shown["config"] = redact_config(view["config"], config_class)
    return shown


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
