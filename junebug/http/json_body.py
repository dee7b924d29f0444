"""Strict JSON for request bodies, the one decoder every port uses.

Python's ``json`` accepts more than JSON: ``NaN``, ``Infinity`` and
``-Infinity``, and numbers such as ``1e999`` that become ``inf``; none can be
written back as JSON.  It also recurses once per nesting level, so a deep
enough body raises ``RecursionError`` (and a body just under that is stored,
then fails every time it is encoded).  :func:`loads` refuses all of these
with a :class:`JsonRefused`, a ``ValueError``, as for any other bad JSON.
"""

from __future__ import annotations

import json
import math
import re
from typing import Any, Final

#: Deepest nesting of arrays and objects accepted.
MAX_DEPTH: Final = 64

_STRING = re.compile(r'"(?:[^"\\]|\\.)*"', re.DOTALL)
_BRACKET = re.compile(r"[\[\]{}]")


class JsonRefused(ValueError):
    """Valid to Python's parser, but not JSON Junebug can keep and answer."""


def _constant(name: str) -> Any:
    raise JsonRefused(f"{name} is not a JSON number")


def _finite(text: str) -> float:
    value = float(text)
    if math.isinf(value):
        raise JsonRefused(f"Number out of range: {text}")
    return value


_DECODER: Final = json.JSONDecoder(parse_constant=_constant, parse_float=_finite)


def nesting_depth_exceeds(text: str, limit: int = MAX_DEPTH) -> bool:
    """Whether arrays and objects in ``text`` nest deeper than ``limit``."""
    if text.count("[") + text.count("{") <= limit:
        return False  # cannot nest deeper than it has brackets
    depth = 0
    for match in _BRACKET.finditer(_STRING.sub('""', text)):
        if match.group() in "[{":
            depth += 1
            if depth > limit:
                return True
        else:
            depth -= 1
    return False


def loads(text: str) -> Any:
    """Decode ``text`` as strict JSON; :class:`JsonRefused` or another
    ``ValueError`` if it is not."""
    if nesting_depth_exceeds(text):
        raise JsonRefused(f"JSON nested deeper than {MAX_DEPTH} levels")
    try:
        return _DECODER.decode(text)
    except RecursionError:  # pragma: no cover - the depth check comes first
        raise JsonRefused(f"JSON nested deeper than {MAX_DEPTH} levels") from None
