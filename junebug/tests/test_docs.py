"""The documentation matches the code.

* Route parity: the ``.. http:<method>:: <path>`` directives of ``docs/*.rst``
  and the routes of the API's Klein app (``JunebugApi(...).app.url_map``) are
  the same set of (METHOD, path) pairs, with every path placeholder
  (``<string:x>``, ``<x>``, ``(x)``, ``(string:x)``) reduced to ``{}``.  HEAD
  and OPTIONS are ignored (Werkzeug adds HEAD to every GET).  So every route
  is documented and every documented route exists.
* The docs build with ``sphinx-build -W`` (warnings are errors), when Sphinx
  and sphinxcontrib-httpdomain are installed (the ``docs`` extra).
* The hand-written parts that mirror code constants still match them.
"""

from __future__ import annotations

import importlib.util
import re
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import pytest
from twisted.internet.defer import Deferred
from twisted.internet.task import Clock

from junebug.config import JunebugConfig, build_config, from_environment
from junebug.service import start_junebug

ROOT = Path(__file__).resolve().parents[2]
DOCS = ROOT / "docs"

HTTP_DIRECTIVE = re.compile(
    r"^[ \t]*\.\.[ \t]+http:(get|post|put|patch|delete)::[ \t]+(\S+)",
    re.MULTILINE | re.IGNORECASE,
)
IGNORED_METHODS = frozenset({"HEAD", "OPTIONS"})
WERKZEUG_PLACEHOLDER = re.compile(r"<(?:[^<>:]+:)?[^<>]+>")
HTTPDOMAIN_PLACEHOLDER = re.compile(r"\((?:[^():]+:)?[^()]+\)")

HAVE_SPHINX = all(
    importlib.util.find_spec(name) is not None
    for name in ("sphinx", "sphinxcontrib.httpdomain", "myst_parser")
)
needs_sphinx = pytest.mark.skipif(
    not HAVE_SPHINX,
    reason="needs sphinx, sphinxcontrib-httpdomain and myst-parser (pip install -e '.[docs]')",
)


def normalise(path: str) -> str:
    """A route or documented path with its placeholders made anonymous."""
    path = path.split("?", 1)[0]
    path = WERKZEUG_PLACEHOLDER.sub("{}", path)
    return HTTPDOMAIN_PLACEHOLDER.sub("{}", path)


def documented_routes() -> dict[tuple[str, str], list[str]]:
    """(METHOD, path) -> the docs files documenting it."""
    found: dict[tuple[str, str], list[str]] = {}
    for page in sorted(DOCS.glob("*.rst")):
        for match in HTTP_DIRECTIVE.finditer(page.read_text(encoding="utf-8")):
            key = (match.group(1).upper(), normalise(match.group(2)))
            found.setdefault(key, []).append(page.name)
    return found


def _run_now(coroutine: Any) -> Any:
    """Run a coroutine that finishes without the reactor running (fake clock)."""
    results: list[Any] = []
    Deferred.fromCoroutine(coroutine).addBoth(results.append)
    assert results, "start-up waited on the (fake) clock"
    result = results[0]
    if hasattr(result, "raiseException"):
        result.raiseException()
    return result


def app_routes() -> dict[tuple[str, str], str]:
    """(METHOD, path) -> the Werkzeug rule, from a fully wired in-memory Junebug."""
    with tempfile.TemporaryDirectory(prefix="junebug-docs-") as logs:
        # Every optional route on (the dashboard's are documented too).
        config = build_config(
            {"embedded": True, "logging_path": logs, "dashboard": True}
        )
        junebug = _run_now(start_junebug(Clock(), config, listen=False))
        try:
            routes: dict[tuple[str, str], str] = {}
            for rule in junebug.api.app.url_map.iter_rules():
                for method in set(rule.methods or ()) - IGNORED_METHODS:
                    routes[(method, normalise(rule.rule))] = rule.rule
        finally:
            _run_now(junebug.stop())
    return routes


def test_normalise() -> None:
    assert normalise("/channels/<string:channel_id>/messages/<mid>") == (
        "/channels/{}/messages/{}"
    )
    assert normalise("/channels/(channel_id)/logs?n=3") == "/channels/{}/logs"
    assert normalise("/routers/(string:router_id)") == "/routers/{}"


def test_every_route_is_documented() -> None:
    documented = documented_routes()
    missing = sorted(
        f"{method} {rule}"
        for (method, path), rule in app_routes().items()
        if (method, path) not in documented
    )
    assert not missing, (
        "routes without a '.. http:<method>:: <path>' directive in docs/*.rst: "
        + ", ".join(missing)
    )


def test_every_documented_route_exists() -> None:
    routes = app_routes()
    phantom = sorted(
        f"{method} {path} ({', '.join(pages)})"
        for (method, path), pages in documented_routes().items()
        if (method, path) not in routes
    )
    assert not phantom, "documented routes the API does not have: " + ", ".join(phantom)


def test_cli_page_lists_every_reactor() -> None:
    from junebug.cli import REACTORS

    text = (DOCS / "cli.rst").read_text(encoding="utf-8")
    for name in [*REACTORS, "DEFAULT"]:
        assert f"``{name}``" in text, f"JUNEBUG_REACTOR value {name} not in cli.rst"


@needs_sphinx
def test_documented_environment_variables_work() -> None:
    """The variable names the config reference shows are the ones read."""
    sys.path.insert(0, str(DOCS / "_ext"))
    try:
        import configref
    finally:
        sys.path.remove(str(DOCS / "_ext"))
    import attrs

    for field in attrs.fields(JunebugConfig):
        default = configref.default_of(field)
        if attrs.has(type(default)):
            for sub in attrs.fields(type(default)):
                path = f"{field.name}.{sub.name}"
                env = {configref.env_var(path): "1"}
                assert sub.name in from_environment(env)[field.name], path
        else:
            env = {configref.env_var(field.name): "1"}
            assert field.name in from_environment(env), field.name


@needs_sphinx
def test_docs_build_without_warnings() -> None:
    with tempfile.TemporaryDirectory(prefix="junebug-docs-build-") as out:
        result = subprocess.run(
            [
                sys.executable,
                "-m",
                "sphinx",
                "-W",
                "--keep-going",
                "-E",
                "-q",
                "-b",
                "html",
                "-d",
                str(Path(out) / ".doctrees"),
                str(DOCS),
                str(Path(out) / "html"),
            ],
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
    assert result.returncode == 0, result.stdout + result.stderr
