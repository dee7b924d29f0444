"""YAML for configuration: the safe loader, with alias expansion bounded.

YAML anchors and aliases let a few lines stand for a huge structure (the
"billion laughs": nine aliases of nine aliases of ...).  PyYAML builds it
cheaply with shared references, but anything that walks it afterwards (the
config converter, JSON encoding of a channel) expands it and runs out of
memory.  :func:`load_yaml` composes the document first and counts how many
values the aliases add once expanded; past :data:`MAX_ALIAS_EXPANSION` (or if
an alias refers to a value containing itself) the document is refused with a
:class:`~junebug.errors.ConfigError` before anything is built.
"""

from __future__ import annotations

from typing import IO, Any

import yaml

from junebug.errors import ConfigError

#: Values that aliases may add to a document once expanded.  Sharing a block
#: of settings between a few channels stays far below this.
MAX_ALIAS_EXPANSION = 10_000


def _children(node: yaml.Node) -> list[yaml.Node]:
    if isinstance(node, yaml.SequenceNode):
        return list(node.value)
    if isinstance(node, yaml.MappingNode):
        return [part for pair in node.value for part in pair]
    return []


def expanded_size(root: yaml.Node, where: str) -> int:
    """The number of values under ``root`` with every alias expanded.

    Each distinct node is measured once (iteratively, so deep nesting cannot
    exhaust the stack); a node reached again through itself is a cycle.
    """
    sizes: dict[int, int] = {}
    open_nodes: set[int] = set()
    stack: list[tuple[yaml.Node, bool]] = [(root, False)]
    while stack:
        node, children_done = stack.pop()
        key = id(node)
        if children_done:
            open_nodes.discard(key)
            sizes[key] = 1 + sum(sizes[id(child)] for child in _children(node))
            continue
        if key in sizes:
            continue
        if key in open_nodes:
            raise ConfigError(f"{where}: a YAML alias refers to a value containing it")
        open_nodes.add(key)
        stack.append((node, True))
        stack.extend((child, False) for child in _children(node))
    return sizes[id(root)]


def _distinct_nodes(root: yaml.Node) -> int:
    seen: set[int] = set()
    stack = [root]
    while stack:
        node = stack.pop()
        if id(node) not in seen:
            seen.add(id(node))
            stack.extend(_children(node))
    return len(seen)


def load_yaml(source: str | IO[str], where: str) -> Any:
    """Parse one YAML document safely (plain data only).

    Raises :class:`yaml.YAMLError` for text that is not YAML, and
    :class:`~junebug.errors.ConfigError` (naming ``where``) for a document whose
    aliases expand too far, refer to themselves, or that nests too deeply.
    """
    loader = yaml.SafeLoader(source)
    try:
        node = loader.get_single_node()
        if node is None:
            return None
        added = expanded_size(node, where) - _distinct_nodes(node)
        if added > MAX_ALIAS_EXPANSION:
            raise ConfigError(
                f"{where}: YAML aliases expand to more than {MAX_ALIAS_EXPANSION} "
                "extra values (an alias bomb?); refused"
            )
        return loader.construct_document(node)
    except RecursionError:
        raise ConfigError(f"{where}: YAML nested too deeply") from None
    finally:
        loader.dispose()
