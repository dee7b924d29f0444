"""Where a Redis server is and how to log in: from config fields or a URL.

URL forms (``url`` in the config replaces ``host``/``port``/``db``/``username``
/``password``/``tls`` when set)::

    redis://[[username]:password@]host[:port][/db]
    rediss://[[username]:password@]host[:port][/db]     (TLS)
    unix://[[username]:password@]/path/to/redis.sock[?db=N]

User and password are percent-decoded.  A host in brackets is an IPv6 address
(``redis://[::1]:6379/0``); a host name is resolved to IPv4 and IPv6 addresses
and the first that answers is used.  TLS verifies the server's certificate
(:mod:`junebug.tls`) against the platform's CA store or ``ca_file``.
"""

from __future__ import annotations

from typing import Any, Final, Protocol
from urllib.parse import parse_qs, unquote, urlsplit

import attrs
from twisted.internet.endpoints import UNIXClientEndpoint, wrapClientTLS
from twisted.internet.interfaces import IStreamClientEndpoint

from junebug.endpoints import tcp_endpoint
from junebug.reactors import TimeTCPReactor
from junebug.tls import TlsSettings

__all__ = ["RedisAddress", "RedisSettings", "address_of", "redis_url_validator"]

DEFAULT_PORT: Final = 6379
_SCHEMES: Final = ("redis", "rediss", "unix")


@attrs.frozen
class RedisAddress:
    """A Redis server: TCP ``host``:``port`` (``tls`` or not) or ``unix_socket``."""

    host: str = "localhost"
    port: int = DEFAULT_PORT
    db: int = 0
    username: str | None = None
    password: str | None = attrs.field(default=None, repr=False)
    tls: bool = False
    ca_file: str | None = None
    unix_socket: str | None = None

    @classmethod
    def from_url(cls, url: str, *, ca_file: str | None = None) -> RedisAddress:
        """Parse one of the URL forms of the module doc; ``ValueError`` if not."""
        try:
            parts = urlsplit(url)
            port = parts.port
        except ValueError as exc:
            raise ValueError(f"not a Redis URL ({exc}): {_shown(url)}") from None
        if parts.scheme not in _SCHEMES:
            raise ValueError(
                f"a Redis URL starts with redis://, rediss:// or unix://: {_shown(url)}"
            )
        username = unquote(parts.username) if parts.username else None
        password = unquote(parts.password) if parts.password is not None else None
        query = parse_qs(parts.query)
        if parts.scheme == "unix":
            if not parts.path:
                raise ValueError(f"a unix:// URL needs a socket path: {_shown(url)}")
            return cls(
                db=_db(query.get("db", ["0"])[-1], url),
                username=username,
                password=password,
                unix_socket=unquote(parts.path),
            )
        if not parts.hostname:
            raise ValueError(f"a Redis URL needs a host: {_shown(url)}")
        db_text = parts.path.strip("/") or query.get("db", ["0"])[-1]
        return cls(
            host=parts.hostname,
            port=port or DEFAULT_PORT,
            db=_db(db_text, url),
            username=username,
            password=password,
            tls=parts.scheme == "rediss",
            ca_file=ca_file,
        )

    def describe(self) -> str:
        """The server for messages (no credentials)."""
        if self.unix_socket is not None:
            return f"unix:{self.unix_socket}"
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{'rediss://' if self.tls else ''}{host}:{self.port}"

    def endpoint(
        self, reactor: TimeTCPReactor, timeout: float, tls: TlsSettings | None = None
    ) -> IStreamClientEndpoint:
        """An endpoint that dials this server (``tls`` verifies it when TLS)."""
        if self.unix_socket is not None:
            return UNIXClientEndpoint(reactor, self.unix_socket, timeout=timeout)
        endpoint = tcp_endpoint(reactor, self.host, self.port, timeout)
        if self.tls:
            settings = tls or TlsSettings(self.ca_file)
            endpoint = wrapClientTLS(settings.creator(self.host), endpoint)
        return endpoint


class RedisSettings(Protocol):
    """The Redis fields of a config (``redis`` of ``jb``, a Redis state cache)."""

    @property
    def host(self) -> str: ...
    @property
    def port(self) -> int: ...
    @property
    def db(self) -> int: ...
    @property
    def username(self) -> str | None: ...
    @property
    def password(self) -> str | None: ...
    @property
    def tls(self) -> bool: ...
    @property
    def ca_file(self) -> str | None: ...
    @property
    def url(self) -> str | None: ...


def address_of(settings: RedisSettings) -> RedisAddress:
    """The server a config names: its ``url`` if set, else its fields."""
    if settings.url:
        return RedisAddress.from_url(settings.url, ca_file=settings.ca_file)
    return RedisAddress(
        host=settings.host,
        port=settings.port,
        db=settings.db,
        username=settings.username,
        password=settings.password,
        tls=settings.tls,
        ca_file=settings.ca_file,
    )


def redis_url_validator(_inst: Any, _attribute: Any, value: str | None) -> None:
    """An attrs validator: ``value`` is ``None`` or a Redis URL (else a
    ``ValueError`` that says what is wrong, without the password)."""
    if value is not None:
        RedisAddress.from_url(value)


def _db(text: str, url: str) -> int:
    try:
        db = int(text)
    except ValueError:
        raise ValueError(f"the database must be a number: {_shown(url)}") from None
    if db < 0:
        raise ValueError(f"the database must not be negative: {_shown(url)}")
    return db


def _shown(url: str) -> str:
    """``url`` for an error message: the userinfo (password) left out."""
    scheme, sep, rest = url.partition("://")
    if not sep:
        return repr(url[:80])
    authority, slash, path = rest.partition("/")
    _, at, hostport = authority.rpartition("@")
    return repr(f"{scheme}://{'***@' if at else ''}{hostport}{slash}{path}"[:120])
