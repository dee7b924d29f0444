"""Client TLS with certificate verification, for Redis and the HTTP POST pool.

The peer's certificate is checked against the platform's CA store (OpenSSL's
default paths, as ``twisted.internet.ssl.platformTrust`` finds them) or, when
a ``ca_file`` is configured, against the certificates of that PEM bundle
only; the host name (or IP address) of the URL must match the certificate.
There is no switch that turns verification off.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Final

from twisted.internet._sslverify import IOpenSSLTrustRoot
from twisted.internet.interfaces import IOpenSSLClientConnectionCreator
from twisted.internet.ssl import (
    Certificate,
    optionsForClientTLS,
    platformTrust,
    trustRootFromCertificates,
)

__all__ = ["TlsSettings", "ca_file_validator", "load_trust_root"]

_PEM_END: Final = b"-----END CERTIFICATE-----"


def load_trust_root(ca_file: str | None) -> IOpenSSLTrustRoot:
    """The platform's trust store, or the certificates of the PEM ``ca_file``.

    Raises ``ValueError`` (naming the file) if it cannot be read or holds no
    certificate.  The file is read here, once, when a client is built.
    """
    if ca_file is None:
        trust: IOpenSSLTrustRoot = platformTrust()
        return trust
    try:
        data = Path(ca_file).read_bytes()
    except OSError as exc:
        raise ValueError(f"ca_file {ca_file!r}: {exc.strerror}") from None
    certificates = []
    for block in data.split(_PEM_END)[:-1]:
        start = block.find(b"-----BEGIN CERTIFICATE-----")
        if start < 0:
            continue
        try:
            certificates.append(Certificate.loadPEM(block[start:] + _PEM_END))
        except Exception as exc:
            raise ValueError(f"ca_file {ca_file!r}: not a PEM certificate") from exc
    if not certificates:
        raise ValueError(f"ca_file {ca_file!r}: no PEM certificate in it")
    trust = trustRootFromCertificates(certificates)
    return trust


def ca_file_validator(_inst: Any, _attribute: Any, value: str | None) -> None:
    """An attrs validator: ``value`` is ``None`` or a readable PEM CA bundle
    (else a ``ValueError`` naming the file), so a config is refused early."""
    if value is not None:
        load_trust_root(value)


class TlsSettings:
    """One trust root, and the connection creators made from it by host."""

    def __init__(self, ca_file: str | None = None) -> None:
        self.ca_file = ca_file
        self.trust_root = load_trust_root(ca_file)
        self._creators: dict[str, IOpenSSLClientConnectionCreator] = {}

    def creator(self, hostname: str) -> IOpenSSLClientConnectionCreator:
        """What ``wrapClientTLS`` needs to verify ``hostname`` (remembered)."""
        creator = self._creators.get(hostname)
        if creator is None:
            if len(self._creators) >= 1024:
                self._creators.clear()
            creator = self._creators[hostname] = optionsForClientTLS(
                hostname, trustRoot=self.trust_root
            )
        return creator
