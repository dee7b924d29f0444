"""The JSON envelope every response carries: ``{status, code, description, result}``."""

from __future__ import annotations

import json
from http import HTTPStatus
from typing import TYPE_CHECKING, Any

from twisted.web.iweb import IRequest

if TYPE_CHECKING:
    from junebug.http.server import Refusal


def reason_phrase(code: int) -> str | int:
    """The HTTP reason phrase for a code, or the code itself if unknown."""
    try:
        return HTTPStatus(code).phrase
    except ValueError:
        return code


def _default(value: Any) -> Any:
    if isinstance(value, set | frozenset):
        return sorted(value)
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


#: Built once: ``json.dumps`` with ``default=`` builds a new encoder per call.
_ENCODER = json.JSONEncoder(default=_default)


def render(request: IRequest, code: int, description: str | None, result: Any) -> bytes:
    """Set the status and content type on ``request`` and return the body."""
    request.setResponseCode(code)
    request.setHeader(b"Content-Type", b"application/json")
    return document(code, description, result)


def document(code: int, description: str | None, result: Any) -> bytes:
    """The envelope for ``code``, encoded."""
    body = {
        "status": code,
        "code": reason_phrase(code),
        "description": description,
        "result": result,
    }
    return _ENCODER.encode(body).encode("utf-8")


def refusal_body(refusal: Refusal) -> tuple[bytes, bytes]:
    """A request the HTTP server refused, in the envelope (its error format)."""
    error = {"type": refusal.name, "message": refusal.message}
    body = document(refusal.code, refusal.description, error_result([error]))
    return b"application/json", body


def error_result(errors: list[dict[str, Any]]) -> dict[str, Any]:
    return {"errors": errors}
