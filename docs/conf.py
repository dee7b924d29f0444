"""Sphinx configuration for Junebug's documentation.

Build with ``sphinx-build -W -b html docs docs/_build/html`` (the ``docs``
extra installs Sphinx and sphinxcontrib-httpdomain).
"""

from __future__ import annotations

import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
# The local extensions, and the package itself when it is not installed.
sys.path.insert(0, str(HERE / "_ext"))
sys.path.insert(0, str(HERE.parent))

from junebug import __version__  # noqa: E402

project = "Junebug"
author = "Junebug contributors"
copyright = "the Junebug authors"  # noqa: A001 - a Sphinx setting
version = release = __version__

extensions = [
    "myst_parser",  # docs/performance.md
    "sphinxcontrib.httpdomain",
    "configref",
    "cliref",
]

root_doc = "index"
source_suffix = {".rst": "restructuredtext", ".md": "markdown"}
exclude_patterns = ["_build", "**/README.md"]
source_suffix = {".rst": "restructuredtext"}
templates_path: list[str] = []
html_static_path: list[str] = []
html_theme = "alabaster"
highlight_language = "none"
nitpicky = False

# httpdomain: group the routing table by the first path segment.
http_index_shortname = "API"
http_index_localname = "HTTP routing table"
http_strict_mode = True
