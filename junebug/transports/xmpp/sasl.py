"""SASL for the ``xmpp`` channel: SCRAM (RFC 5802 / RFC 7677) and PLAIN.

Twisted's XMPP client offers only DIGEST-MD5, PLAIN and ANONYMOUS; current
servers (Prosody, ejabberd) offer SCRAM and allow PLAIN only over TLS.  The
initializer here picks the strongest mechanism the server offers, in the order
of :data:`MECHANISM_PREFERENCE`, and checks the server's SCRAM signature before
it accepts a ``<success/>``.  Channel binding (``-PLUS``) is not supported.

PLAIN sends the password itself, so it is used only on a stream that is
encrypted (after STARTTLS), unless the channel's ``allow_plain_without_tls``
says otherwise: a server (or a man in the middle) that does not offer
STARTTLS under ``tls: optional`` gets no password in the clear.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import stringprep
import unicodedata
from typing import Any, Final

from twisted.internet.defer import Deferred
from twisted.internet.interfaces import ISSLTransport
from twisted.words.protocols.jabber import sasl
from twisted.words.protocols.jabber.sasl_mechanisms import ISASLMechanism, Plain
from twisted.words.xish import domish
from typing_extensions import override
from zope.interface import implementer

#: Mechanisms this client can use, strongest first.
MECHANISM_PREFERENCE: Final = ("SCRAM-SHA-256", "SCRAM-SHA-1", "PLAIN")

_SCRAM_HASHES: Final = {"SCRAM-SHA-256": "sha256", "SCRAM-SHA-1": "sha1"}
#: ``c=`` of a client that neither supports nor asks for channel binding.
_GS2_HEADER: Final = b"n,,"


class ScramError(sasl.SASLError):
    """The server's SCRAM messages are malformed or not authentic."""


def saslprep(text: str) -> str:
    """RFC 4013 mapping and normalisation (prohibited output is not checked).

    Non-ASCII spaces become a space, characters "mapped to nothing" go, and the
    result is NFKC-normalised, so a password is hashed the way the server
    hashed it.
    """
    mapped = []
    for char in text:
        if stringprep.in_table_b1(char):
            continue
        mapped.append(" " if stringprep.in_table_c12(char) else char)
    return unicodedata.normalize("NFKC", "".join(mapped))


def _escape_username(name: str) -> str:
    return saslprep(name).replace("=", "=3D").replace(",", "=2C")


def _attributes(message: bytes) -> dict[str, bytes]:
    """``a=1,b=2`` -> ``{"a": b"1", "b": b"2"}`` (values may contain ``=``)."""
    found: dict[str, bytes] = {}
    for part in message.split(b","):
        key, sep, value = part.partition(b"=")
        if not sep or len(key) != 1:
            raise ScramError(f"malformed SCRAM message: {message!r}")
        found.setdefault(key.decode("ascii"), value)
    return found


@implementer(ISASLMechanism)
class Scram:
    """One SCRAM exchange (``SCRAM-SHA-1`` or ``SCRAM-SHA-256``) as a client."""

    def __init__(
        self,
        name: str,
        username: str,
        password: str,
        client_nonce: str | None = None,
    ) -> None:
        if name not in _SCRAM_HASHES:
            raise ValueError(f"unsupported SCRAM mechanism {name!r}")
        self.name = name
        self._hash = _SCRAM_HASHES[name]
        self._password = saslprep(password).encode("utf-8")
        nonce = client_nonce or base64.b64encode(os.urandom(18)).decode("ascii")
        self._nonce = nonce.encode("ascii")
        self._client_first_bare = (
            b"n=" + _escape_username(username).encode("utf-8") + b",r=" + self._nonce
        )
        self._server_signature: bytes | None = None
        #: True once the server has proven it knows the password.
        self.verified = False

    def _hmac(self, key: bytes, data: bytes) -> bytes:
        return hmac.new(key, data, self._hash).digest()

    def getInitialResponse(self) -> bytes:  # noqa: N802 - ISASLMechanism
        return _GS2_HEADER + self._client_first_bare

    def getResponse(self, challenge: bytes) -> bytes:  # noqa: N802 - ISASLMechanism
        if self._server_signature is not None:
            # Some servers send server-final-message as a last challenge.
            self.verify_final(challenge)
            return b""
        return self._client_final(challenge)

    def _client_final(self, server_first: bytes) -> bytes:
        fields = _attributes(server_first)
        if "e" in fields:
            raise ScramError(f"server error: {fields['e'].decode('utf-8', 'replace')}")
        try:
            nonce, salt_b64, count_text = fields["r"], fields["s"], fields["i"]
        except KeyError as exc:
            raise ScramError(f"server-first-message lacks {exc.args[0]}=") from None
        if not nonce.startswith(self._nonce) or len(nonce) == len(self._nonce):
            raise ScramError("server nonce does not extend the client nonce")
        try:
            salt = base64.b64decode(salt_b64, validate=True)
            iterations = int(count_text)
        except ValueError as exc:
            raise ScramError(f"bad salt or iteration count: {exc}") from None
        if iterations < 1:
            raise ScramError(f"bad iteration count {iterations}")
        salted = hashlib.pbkdf2_hmac(self._hash, self._password, salt, iterations)
        client_key = self._hmac(salted, b"Client Key")
        stored_key = hashlib.new(self._hash, client_key).digest()
        without_proof = b"c=" + base64.b64encode(_GS2_HEADER) + b",r=" + nonce
        auth_message = b",".join((self._client_first_bare, server_first, without_proof))
        signature = self._hmac(stored_key, auth_message)
        proof = bytes(a ^ b for a, b in zip(client_key, signature, strict=True))
        server_key = self._hmac(salted, b"Server Key")
        self._server_signature = self._hmac(server_key, auth_message)
        return without_proof + b",p=" + base64.b64encode(proof)

    def verify_final(self, server_final: bytes) -> None:
        """Check the ``v=`` of server-final-message; raise ScramError if wrong."""
        if self._server_signature is None:
            raise ScramError("server finished before the client proof was sent")
        fields = _attributes(server_final)
        if "e" in fields:
            raise ScramError(f"server error: {fields['e'].decode('utf-8', 'replace')}")
        try:
            given = base64.b64decode(fields["v"], validate=True)
        except (KeyError, ValueError):
            raise ScramError("server-final-message lacks a valid v=") from None
        if not hmac.compare_digest(given, self._server_signature):
            raise ScramError("server signature does not match: not our server")
        self.verified = True


