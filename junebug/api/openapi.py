"""The OpenAPI 3 document of the API, built from the routes that really exist.

Paths and methods come from the Klein url map, so the document cannot list a
route that is not served or miss one that is.  Request bodies use the same JSON
schemas the endpoints validate with; every response is the Junebug envelope.
"""

from __future__ import annotations

import re
from typing import Any

from klein import Klein

from junebug import __version__
from junebug.api import schemas

#: Request-body schema per endpoint name; other body-taking routes accept any
#: JSON object (their own validation still applies).
BODY_SCHEMAS: dict[str, dict[str, Any]] = {
    "channels.create_channel": schemas.CHANNEL_CREATE,
    "channels.modify_channel": schemas.CHANNEL_UPDATE,
    "channel_messages.send_message": schemas.MESSAGE_SEND,
}
NO_BODY = frozenset(
    {
        "channels.restart_channel",
        "channels.pause_channel",
        "channels.resume_channel",
        "dead_letters.replay_dead_letters",
    }
)

ENVELOPE = {
    "type": "object",
    "required": ["status", "code", "description", "result"],
    "properties": {
        "status": {"type": "integer"},
        "code": {"type": ["string", "integer"]},
        "description": {"type": ["string", "null"]},
        "result": {},
    },
}

#: Endpoints that answer something other than the envelope.
RESPONSES: dict[str, dict[str, Any]] = {
    "metrics.metrics": {
        "200": {
            "description": "The Prometheus exposition (docs/metrics.rst)",
            "content": {
                "text/plain; version=0.0.4": {"schema": {"type": "string"}},
                "application/openmetrics-text; version=1.0.0": {
                    "schema": {"type": "string"}
                },
            },
        }
    },
    "dashboard.page": {
        "200": {
            "description": "The dashboard's page (docs/dashboard.rst)",
            "content": {"text/html": {"schema": {"type": "string"}}},
        }
    },
    "dashboard.asset": {
        "200": {
            "description": "The dashboard's stylesheet or script",
            "content": {
                "text/css": {"schema": {"type": "string"}},
                "text/javascript": {"schema": {"type": "string"}},
            },
        }
    },
}

_PARAM = re.compile(r"<(?:(\w+):)?(\w+)>")


def path_template(rule: str) -> tuple[str, list[str]]:
    """A werkzeug rule as an OpenAPI path (``/channels/{channel_id}``) and
    the names of its parameters."""
    names = [match.group(2) for match in _PARAM.finditer(rule)]
    return _PARAM.sub(lambda m: "{" + m.group(2) + "}", rule), names


def _operation(endpoint: str, method: str, params: list[str]) -> dict[str, Any]:
    operation: dict[str, Any] = {
        "operationId": f"{endpoint}.{method}",
        "responses": RESPONSES.get(endpoint)
        or {
            "default": {
                "description": "The Junebug envelope",
                "content": {"application/json": {"schema": ENVELOPE}},
            }
        },
    }
    parameters: list[dict[str, Any]] = [
        {"name": name, "in": "path", "required": True, "schema": {"type": "string"}}
        for name in params
    ]
    if endpoint.endswith("logs") or endpoint.startswith("dead_letters"):
        parameters.append(
            {
                "name": "n",
                "in": "query",
                "required": False,
                "schema": {"type": "integer", "minimum": 1},
            }
        )
    if endpoint == "channel_messages.cancel_messages":
        parameters.extend(
            [
                {
                    "name": "priority",
                    "in": "query",
                    "required": False,
                    "schema": {"type": "integer", "minimum": 1, "maximum": 5},
                },
                {
                    "name": "older_than",
                    "in": "query",
                    "required": False,
                    "description": "seconds of age, or a UTC time (ISO 8601)",
                    "schema": {"type": "string"},
                },
            ]
        )
    if parameters:
        operation["parameters"] = parameters
    if method in ("post", "put", "patch") and endpoint not in NO_BODY:
        schema = BODY_SCHEMAS.get(endpoint, {"type": "object"})
        operation["requestBody"] = {
            "required": True,
            "content": {"application/json": {"schema": schema}},
        }
    return operation


def openapi_document(app: Klein) -> dict[str, Any]:
    """The OpenAPI document for every route of ``app``."""
    paths: dict[str, dict[str, Any]] = {}
    for rule in app.url_map.iter_rules():
        path, params = path_template(rule.rule)
        for method in sorted(rule.methods or ()):
            if method in ("HEAD", "OPTIONS"):
                continue
            paths.setdefault(path, {})[method.lower()] = _operation(
                rule.endpoint, method.lower(), params
            )
    return {
        "openapi": "3.1.0",
        "info": {"title": "Junebug", "version": __version__},
        "paths": dict(sorted(paths.items())),
    }
