"""The one cattrs converter that turns plain data into typed config objects.

Errors name the offending field (``config.port: expected int``), so both the
CLI and the HTTP API can show a one-line reason.  Unknown keys are ignored
unless ``forbid_extra_keys`` is asked for.
"""

from __future__ import annotations

from typing import Any, TypeVar

import cattrs
from cattrs.errors import ForbiddenExtraKeysError
from cattrs.v import format_exception, transform_error

from junebug.errors import ConfigError

T = TypeVar("T")

_lenient = cattrs.Converter(forbid_extra_keys=False)
_strict = cattrs.Converter(forbid_extra_keys=True)


def _no_bool_to_number(value: Any, cls: type[Any]) -> Any:
    # cattrs would turn True into 1 and "5" into 5; config is typed, so refuse.
    if isinstance(value, bool) or not isinstance(value, int | float):
        if cls is float and isinstance(value, int) and not isinstance(value, bool):
            return float(value)
        raise ValueError(f"expected {cls.__name__}, got {type(value).__name__}")
    return cls(value)


def _exact_str(value: Any, _cls: type[Any]) -> str:
    if not isinstance(value, str):
        raise ValueError(f"expected str, got {type(value).__name__}")
    return value


def _exact_bool(value: Any, _cls: type[Any]) -> bool:
    if not isinstance(value, bool):
        raise ValueError(f"expected bool, got {type(value).__name__}")
    return value


def _int_or_str(value: Any, _cls: Any) -> int | str:
    # A count or a keyword (``workers: auto``); the field's own converter
    # and validator say which strings it takes.
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise ValueError(f"expected int or str, got {type(value).__name__}")
    return value


for _conv in (_lenient, _strict):
    _conv.register_structure_hook(int | str, _int_or_str)
    _conv.register_structure_hook(int, _no_bool_to_number)
    _conv.register_structure_hook(float, _no_bool_to_number)
    _conv.register_structure_hook(str, _exact_str)
    _conv.register_structure_hook(bool, _exact_bool)


def _format(exc: BaseException, type_: type[Any] | None) -> str:
    if isinstance(exc, ConfigError | ValueError) and not isinstance(
        exc, cattrs.BaseValidationError
    ):
        text = str(exc)
        if text and not text.startswith("invalid literal"):
            return text
    return format_exception(exc, type_)


def structure(
    data: Any, cls: type[T], *, path: str = "config", forbid_extra_keys: bool = False
) -> T:
    """Structure ``data`` into ``cls`` or raise ConfigError naming the field."""
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected an object")
    converter = _strict if forbid_extra_keys else _lenient
    try:
        return converter.structure(data, cls)
    except (cattrs.BaseValidationError, ForbiddenExtraKeysError) as exc:
        messages = transform_error(exc, path=path, format_exception=_format)
        raise ConfigError("; ".join(messages)) from exc
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"{path}: {exc}") from exc


def unstructure(value: Any) -> Any:
    """Plain data for a config object."""
    return _lenient.unstructure(value)
