"""Filling request templates, and finding values in webhook payloads.

Templates are JSON-like values (objects, lists, strings, numbers...) whose
strings may name message fields in braces: ``"{to}"``, ``"Hi {from}"``.  A
string that is exactly one placeholder becomes the field's value itself (so
``"{content}"`` of a message without content is ``null``, not ``""``); any
other string gets the text of each value (``""`` for none).  ``{{`` and ``}}``
are literal braces.  Only the names in :data:`VARIABLES` exist: a typo is a
config error, not a silently empty field.

Field paths are dotted: ``results.0.from`` is the ``from`` of the first item of
the ``results`` list.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Any, Final

from junebug.errors import ConfigError
from junebug.messages import UserMessage

#: The placeholders a template may use.
VARIABLES: Final = (
    "to",
    "from",
    "content",
    "message_id",
    "in_reply_to",
    "channel_id",
    "session_event",
    "continue_session",
    "group",
    "timestamp",
)

#: One brace token: ``{{``, ``}}``, ``{name}`` (group 1) or a lone brace (an
#: error).  The callback URL templates (:mod:`junebug.http.url_templates`) use
#: it too.
BRACE_TOKEN = re.compile(r"\{\{|\}\}|\{([^{}]*)\}|[{}]")
_MISSING = object()


def _names(text: str, where: str) -> list[str]:
    names = []
    for match in BRACE_TOKEN.finditer(text):
        if match.group(0) in ("{{", "}}"):
            continue
        name = match.group(1)
        if name is None:
            raise ConfigError(
                f"{where}: unbalanced brace in {text!r} (write {{{{ or }}}} for "
                "a literal brace)"
            )
        if name not in VARIABLES:
            raise ConfigError(
                f"{where}: unknown placeholder {{{name}}}, must be one of "
                + ", ".join(f"{{{v}}}" for v in VARIABLES)
            )
        names.append(name)
    return names


def check_template(template: Any, where: str) -> None:
    """Raise ConfigError if a template names an unknown field or is malformed."""
    if isinstance(template, str):
        _names(template, where)
    elif isinstance(template, Mapping):
        for key, value in template.items():
            check_template(value, f"{where}.{key}")
    elif isinstance(template, list):
        for index, value in enumerate(template):
            check_template(value, f"{where}.{index}")
    elif template is not None and not isinstance(template, bool | int | float):
        raise ConfigError(f"{where}: {type(template).__name__} is not JSON")


def _text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def render(
    template: Any,
    variables: Mapping[str, Any],
    quote: Callable[[str], str] | None = None,
) -> Any:
    """``template`` with every placeholder replaced (see the module doc).

    ``quote`` transforms each substituted text (URL templates quote them).
    """
    if isinstance(template, str):
        whole = BRACE_TOKEN.fullmatch(template)
        if quote is None and whole is not None and whole.group(1) is not None:
            return variables.get(whole.group(1))

        def substitute(match: re.Match[str]) -> str:
            literal = match.group(0)
            if literal in ("{{", "}}"):
                return literal[0]
            text = _text(variables.get(match.group(1)))
            return quote(text) if quote is not None else text

        return BRACE_TOKEN.sub(substitute, template)
    if isinstance(template, Mapping):
        return {k: render(v, variables, quote) for k, v in template.items()}
    if isinstance(template, list):
        return [render(v, variables, quote) for v in template]
    return template


def message_variables(message: UserMessage, default_from: str | None) -> dict[str, Any]:
    """The values of the placeholders for one MT message."""
    return {
        "to": message.get("to_addr"),
        "from": message.get("from_addr") or default_from,
        "content": message.get("content"),
        "message_id": message.get("message_id"),
        "in_reply_to": message.get("in_reply_to"),
        "channel_id": message.get("transport_name"),
        "session_event": message.get("session_event"),
        "continue_session": message.get("continue_session"),
        "group": message.get("group"),
        "timestamp": message.get("timestamp"),
    }


def lookup(data: Any, path: str) -> Any:
    """The value at a dotted ``path`` in ``data``; None if there is none."""
    current = data
    for part in path.split("."):
        if isinstance(current, Mapping):
            current = current.get(part, _MISSING)
        elif isinstance(current, list) and part.lstrip("-").isdigit():
            index = int(part)
            current = current[index] if -len(current) <= index < len(current) else None
        else:
            return None
        if current is _MISSING:
            return None
    return current


def flatten(body: Mapping[str, Any]) -> list[tuple[str, str]]:
    """A flat body as form/query pairs: null values are left out, lists repeat
    the key."""
    pairs: list[tuple[str, str]] = []
    for key, value in body.items():
        if value is None:
            continue
        for item in value if isinstance(value, list) else [value]:
            pairs.append((key, _text(item)))
    return pairs
