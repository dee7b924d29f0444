"""The config of the ``telnet`` and ``telnet_addr`` channel types."""

from __future__ import annotations

from typing import Any, cast

import attrs
from twisted.internet.endpoints import serverFromString

from junebug.errors import ConfigError


def _escape_endpoint_value(value: str) -> str:
    """Escape a value for a Twisted endpoint description (``:`` and ``\\``)."""
    return value.replace("\\", "\\\\").replace(":", "\\:")


@attrs.frozen
class TelnetConfig:
    """Where a telnet channel listens and how its MO messages are labelled.

    ``twisted_endpoint`` is a Twisted *server* endpoint description such as
    ``tcp:9001`` (``tcp:0`` picks a free port).  Without it, the legacy
    ``telnet_host``/``telnet_port`` pair becomes
    ``tcp:interface=<host>:port=<port>``.  ``to_addr`` is the ``to_addr`` of
    every MO message; by default it is the listening ``host:port``.
    """

    twisted_endpoint: str | None = None
    telnet_host: str | None = None
    telnet_port: int | None = None
    to_addr: str | None = None
    transport_type: str = "telnet"

    def __attrs_post_init__(self) -> None:
        if self.twisted_endpoint is None:
            if self.telnet_port is None:
                raise ConfigError(
                    "twisted_endpoint: a server endpoint such as 'tcp:9001' is "
                    "required (or the legacy telnet_port)"
                )
            if not 0 <= self.telnet_port <= 65535:
                raise ConfigError(
                    f"telnet_port: {self.telnet_port} is not a TCP port number"
                )
            return
        if not self.twisted_endpoint.strip():
            raise ConfigError("twisted_endpoint: must not be empty")
        try:
            # Parsing needs no reactor; a bad description fails here, so a
            # bad channel config is rejected when it is created.
            serverFromString(cast(Any, None), self.twisted_endpoint)
        except Exception as exc:
            raise ConfigError(
                f"twisted_endpoint: not a server endpoint description "
                f"({self.twisted_endpoint!r}): {exc}"
            ) from exc

    @property
    def endpoint(self) -> str:
        """The server endpoint description to listen on."""
        if self.twisted_endpoint is not None:
            return self.twisted_endpoint
        parts = ["tcp"]
        if self.telnet_host:
            parts.append(f"interface={_escape_endpoint_value(self.telnet_host)}")
        parts.append(f"port={self.telnet_port}")
        return ":".join(parts)
