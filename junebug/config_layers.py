"""Layered configuration for any attrs config class: file < environment < flags.

``jb`` (:mod:`junebug.config`) and ``jb message-api``
(:mod:`junebug.message_api.config`) both read plain data from a YAML file, from
environment variables named after the fields, and from command-line flags
(:mod:`junebug.config_flags`), then merge those layers left to right before
the converter checks the result.  Everything here is driven by the fields of
the config class:

* a field whose type is an attrs class (``redis``, ``amqp``, ``auth``) is a
  *section*: its fields get their own variables (``<PREFIX>REDIS_HOST``) and
  flags, and layers merge it key by key;
* a field with ``accumulate=True`` in its metadata (``plugins``) collects the
  items of every layer instead of being replaced;
* every other key is replaced as a whole by a later layer.
"""

from __future__ import annotations

import functools
import operator
import types
import typing
from collections.abc import Mapping
from typing import Any

import attrs
import yaml

from junebug.config_yaml import load_yaml
from junebug.errors import ConfigError

_FIELD_TYPES: dict[type[Any], dict[str, Any]] = {}


def field_types(cls: type[Any]) -> dict[str, Any]:
    """The resolved type of every field of the attrs class ``cls``."""
    if cls not in _FIELD_TYPES:
        _FIELD_TYPES[cls] = typing.get_type_hints(cls)
    return _FIELD_TYPES[cls]


def optional_of(kind: Any) -> tuple[Any, bool]:
    """``(T, True)`` for ``T | None``, else ``(kind, False)``."""
    if typing.get_origin(kind) in (typing.Union, types.UnionType):
        args = typing.get_args(kind)
        if type(None) in args:
            rest = [arg for arg in args if arg is not type(None)]
            return functools.reduce(operator.or_, rest), True
    return kind, False


def section_class(cls: type[Any], name: str) -> type[Any] | None:
    """The attrs class of field ``name`` if that field is a section, else None."""
    kind, _optional = optional_of(field_types(cls)[name])
    return kind if isinstance(kind, type) and attrs.has(kind) else None


def fields_by_path(cls: type[Any]) -> dict[str, tuple[attrs.Attribute[Any], Any]]:
    """Every leaf field of ``cls`` by dotted path (sections one level deep),
    with its resolved type, in declaration order."""
    result: dict[str, tuple[attrs.Attribute[Any], Any]] = {}
    for field in attrs.fields(cls):
        section = section_class(cls, field.name)
        if section is None:
            result[field.name] = (field, field_types(cls)[field.name])
            continue
        for sub in attrs.fields(section):
            result[f"{field.name}.{sub.name}"] = (sub, field_types(section)[sub.name])
    return result


def env_var(prefix: str, path: str) -> str:
    """The environment variable of a config path: ``JUNEBUG_`` + ``redis.host``
    gives ``JUNEBUG_REDIS_HOST``."""
    return prefix + path.replace(".", "_").upper()


_TRUE = ("1", "true", "yes", "on")
_FALSE = ("0", "false", "no", "off")


def parse_bool(value: str) -> bool | None:
    """``True``/``False`` for the usual spellings (any case), None otherwise."""
    lowered = value.strip().lower()
    if lowered in _TRUE:
        return True
    if lowered in _FALSE:
        return False
    return None


def coerce_text(value: str, kind: Any, path: str) -> Any:
    """An environment variable's text as a value of the field type ``kind``.

    Mappings and lists are YAML (or JSON); booleans take the usual spellings
    and empty is false; an empty value of an optional field is ``null``.
    """
    base, optional = optional_of(kind)
    if typing.get_origin(base) in (dict, list) or base in (dict, list):
        try:
            return load_yaml(value, path)
        except yaml.YAMLError as exc:
            raise ConfigError(f"{path}: not valid YAML/JSON") from exc
    if base is bool:
        flag = parse_bool(value) if value.strip() else False
        if flag is None:
            raise ConfigError(f"{path}: expected a boolean, got {value!r}")
        return flag
    if optional and (value.strip() if base in (int, float) else value) == "":
        return None
    if base is int:
        try:
            return int(value)
        except ValueError:
            raise ConfigError(f"{path}: expected an integer, got {value!r}") from None
    if base is float:
        try:
            return float(value)
        except ValueError:
            raise ConfigError(f"{path}: expected a number, got {value!r}") from None
    return value


def from_environment(
    cls: type[Any], prefix: str, environ: Mapping[str, str]
) -> dict[str, Any]:
    """The values the ``<prefix>*`` variables set for ``cls``, as nested data."""
    result: dict[str, Any] = {}
    for path, (_field, kind) in fields_by_path(cls).items():
        var = env_var(prefix, path)
        if var not in environ:
            continue
        value = coerce_text(environ[var], kind, path)
        section, dot, name = path.partition(".")
        if dot:
            result.setdefault(section, {})[name] = value
        else:
            result[path] = value
    return result


def load_file(path: str) -> dict[str, Any]:
    """Read a YAML config file into plain data (a mapping, possibly empty)."""
    where = f"config: {path}"
    try:
        with open(path, encoding="utf-8") as handle:
            data = load_yaml(handle, where)
    except OSError as exc:
        raise ConfigError(f"config: cannot read {path}: {exc.strerror}") from exc
    except yaml.YAMLError as exc:
        raise ConfigError(f"{where} is not valid YAML: {exc}") from exc
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{where} must hold a mapping")
    return data


def merge(cls: type[Any], *layers: Mapping[str, Any]) -> dict[str, Any]:
    """Merge plain-data layers for ``cls`` left to right (see the module doc).

    A section given as something other than a mapping is refused, except
    ``null`` for a section that may be ``None`` (which unsets it).
    """
    result: dict[str, Any] = {}
    known = attrs.fields_dict(cls)
    for layer in layers:
        for key, value in layer.items():
            field = known.get(key)
            if field is None:
                result[key] = value
            elif section_class(cls, key) is not None:
                if value is None and optional_of(field_types(cls)[key])[1]:
                    result[key] = None
                    continue
                if not isinstance(value, Mapping):
                    raise ConfigError(f"config.{key}: expected a mapping")
                previous = result.get(key)
                merged = dict(previous) if isinstance(previous, Mapping) else {}
                merged.update(value)
                result[key] = merged
            elif field.metadata.get("accumulate") and isinstance(value, list):
                previous = result.get(key)
                earlier = previous if isinstance(previous, list) else []
                result[key] = [*earlier, *value]
            else:
                result[key] = value
    return result
