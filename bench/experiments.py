"""``python -m bench.experiments [jb args]``: jb with a change the profile
suggests, applied from outside, to measure it before anyone edits Junebug.

Not product switches.  Chosen with ``BENCH_EXPERIMENTS`` (comma-separated),
which ``python -m bench --experiment NAME`` sets:

``nodelay`` (or ``nodelay=amqp,redis,client,server``)
    ``TCP_NODELAY`` on every TCP connection (or only on some).  Twisted leaves
    Nagle's algorithm on; only the SMPP protocol turns it off.  A small write
    (an AMQP ack or publish, a Redis command) that follows unacknowledged data
    then waits for the peer's delayed ACK, up to 40 ms on Linux.
``noform``
    ``Site(parsePOSTFormSubmission=False)``: twisted.web stops parsing every
    POST's ``Content-Type`` with the ``email`` package (form bodies are never
    used by the API).
"""

from __future__ import annotations

import os
from typing import Any

#: ``nodelay=`` words: which connections get TCP_NODELAY.
PORTS = {"amqp": 5672, "redis": 6379}


def nodelay(which: str = "all") -> None:
    """Turn on TCP_NODELAY: ``all``, or a ``+``/``,`` list of ``amqp``
    (clients to port 5672), ``redis`` (6379), ``client`` (any other client,
    e.g. HTTP posts) and ``server`` (accepted connections: the API)."""
    from twisted.internet import tcp

    chosen = None if which == "all" else set(which.replace("+", ",").split(","))
    connect_done = tcp.BaseClient._connectDone
    server_init = tcp.Server.__init__

    def wanted(kind: str) -> bool:
        return chosen is None or kind in chosen

    def _connect_done(self: Any) -> None:
        try:
            port = self.socket.getpeername()[1]
        except OSError:
            port = None
        kind = next((k for k, p in PORTS.items() if p == port), "client")
        if wanted(kind):
            self.setTcpNoDelay(True)
        connect_done(self)

    def _server_init(self: Any, sock: Any, *args: Any, **kwargs: Any) -> None:
        server_init(self, sock, *args, **kwargs)
        if wanted("server"):
            self.setTcpNoDelay(True)

    tcp.BaseClient._connectDone = _connect_done  # type: ignore[method-assign]
    tcp.Server.__init__ = _server_init  # type: ignore[method-assign]


def noform() -> None:
    """Make ``Site`` default to ``parsePOSTFormSubmission=False``."""
    from twisted.web import server

    site_init = server.Site.__init__

    def _site_init(self: Any, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("parsePOSTFormSubmission", False)
        site_init(self, *args, **kwargs)

    server.Site.__init__ = _site_init  # type: ignore[method-assign]


def install(spec: str) -> None:
    """Apply every experiment named in ``spec`` (``nodelay,noform``)."""
    for item in filter(None, (part.strip() for part in spec.split(","))):
        name, _, argument = item.partition("=")
        if name == "nodelay":
            nodelay(argument or "all")
        elif name == "noform":
            noform()
        else:
            raise SystemExit(f"unknown experiment {name!r}")


if __name__ == "__main__":
    install(os.environ.get("BENCH_EXPERIMENTS", ""))
    from junebug.cli import main

    main()
