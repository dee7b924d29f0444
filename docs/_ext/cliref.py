"""``.. junebug-cli::`` -- the ``jb`` command reference, built from the parser.

The usage line and one ``.. option::`` per argument come from
:func:`junebug.cli.build_parser`; each option also names the config key it
sets, with that key's default and environment variable (from
:mod:`junebug.config`).  Options are then linkable as ``:option:`jb --port```.
"""

from __future__ import annotations

import argparse
from typing import Any

import attrs
from configref import default_of, env_var, literal, sentence
from docutils import nodes
from docutils.statemachine import StringList
from sphinx.application import Sphinx
from sphinx.util.docutils import SphinxDirective
from sphinx.util.nodes import nested_parse_with_titles

#: Width of the generated usage text, so it does not depend on the terminal.
USAGE_WIDTH = 78


def config_field(path: str) -> attrs.Attribute[Any] | None:
    """The attrs field of a dotted config path, or None if there is none."""
    from junebug.config import JunebugConfig

    cls: Any = JunebugConfig
    field = None
    for part in path.split("."):
        if cls is None or not attrs.has(cls):
            return None
        field = attrs.fields_dict(cls).get(part)
        if field is None:
            return None
        default = default_of(field)
        cls = type(default) if attrs.has(type(default)) else None
    return field


def invocation(action: argparse.Action) -> str:
    """``--long ARG, -s ARG`` for an option (long names first)."""
    names = sorted(action.option_strings, key=lambda n: not n.startswith("--"))
    if action.nargs == 0:
        return ", ".join(names)
    # The same placeholder ``jb --help`` shows.
    metavar = str(action.metavar or action.dest.upper())
    if action.nargs == "?":
        metavar = f"[{metavar}]"
    return ", ".join(f"{name} {metavar}" for name in names)


def option_lines(action: argparse.Action) -> list[str]:
    from junebug.config_flags import is_repeatable

    lines = [f".. option:: {invocation(action)}", ""]
    field = config_field(action.dest)
    if field is None:
        return [*lines, f"   {sentence(action.help or '')}", ""]
    # The field's own text: ``--help`` adds the default and variable to it,
    # which the line below gives with links.
    lines += [f"   {sentence(field.metadata.get('doc', ''))}", ""]
    lines.append(
        f"   Sets :jbconfig:`{action.dest}` (default {literal(default_of(field))};"
        f" environment ``{env_var(action.dest)}``)."
    )
    if is_repeatable(action):
        if field.metadata.get("accumulate"):
            lines.append(
                "   May be repeated; the items are added to the config file's."
            )
        else:
            lines.append(
                "   May be repeated; if given, the items replace the config file's."
            )
    lines.append("")
    return lines


def cli_lines() -> list[str]:
    from junebug.cli import build_parser

    parser = build_parser()
    parser.formatter_class = lambda prog: argparse.HelpFormatter(
        prog, width=USAGE_WIDTH
    )
    usage = parser.format_usage().strip()
    lines = [
        "::",
        "",
        *(f"   {line}" for line in usage.splitlines()),
        "",
        ".. program:: jb",
        "",
    ]
    for action in parser._actions:  # argparse has no public accessor
        if not action.option_strings or action.dest == "help":
            continue
        lines += option_lines(action)
    return lines


class CliReference(SphinxDirective):
    """Renders the usage and every option of ``jb``."""

    has_content = False

    def run(self) -> list[nodes.Node]:
        import junebug.cli
        import junebug.config

        self.env.note_dependency(junebug.cli.__file__)
        self.env.note_dependency(junebug.config.__file__)
        node = nodes.section()
        node.document = self.state.document
        nested_parse_with_titles(
            self.state, StringList(cli_lines(), source="junebug/cli.py"), node
        )
        return list(node.children)


def setup(app: Sphinx) -> dict[str, Any]:
    app.setup_extension("configref")
    app.add_directive("junebug-cli", CliReference)
    return {"version": "1", "parallel_read_safe": True, "parallel_write_safe": True}
