"""``.. junebug-config::`` -- the config file reference, built from the code.

Every field of :class:`junebug.config.JunebugConfig` (and of the nested
``redis`` and ``amqp`` classes) becomes one entry: its YAML key, type, default,
the ``doc`` text of its attrs metadata, the environment variable that sets it
and the ``jb`` flags (read from :func:`junebug.cli.build_parser`) that set it.
Nothing in the table is written by hand, so it cannot drift from the code.
"""

from __future__ import annotations

import argparse
from typing import Any

import attrs
from docutils import nodes
from docutils.statemachine import StringList
from sphinx.application import Sphinx
from sphinx.util.docutils import SphinxDirective
from sphinx.util.nodes import nested_parse_with_titles


def env_var(path: str) -> str:
    """The environment variable for a config path (``redis.host`` ...)."""
    from junebug.config import ENV_PREFIX

    return ENV_PREFIX + path.replace(".", "_").upper()


def flags_by_dest(parser: argparse.ArgumentParser) -> dict[str, list[str]]:
    """Config path -> the option strings of ``jb`` that set it."""
    result: dict[str, list[str]] = {}
    for action in parser._actions:  # argparse has no public accessor
        if action.option_strings and action.dest != "help":
            result.setdefault(action.dest, []).extend(action.option_strings)
    return result


def default_of(field: attrs.Attribute[Any]) -> Any:
    """A field's default value, calling its factory if it has one."""
    default: Any = field.default
    if isinstance(default, attrs.Factory):  # type: ignore[arg-type]
        factory: Any = default.factory
        return factory()
    return default


def sentence(text: str) -> str:
    """``text`` ending with a full stop."""
    text = text.strip()
    return text if not text or text.endswith((".", "!", "?")) else text + "."


def type_text(kind: Any) -> str:
    """A field's annotation as text (annotations are usually strings here)."""
    return kind.__name__ if isinstance(kind, type) else str(kind)


def literal(value: Any) -> str:
    """A default as the YAML a user would write."""
    if value is None:
        return "``null``"
    if isinstance(value, bool):
        return "``true``" if value else "``false``"
    if value == {}:
        return "``{}``"
    if value == []:
        return "``[]``"
    return f"``{value}``"


def field_entries(
    cls: type[Any], prefix: str, flags: dict[str, list[str]]
) -> list[str]:
    """RST lines for every field of ``cls``; nested attrs classes recurse."""
    lines: list[str] = []
    nested: list[tuple[str, type[Any], str]] = []
    for field in attrs.fields(cls):
        path = prefix + field.name
        default = default_of(field)
        if attrs.has(type(default)):
            nested.append((path, type(default), (type(default).__doc__ or "")))
            continue
        doc = field.metadata.get("doc")
        if not doc:
            raise ValueError(f"config field {path} has no 'doc' metadata")
        lines += [
            f".. jbconfig:: {path}",
            "",
            f"   {sentence(doc)}",
            "",
            f"   :Type: ``{type_text(field.type)}``",
            f"   :Default: {literal(default)}",
            f"   :Environment: ``{env_var(path)}``",
        ]
        options = flags.get(path)
        if options:
            lines.append(
                "   :Flags: " + ", ".join(f":option:`jb {o}`" for o in options)
            )
        lines.append("")
    for path, sub, text in nested:
        title = f"``{path}``: {text.strip().rstrip('.')}"
        lines += [title, "~" * len(title), ""]
        lines += field_entries(sub, path + ".", flags)
    return lines


class ConfigReference(SphinxDirective):
    """Renders every configuration field."""

    has_content = False

    def run(self) -> list[nodes.Node]:
        import junebug.cli
        import junebug.config

        self.env.note_dependency(junebug.config.__file__)
        self.env.note_dependency(junebug.cli.__file__)
        flags = flags_by_dest(junebug.cli.build_parser())
        lines = field_entries(junebug.config.JunebugConfig, "", flags)
        node = nodes.section()
        node.document = self.state.document
        nested_parse_with_titles(
            self.state, StringList(lines, source="junebug/config.py"), node
        )
        return list(node.children)


def setup(app: Sphinx) -> dict[str, Any]:
    app.add_object_type(
        "jbconfig",
        "jbconfig",
        objname="Junebug configuration value",
        indextemplate="pair: %s; configuration value",
    )
    app.add_directive("junebug-config", ConfigReference)
    return {"version": "1", "parallel_read_safe": True, "parallel_write_safe": True}
