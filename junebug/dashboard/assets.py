"""The dashboard's files, read from the installed package once."""

from __future__ import annotations

from importlib import resources

import attrs

#: The files of ``junebug/dashboard/static/`` and their content types.
CONTENT_TYPES = {
    "index.html": b"text/html; charset=utf-8",
    "dashboard.css": b"text/css; charset=utf-8",
    "dashboard.js": b"text/javascript; charset=utf-8",
}


@attrs.frozen
class Asset:
    """One file of the dashboard, as served."""

    content_type: bytes
    body: bytes


def load_assets() -> dict[str, Asset]:
    """Every file of the dashboard by name (read now, served from memory)."""
    static = resources.files("junebug.dashboard") / "static"
    return {
        name: Asset(content_type, (static / name).read_bytes())
        for name, content_type in CONTENT_TYPES.items()
    }
