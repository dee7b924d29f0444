"""Request-body JSON schemas and the body parser every endpoint uses.

Validation lists every problem of a body at once, sorted by message, each with
its ``schema_path``, as the original did.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from jsonschema import Draft4Validator
from twisted.web.iweb import IRequest

from junebug.amqp import topology
from junebug.errors import BodyTooLarge, InvalidBody, JsonDecodeError
from junebug.http import json_body

_STRING = {"type": "string"}
_NULLABLE_STRING = {"type": ["string", "null"]}
_OBJECT = {"type": "object"}
_COUNT = {"type": "integer", "minimum": 0}
_RATE_LIMIT_COUNT = {
    **_COUNT,
    "description": "At most this many sends (SMPP: submit_sm PDUs) in any"
    " rate_limit_window seconds, gateway-wide; excess waits. 0: no limit.",
}
_RATE_LIMIT_WINDOW = {
    **_COUNT,
    "description": "The sliding window of rate_limit_count, in seconds"
    " (default 1).",
}
#: The values ``priority`` may take in a message request.
PRIORITIES = (1, 2, 3, 4, 5, "1", "2", "3", "4", "5")

CHANNEL_CREATE = {
    "type": "object",
    "properties": {
        "type": _STRING,
        "label": _STRING,
        "config": _OBJECT,
        "metadata": _OBJECT,
        "status_url": _STRING,
        "mo_url": _STRING,
        "mo_url_auth_token": _STRING,
        "amqp_queue": _STRING,
        "rate_limit_count": _RATE_LIMIT_COUNT,
        "rate_limit_window": _RATE_LIMIT_WINDOW,
        "character_limit": _COUNT,
        "public_http": _OBJECT,
    },
    "required": ["type", "config"],
}

CHANNEL_UPDATE = {
    "type": "object",
    "properties": {
        "type": _STRING,
        "label": _STRING,
        "config": _OBJECT,
        "metadata": _OBJECT,
        "status_url": _NULLABLE_STRING,
        "mo_url": _NULLABLE_STRING,
        "mo_url_auth_token": _NULLABLE_STRING,
        "amqp_queue": _NULLABLE_STRING,
        "rate_limit_count": _RATE_LIMIT_COUNT,
        "rate_limit_window": _RATE_LIMIT_WINDOW,
        "character_limit": _COUNT,
        "public_http": _OBJECT,
    },
}

MESSAGE_SEND = {
    "type": "object",
    "properties": {
        "content": _NULLABLE_STRING,
        "to": _STRING,
        "from": _NULLABLE_STRING,
        "group": _NULLABLE_STRING,
        "reply_to": _STRING,
        "event_url": _STRING,
        "event_auth_token": _STRING,
        # 1 (bulk, the default) to 5 (real-time); "1".."5" as the original's
        # schema wanted a string.
        "priority": {"type": ["string", "integer"], "enum": [*PRIORITIES]},
        "channel_data": _OBJECT,
    },
    "required": ["content"],
    "additionalProperties": False,
}


def _path(parts: Any) -> list[Any]:
    return list(parts)


_validators: dict[int, Draft4Validator] = {}

_TYPE_TESTS: dict[str, Callable[[Any], bool]] = {
    "string": lambda value: isinstance(value, str),
    "integer": lambda value: isinstance(value, int) and not isinstance(value, bool),
    "null": lambda value: value is None,
    "object": lambda value: isinstance(value, dict),
}
_SIMPLE_KEYWORDS = frozenset({"type", "minimum", "enum"})


def _quick_check(schema: dict[str, Any]) -> Callable[[Any], bool] | None:
    """A fast test that says True only for bodies ``schema`` accepts, for the
    flat object schemas of this module; ``None`` for any other schema.

    It is a shortcut, not a second validator: when it says False (or cannot
    judge a value, e.g. a float where an integer is wanted) the body goes to
    jsonschema, whose errors are the ones reported.
    """
    if schema.get("type") != "object" or not set(schema) <= {
        "type",
        "properties",
        "required",
        "additionalProperties",
    }:
        return None
    fields: dict[str, tuple[tuple[Callable[[Any], bool], ...], Any, Any]] = {}
    for name, rule in schema.get("properties", {}).items():
        if not set(rule) <= _SIMPLE_KEYWORDS:
            return None
        kinds = rule["type"] if isinstance(rule["type"], list) else [rule["type"]]
        if not all(kind in _TYPE_TESTS for kind in kinds):
            return None
        tests = tuple(_TYPE_TESTS[kind] for kind in kinds)
        fields[name] = (tests, rule.get("minimum"), rule.get("enum"))
    required = tuple(schema.get("required", ()))
    closed = schema.get("additionalProperties", True) is False
    if schema.get("additionalProperties", True) not in (True, False):
        return None

    def accepts(body: Any) -> bool:
        if not isinstance(body, dict):
            return False
        for name in required:
            if name not in body:
                return False
        for name, value in body.items():
            field = fields.get(name)
            if field is None:
                if closed:
                    return False
                continue
            tests, minimum, allowed = field
            if not any(test(value) for test in tests):
                return False
            if allowed is not None and value not in allowed:
                return False
            if minimum is not None and isinstance(value, int) and value < minimum:
                return False
        return True

    return accepts


_quick_checks: dict[int, tuple[dict[str, Any], Callable[[Any], bool] | None]] = {}


def _validator(schema: dict[str, Any]) -> Draft4Validator:
    """One validator per schema object: building one per request is costly."""
    validator = _validators.get(id(schema))
    if validator is None or validator.schema is not schema:
        validator = _validators[id(schema)] = Draft4Validator(schema)
    return validator


def validate(body: Any, schema: dict[str, Any]) -> None:
    """Raise InvalidBody listing every schema violation of ``body``."""
    cached = _quick_checks.get(id(schema))
    if cached is None or cached[0] is not schema:
        cached = _quick_checks[id(schema)] = (schema, _quick_check(schema))
    accepts = cached[1]
    if accepts is not None and accepts(body):
        return
    validator = _validator(schema)
    problems = sorted(validator.iter_errors(body), key=lambda e: e.message)
    if problems:
        raise InvalidBody(
            [
                {
                    "type": "invalid_body",
                    "message": error.message,
                    "schema_path": _path(error.schema_path),
                }
                for error in problems
            ]
        )


def read_json(request: IRequest, max_size: int) -> Any:
    """Parse the request body as JSON, refusing bodies over ``max_size`` bytes."""
    length = request.getHeader(b"content-length")
    if length is not None and length.isdigit() and int(length) > max_size:
        raise BodyTooLarge(f"Request body is larger than {max_size} bytes")
    content = request.content
    content.seek(0)
    raw = content.read(max_size + 1)
    if len(raw) > max_size:
        raise BodyTooLarge(f"Request body is larger than {max_size} bytes")
    try:
        return json_body.loads(raw.decode("utf-8"))
    except UnicodeDecodeError as exc:
        raise JsonDecodeError(f"Body is not UTF-8: {exc}") from exc
    except ValueError as exc:
        raise JsonDecodeError(str(exc)) from exc


def parse_body(request: IRequest, schema: dict[str, Any], max_size: int) -> Any:
    """JSON decode, then schema validation: the original's order."""
    body = read_json(request, max_size)
    validate(body, schema)
    check_amqp_queue(body)
    return body


