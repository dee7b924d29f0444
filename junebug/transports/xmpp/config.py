"""The config of the ``xmpp`` channel type."""

from __future__ import annotations

import math
from typing import Final

import attrs
from twisted.words.protocols.jabber.jid import JID, InvalidFormat

from junebug.errors import ConfigError
from junebug.redaction import MASKED, SECRET

#: The ``<show/>`` values of RFC 6121; no value means plain "available".
SHOW_VALUES: Final = ("chat", "away", "xa", "dnd")
#: ``optional``: STARTTLS when the server offers it; ``required``: refuse a
#: server without it; ``off``: never (fails if the server insists on TLS).
TLS_MODES: Final = ("optional", "required", "off")


def _non_negative(name: str, value: float) -> None:
    if not math.isfinite(value) or value < 0:
        raise ConfigError(f"{name}: must be a number >= 0, got {value!r}")


def _positive(name: str, value: float) -> None:
    if not math.isfinite(value) or value <= 0:
        raise ConfigError(f"{name}: must be a number > 0, got {value!r}")


@attrs.frozen
class XmppConfig:
    """One XMPP account that the channel logs in as.

    ``username`` is the account's JID (``user@domain`` or
    ``user@domain/resource``); the server picks a resource when none is given.
    ``host`` defaults to the JID's domain (no DNS SRV lookup is made).
    ``status`` is the ``<show/>`` of the channel's presence (``chat``,
    ``away``, ``xa`` or ``dnd``; none means available) and ``status_message``
    its ``<status/>`` text.  Presence is re-sent every ``presence_interval``
    seconds and the server pinged (XEP-0199) every ``ping_interval`` seconds;
    0 turns either off.  A ping left unanswered for
    ``min(ping_interval, 30)`` seconds drops the connection, which is then
    re-established like any other lost one.

    SASL PLAIN sends the password itself; it is used only once STARTTLS has
    encrypted the stream, unless ``allow_plain_without_tls`` is true (a test
    server on the same host, say).  Without it, a server that offers only
    PLAIN on an unencrypted stream (``tls: off``, or ``tls: optional`` and no
    STARTTLS on offer) is refused before any password is sent and the channel
    reports ``connection_failed``.  SCRAM never sends the password and is used
    with or without TLS.
    """

    username: str
    password: str = attrs.field(metadata=SECRET, repr=MASKED)
    host: str | None = None
    port: int = 5222
    status: str | None = None
    status_message: str = ""
    debug: bool = False
    ping_interval: float = 60.0
    presence_interval: float = 60.0
    tls: str = "optional"
    tls_verify: bool = True
    tls_ca_certificate: str | None = None
    allow_plain_without_tls: bool = False
    connect_timeout: float = 30.0
    reconnect_delay: float = 1.0
    reconnect_max_delay: float = 60.0
    send_timeout: float = 10.0

    def __attrs_post_init__(self) -> None:
        try:
            parsed = JID(self.username)
        except InvalidFormat as exc:
            raise ConfigError(
                f"username: not a valid JID ({self.username!r}): {exc}"
            ) from exc
        if not parsed.user:
            raise ConfigError(
                f"username: must be a JID with a user part, such as "
                f"'bot@example.org' (got {self.username!r})"
            )
        if self.host is not None and not self.host.strip():
            raise ConfigError("host: must not be empty")
        if not 0 < self.port <= 65535:
            raise ConfigError(f"port: {self.port} is not a TCP port number")
        if self.status is not None and self.status not in SHOW_VALUES:
            raise ConfigError(
                f"status: must be one of {', '.join(SHOW_VALUES)} (got {self.status!r})"
            )
        if self.tls not in TLS_MODES:
            raise ConfigError(
                f"tls: must be one of {', '.join(TLS_MODES)} (got {self.tls!r})"
            )
        for name in ("ping_interval", "presence_interval", "send_timeout"):
            _non_negative(name, getattr(self, name))
        for name in ("connect_timeout", "reconnect_delay", "reconnect_max_delay"):
            _positive(name, getattr(self, name))
        if self.reconnect_max_delay < self.reconnect_delay:
            raise ConfigError(
                "reconnect_max_delay: must not be less than reconnect_delay"
            )

    @property
    def jid(self) -> JID:
        """The account's JID, as given (with its resource, if any)."""
        return JID(self.username)

    @property
    def bare_jid(self) -> str:
        """``user@domain``: the ``to_addr`` of MO messages."""
        bare: str = self.jid.userhost()
        return bare

    @property
    def connect_host(self) -> str:
        """The host to connect to."""
        if self.host is not None:
            return self.host
        domain: str = self.jid.host
        return domain
