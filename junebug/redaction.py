"""Which config fields are secrets, and copies of configs with them hidden.

A transport's attrs config class marks its secret fields with
``metadata=SECRET`` (and ``repr=MASKED``, so a logged or printed config object
never shows them either)::

    password: str | None = attrs.field(default=None, metadata=SECRET, repr=MASKED)

:func:`redact_config` walks a channel's plain ``config`` (as stored) along its
class: a marked field is replaced by :data:`PLACEHOLDER` (a marked dict, such
as HTTP ``headers``, has every value replaced), a field whose type is another
attrs class is walked with that class.  Whatever the class does not describe
(unknown keys, free-form dicts such as ``body_template`` or a channel's
``metadata``) falls back to the key-name rule :data:`SECRET_KEY`
(``password``, ``passwd``, ``token``, ``Authorization``, ``X-Api-Key``...).
Everywhere, the password of a URL's userinfo (``http://user:***@host``) is
hidden.
"""

from __future__ import annotations

import functools
import re
import types
import typing
from typing import Any, Final

import attrs

from junebug.http.client import redact_url

PLACEHOLDER: Final = "***"
#: The metadata of a secret attrs field.
SECRET: Final = {"secret": True}
#: Where a key names a secret in data no config class describes.
SECRET_KEY: Final = re.compile(
    r"(pass(word|wd|phrase)?|pwd|secret|token|api[-_]?key|private[-_]?key|"
    r"access[-_]?key|auth(orization)?|credentials?|cookie|signature)$",
    re.IGNORECASE,
)


def MASKED(value: Any) -> str:  # noqa: N802 - used like a constant: repr=MASKED
    """The ``repr`` of a secret field: the placeholder, or ``None`` if unset."""
    return repr(None) if value is None else repr(PLACEHOLDER)


def is_secret(field: attrs.Attribute[Any]) -> bool:
    return bool(field.metadata.get("secret"))


def _mask(value: Any) -> Any:
    """A secret value hidden: every non-empty string inside it replaced."""
    if isinstance(value, str):
        return PLACEHOLDER if value else value
    if isinstance(value, dict):
        return {key: _mask(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_mask(item) for item in value]
    return value


def redact(value: Any) -> Any:
    """A copy of free-form ``value`` with secrets hidden by key name and URL."""
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


@functools.cache
def _fields(cls: type[Any]) -> dict[str, tuple[attrs.Attribute[Any], Any]]:
    """Each field of attrs class ``cls``, with the attrs class of its value
    (``X`` or ``X | None``), if it has one."""
    hints = typing.get_type_hints(cls)
    return {
        field.name: (field, _attrs_class(hints.get(field.name)))
        for field in attrs.fields(cls)
    }


def _attrs_class(hint: Any) -> Any:
    if isinstance(hint, type) and attrs.has(hint):
        return hint
    if isinstance(hint, types.UnionType) or typing.get_origin(hint) is typing.Union:
        for arg in typing.get_args(hint):
            if isinstance(arg, type) and attrs.has(arg):
                return arg
    return None


def redact_config(data: Any, cls: type[Any] | None) -> Any:
    """A copy of plain ``data`` meant for attrs class ``cls`` (``None``:
    unknown), with its secrets hidden (see the module doc)."""
    if cls is None or not attrs.has(cls) or not isinstance(data, dict):
        return redact(data)
    fields = _fields(cls)
    shown: dict[str, Any] = {}
    for key, value in data.items():
        field, inner = fields.get(key, (None, None))
        if field is None:
            shown.update(redact({key: value}))
        elif is_secret(field):
            shown[key] = _mask(value)
        elif inner is not None:
            shown[key] = redact_config(value, inner)
        else:
            shown[key] = redact(value)
    return shown
