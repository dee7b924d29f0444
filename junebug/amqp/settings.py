"""Where and how to reach RabbitMQ: :class:`AmqpSettings`, from fields or a URL.

URLs follow RabbitMQ's URI specification::

    amqp://user:password@host:port/vhost?heartbeat=30
    amqps://user:password@host1:5671,host2:5671/vhost?cacertfile=/etc/ca.pem

``amqps`` is AMQP over TLS (port 5671 by default).  Several hosts, separated
by commas, are tried in order on every connection attempt.  The vhost is
URL-quoted (``%2F`` is ``/``; an empty path means ``/``).  Query options:

``heartbeat``
    seconds (``0`` turns heartbeats off);
``connection_timeout``
    milliseconds for the TCP connect and the AMQP handshake;
``channel_max``, ``frame_max``
    upper limits below the broker's own;
``cacertfile``, ``certfile``, ``keyfile``
    PEM files: the authorities to trust (default: the system's), the client
    certificate and its key (TLS only);
``verify``
    ``verify_peer`` (default) or ``verify_none`` (no certificate check: tests
    only);
``server_name_indication``
    the name the server's certificate must carry (default: the host).

Any other option is an error rather than silently ignored.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit

import attrs

__all__ = ["AmqpSettings", "TlsSettings"]

_DEFAULT_PORTS = {"amqp": 5672, "amqps": 5671}
_TLS_OPTIONS = {
    "cacertfile": "ca_file",
    "certfile": "cert_file",
    "keyfile": "key_file",
    "server_name_indication": "server_name",
}


@attrs.frozen
class TlsSettings:
    """AMQP over TLS.

    ``ca_file`` holds the PEM certificates of the authorities to trust
    (``None``: the system's trust store); ``cert_file`` and ``key_file`` a
    client certificate and its key, for brokers that ask for one.  With
    ``verify`` false the server's certificate is not checked at all.
    ``server_name`` is the name the certificate must carry (default: the
    host connected to).
    """

    ca_file: str | None = None
    cert_file: str | None = None
    key_file: str | None = None
    verify: bool = True
    server_name: str | None = None


@attrs.frozen
class AmqpSettings:
    """Where and how to reach RabbitMQ.

    ``host``/``port`` is tried first, then each of ``alternates`` in order.
    ``tls`` turns on TLS.  ``heartbeat`` is in seconds; ``None`` accepts the
    broker's proposal and ``0`` turns heartbeats off.  ``channel_max`` and
    ``frame_max`` lower the broker's limits (``None``: take them).
    ``connect_timeout`` bounds the TCP connect and then the AMQP handshake
    and set-up; ``operation_timeout`` bounds every later round trip (a
    publish confirm, a declare, opening a channel), after which the operation
    fails with :class:`~junebug.errors.BrokerError`.  ``retry_*`` shape the
    reconnect backoff: ``retry_initial_delay * 1.5**n`` capped at
    ``retry_max_delay``, plus up to ``retry_jitter`` seconds of random noise.
    """

    host: str = "127.0.0.1"
    port: int = 5672
    vhost: str = "/"
    username: str = "guest"
    password: str = attrs.field(default="guest", repr=False)
    heartbeat: int | None = None
    connect_timeout: float = 30.0
    operation_timeout: float = 30.0
    retry_initial_delay: float = 1.0
    retry_max_delay: float = 30.0
    retry_jitter: float = 1.0
    tls: TlsSettings | None = None
    alternates: tuple[tuple[str, int], ...] = ()
    channel_max: int | None = None
    frame_max: int | None = None

    @property
    def addresses(self) -> tuple[tuple[str, int], ...]:
        """Every ``(host, port)`` to try, in order."""
        return ((self.host, self.port), *self.alternates)

    @classmethod
    def from_url(cls, url: str, **overrides: Any) -> AmqpSettings:
        """Parse an ``amqp://`` or ``amqps://`` URL (see the module docs);
        ``overrides`` set the remaining fields.  :class:`ValueError` names
        what is wrong."""
        parts = urlsplit(url)
        scheme = parts.scheme.lower()
        if scheme not in _DEFAULT_PORTS:
            raise ValueError(f"not an amqp:// or amqps:// URL: {_redacted(url)!r}")
        userinfo, _, hostlist = parts.netloc.rpartition("@")
        addresses = [
            _address(item, _DEFAULT_PORTS[scheme], url) for item in hostlist.split(",")
        ]
        path = parts.path[1:] if parts.path.startswith("/") else parts.path
        fields: dict[str, Any] = {
            "host": addresses[0][0],
            "port": addresses[0][1],
            "alternates": tuple(addresses[1:]),
            "vhost": unquote(path) if path else "/",
        }
        if userinfo:
            username, colon, password = userinfo.partition(":")
            fields["username"] = unquote(username)
            if colon:
                fields["password"] = unquote(password)
        tls: dict[str, Any] = {}
        for name, value in parse_qsl(parts.query, keep_blank_values=True):
            _option(name, value, fields, tls)
        if tls and scheme != "amqps":
            raise ValueError(f"TLS options need an amqps:// URL: {sorted(tls)}")
        if scheme == "amqps":
            fields["tls"] = TlsSettings(**tls)
        fields.update(overrides)
        return cls(**fields)

    def describe(self) -> str:
        """``host:port/vhost`` for messages and logs (never the password)."""
        hosts = ",".join(f"{host}:{port}" for host, port in self.addresses)
        scheme = "amqps://" if self.tls is not None else ""
        return f"{scheme}{hosts}{'' if self.vhost == '/' else '/'}{self.vhost}"


def _address(item: str, default_port: int, url: str) -> tuple[str, int]:
    try:
        parts = urlsplit(f"//{item}")
        port = parts.port
    except ValueError as e:
        raise ValueError(f"bad host in {_redacted(url)!r}: {e}") from None
    return (parts.hostname or "127.0.0.1", port or default_port)


def _option(name: str, value: str, fields: dict[str, Any], tls: dict[str, Any]) -> None:
    if name in _TLS_OPTIONS:
        tls[_TLS_OPTIONS[name]] = None if value == "disable" else value
    elif name == "verify":
        if value not in ("verify_peer", "verify_none"):
            raise ValueError(
                f"verify must be verify_peer or verify_none, not {value!r}"
            )
        tls["verify"] = value == "verify_peer"
    elif name == "heartbeat":
        fields["heartbeat"] = _whole(name, value)
    elif name == "connection_timeout":
        fields["connect_timeout"] = _whole(name, value) / 1000
    elif name in ("channel_max", "frame_max"):
        fields[name] = _whole(name, value)
    else:
        raise ValueError(f"unknown AMQP URL option {name!r}")


def _whole(name: str, value: str) -> int:
    try:
        number = int(value)
    except ValueError:
        raise ValueError(f"{name} must be a whole number, not {value!r}") from None
    if number < 0:
        raise ValueError(f"{name} must not be negative")
    return number


def _redacted(url: str) -> str:
    """``url`` without its password."""
    scheme, sep, rest = url.partition("://")
    userinfo, at, tail = rest.rpartition("@")
    if not sep or not at or ":" not in userinfo:
        return url
    return f"{scheme}://{userinfo.partition(':')[0]}:***@{tail}"