def check_amqp_queue(body: Any) -> None:
    """Raise InvalidBody if the body's ``amqp_queue`` names queues RabbitMQ
    would refuse, so nothing is stored that could never be consumed."""
    name = body.get("amqp_queue") if isinstance(body, dict) else None
    if not isinstance(name, str):
        return
    problem = topology.amqp_queue_problem(name)
    if problem is not None:
        raise InvalidBody(
            [
                {
                    "type": "invalid_body",
                    "message": f"amqp_queue {problem}",
                    "schema_path": ["properties", "amqp_queue"],
                }
            ]
        )


# -- routers ------------------------------------------------------------------

_ROUTER_PROPERTIES = {
    "type": _STRING,
    "label": _STRING,
    "config": _OBJECT,
    "metadata": _OBJECT,
}

#: POST /routers/ and PUT /routers/<id>.
ROUTER_CREATE = {
    "type": "object",
    "properties": _ROUTER_PROPERTIES,
    "required": ["type", "config"],
    "additionalProperties": False,
}

#: PATCH /routers/<id>.
ROUTER_PATCH = {
    "type": "object",
    "properties": _ROUTER_PROPERTIES,
    "additionalProperties": False,
}

_DESTINATION_PROPERTIES = {
    "label": _STRING,
    "config": _OBJECT,
    "metadata": _OBJECT,
    "mo_url": _STRING,
    "mo_url_token": _STRING,
    "amqp_queue": _STRING,
    "character_limit": _COUNT,
}

#: POST /routers/<id>/destinations/ and PUT /routers/<id>/destinations/<id>.
DESTINATION_CREATE = {
    "type": "object",
    "properties": _DESTINATION_PROPERTIES,
    "required": ["config"],
    "additionalProperties": False,
}

#: PATCH /routers/<id>/destinations/<id>.
DESTINATION_PATCH = {
    "type": "object",
    "properties": _DESTINATION_PROPERTIES,
    "additionalProperties": False,
}
