"""Command-line flags generated from an attrs config class.

Every leaf field gets a flag named after its path (``max_logs`` is
``--max-logs``, ``redis.host`` is ``--redis-host``), typed after its
annotation and with its ``doc`` metadata, default and environment variable as
help.  A command may give other names for some fields (the original ``jb``'s
``--log-file`` and ``-redish``) and leave some out; new fields get flags
without anything else to change.  By type:

* ``bool``: ``--flag`` alone is true; ``--flag false`` (or ``no``, ``0``...) too;
* ``int``, ``float``, ``str``: one value;
* ``dict[str, str]``: repeatable ``NAME:VALUE`` pairs, collected into a mapping;
* other mappings: one JSON (or YAML) object;
* lists: repeatable, one item (a JSON or YAML object for lists of mappings) each.

Flags that are not given leave no trace (``argparse.SUPPRESS``), so they never
override the file or the environment; :func:`cli_layer` turns the parsed
namespace into a nested layer for :mod:`junebug.config_layers`.
"""

from __future__ import annotations

import argparse
import json
import typing
from collections.abc import Collection, Mapping, Sequence
from typing import Any

import attrs
import yaml

from junebug.config_layers import env_var, fields_by_path, optional_of, parse_bool
from junebug.config_yaml import load_yaml
from junebug.errors import ConfigError

#: The ``dest`` of ``--config``; every other dest is a config path.
CONFIG_FILE_DEST = "config_filename"


def bool_value(value: str) -> bool:
    """argparse type: a boolean in the usual spellings."""
    flag = parse_bool(value)
    if flag is None:
        raise argparse.ArgumentTypeError(f"expected true or false, got {value!r}")
    return flag


def pair_value(value: str) -> tuple[str, str]:
    """argparse type: ``name:value`` (the value may hold more colons)."""
    name, sep, rest = value.partition(":")
    if not sep or not name or not rest:
        raise argparse.ArgumentTypeError(f"expected 'name:value', got {value!r}")
    return name, rest


def mapping_value(value: str) -> dict[str, Any]:
    """argparse type: a JSON object, or a YAML mapping."""
    try:
        data = json.loads(value)
    except ValueError:
        try:
            data = load_yaml(value, "flag value")
        except (yaml.YAMLError, ConfigError):
            raise argparse.ArgumentTypeError(f"not a JSON object: {value!r}") from None
    if not isinstance(data, dict):
        raise argparse.ArgumentTypeError(f"expected a JSON object, got {value!r}")
    return data


class ArgumentParser(argparse.ArgumentParser):
    """argparse's parser, except that an abbreviation matching several options
    means the one of them in ``preferred``, if only one is.  A command's
    original options so keep every abbreviation they had when generated
    flags are added next to them (``--amqp-h`` stays ``--amqp-host`` although
    ``--amqp-heartbeat`` exists)."""

    def __init__(self, *args: Any, preferred: Collection[str] = (), **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.preferred = frozenset(preferred)

    def _get_option_tuples(self, option_string: str) -> Any:
        matches = super()._get_option_tuples(option_string)
        if len(matches) > 1:
            chosen = [match for match in matches if match[1] in self.preferred]
            if len(chosen) == 1:
                return chosen
        return matches


class PairsAction(argparse.Action):
    """Collects repeated ``name:value`` flags into one mapping."""

    def __call__(
        self,
        parser: argparse.ArgumentParser,
        namespace: argparse.Namespace,
        values: Any,
        option_string: str | None = None,
    ) -> None:
        pairs = dict(getattr(namespace, self.dest, None) or {})
        name, value = values
        pairs[name] = value
        setattr(namespace, self.dest, pairs)


def is_repeatable(action: argparse.Action) -> bool:
    """Whether an option may be given more than once, each adding to it."""
    return isinstance(action, PairsAction | argparse._AppendAction)


def _scalar(kind: Any) -> dict[str, Any]:
    if kind is bool:
        return {"type": bool_value, "nargs": "?", "const": True, "metavar": "BOOL"}
    if kind in (int, float):
        return {"type": kind}
    return {"type": str}


def flag_keywords(kind: Any) -> dict[str, Any]:
    """argparse keywords for a field of (resolved) type ``kind``."""
    base, _optional = optional_of(kind)
    origin = typing.get_origin(base) or base
    args = typing.get_args(base)
    if origin is dict:
        if args and args[1] is str:
            return {"action": PairsAction, "type": pair_value, "metavar": "NAME:VALUE"}
        return {"type": mapping_value, "metavar": "JSON"}
    if origin is list:
        item = args[0] if args else Any
        item_origin = typing.get_origin(item) or item
        if item_origin is dict:
            return {"action": "append", "type": mapping_value, "metavar": "JSON"}
        return {"action": "append", **_scalar(item)}
    return _scalar(base)


def long_flag(path: str) -> str:
    """The generated long name of a config path."""
    return "--" + path.replace(".", "-").replace("_", "-")


def option_strings(path: str, names: Mapping[str, Sequence[str]]) -> list[str]:
    """The flags of a path: its own ``names`` if they hold a long one, else the
    generated long name followed by any short ``names``."""
    given = list(names.get(path, ()))
    if any(name.startswith("--") for name in given):
        return given
    return [long_flag(path), *given]


def help_text(field: attrs.Attribute[Any], var: str) -> str:
    """A field's doc, its default (unless built by a factory) and its variable."""
    default: Any = field.default
    shown = ""
    factory = isinstance(default, attrs.Factory)  # type: ignore[arg-type]
    if default is not attrs.NOTHING and not factory:
        shown = (
            f" (default: {default!r})" if default == "" else f" (default: {default})"
        )
    doc = str(field.metadata.get("doc", ""))
    return f"{doc}{shown} [env {var}]".replace("%", "%%")


def add_config_flags(
    parser: argparse.ArgumentParser,
    cls: type[Any],
    *,
    env_prefix: str,
    names: Mapping[str, Sequence[str]] | None = None,
    skip: Collection[str] = (),
) -> None:
    """Add a flag for every leaf field of ``cls`` (see the module doc)."""
    for path, (field, kind) in fields_by_path(cls).items():
        if path in skip:
            continue
        keywords = flag_keywords(kind)
        metavar = field.metadata.get("metavar")
        if metavar:
            keywords["metavar"] = metavar
        keywords.setdefault("metavar", field.name.upper())
        text = help_text(field, env_var(env_prefix, path))
        if keywords.get("action") in ("append", PairsAction):
            text = f"{text} (repeatable)"
        parser.add_argument(
            *option_strings(path, names or {}), dest=path, help=text, **keywords
        )


def cli_layer(namespace: argparse.Namespace) -> tuple[str | None, dict[str, Any]]:
    """The config file path and the explicitly given flags as nested data."""
    values = dict(vars(namespace))
    path = values.pop(CONFIG_FILE_DEST, None)
    layer: dict[str, Any] = {}
    for dest, value in values.items():
        section, dot, name = dest.partition(".")
        if dot:
            layer.setdefault(section, {})[name] = value
        else:
            layer[dest] = value
    return path, layer