def mark_encrypted(xs: Any) -> None:
    """Record that ``xs`` is about to run over TLS (STARTTLS was accepted)."""
    xs.encrypted = True


def is_encrypted(xs: Any) -> bool:
    """True if the stream runs over TLS."""
    return bool(getattr(xs, "encrypted", False)) or ISSLTransport.providedBy(
        xs.transport
    )


def choose_mechanism(
    offered: list[str], username: str, password: str, *, plain_allowed: bool = True
) -> Any:
    """The mechanism object for the best of ``offered``, or raise.

    Without ``plain_allowed`` PLAIN is never chosen.
    """
    for name in MECHANISM_PREFERENCE:
        if name not in offered:
            continue
        if name == "PLAIN":
            if not plain_allowed:
                raise sasl.SASLNoAcceptableMechanism(
                    "the server offers only PLAIN, on a stream that is not "
                    "encrypted: the password would be sent in the clear "
                    "(set allow_plain_without_tls: true to allow it)"
                )
            return Plain(None, username, password)
        return Scram(name, username, password)
    raise sasl.SASLNoAcceptableMechanism(
        f"server offers {', '.join(offered) or 'no mechanism'}; "
        f"this client supports {', '.join(MECHANISM_PREFERENCE)}"
    )


class SaslInitializer(sasl.SASLInitiatingInitializer):
    """Twisted's SASL initializer with SCRAM and a checked ``<success/>``;
    PLAIN only over TLS unless ``allow_plain_without_tls``."""

    mechanism: Any

    def __init__(
        self, xs: Any, required: bool = False, *, allow_plain_without_tls: bool = False
    ) -> None:
        super().__init__(xs, required=required)
        self.allow_plain_without_tls = allow_plain_without_tls

    @override
    def setMechanism(self) -> None:
        authenticator = self.xmlstream.authenticator
        self.mechanism = choose_mechanism(
            sasl.get_mechanisms(self.xmlstream),
            authenticator.jid.user,
            authenticator.password,
            plain_allowed=self.allow_plain_without_tls or is_encrypted(self.xmlstream),
        )

    @override
    def onChallenge(self, element: domish.Element) -> None:
        try:
            challenge = sasl.fromBase64(str(element))
            response = self.mechanism.getResponse(challenge)
        except Exception as exc:
            self._fail(exc)
        else:
            self.sendResponse(response)

    @override
    def onSuccess(self, success: domish.Element) -> None:
        if isinstance(self.mechanism, Scram):
            try:
                data = str(success)
                if data:
                    self.mechanism.verify_final(sasl.fromBase64(data))
                if not self.mechanism.verified:
                    raise ScramError("server did not prove it knows the password")
            except Exception as exc:
                self._fail(exc)
                return
        super().onSuccess(success)

    @override
    def onFailure(self, failure: domish.Element) -> None:
        self.xmlstream.removeObserver("/challenge", self.onChallenge)
        self.xmlstream.removeObserver("/success", self.onSuccess)
        condition = None
        text = None
        for child in failure.elements():
            if child.name == "text":
                text = str(child)
            elif condition is None:
                condition = child.name
        deferred: Deferred[Any] | None = self._deferred
        if deferred is not None and not deferred.called:
            deferred.errback(SaslFailure(condition, text))

    def _fail(self, exc: Exception) -> None:
        self.xmlstream.removeObserver("/challenge", self.onChallenge)
        self.xmlstream.removeObserver("/success", self.onSuccess)
        self.xmlstream.removeObserver("/failure", self.onFailure)
        deferred: Deferred[Any] | None = self._deferred
        if deferred is not None and not deferred.called:
            deferred.errback(exc)


class SaslFailure(sasl.SASLAuthError):
    """The server refused the credentials (``<failure/>``)."""

    def __init__(self, condition: str | None, text: str | None = None) -> None:
        super().__init__(condition)
        self.text = text

    def __str__(self) -> str:
        reason = self.condition or "unknown condition"
        return f"{reason}: {self.text}" if self.text else reason


__all__ = [
    "MECHANISM_PREFERENCE",
    "SaslFailure",
    "SaslInitializer",
    "Scram",
    "ScramError",
    "choose_mechanism",
    "is_encrypted",
    "mark_encrypted",
    "saslprep",
]
