"""The stream endpoint a :class:`~junebug.amqp.rabbitmq.RabbitMQBroker` dials.

:func:`amqp_endpoint` turns :class:`~junebug.amqp.settings.AmqpSettings` into
one endpoint: TCP to each address (TLS on top when ``settings.tls`` is set),
the addresses tried in order until one connects.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from twisted.internet.defer import Deferred
from twisted.internet.endpoints import HostnameEndpoint, wrapClientTLS
from twisted.internet.interfaces import (
    IOpenSSLClientConnectionCreator,
    IProtocol,
    IProtocolFactory,
    IStreamClientEndpoint,
)
from twisted.internet.ssl import (
    Certificate,
    CertificateOptions,
    PrivateCertificate,
    optionsForClientTLS,
    platformTrust,
)
from twisted.python.failure import Failure
from zope.interface import implementer

from junebug.amqp.settings import AmqpSettings, TlsSettings
from junebug.errors import ConfigError
from junebug.reactors import TimeTCPReactor

__all__ = ["InOrderEndpoint", "amqp_endpoint", "tls_creator"]


def amqp_endpoint(
    reactor: TimeTCPReactor, settings: AmqpSettings
) -> IStreamClientEndpoint:
    """An endpoint for every address of ``settings``, tried in order.

    :class:`~junebug.errors.ConfigError` if a TLS file cannot be read.
    """
    endpoints: list[IStreamClientEndpoint] = []
    for host, port in settings.addresses:
        endpoint: IStreamClientEndpoint = HostnameEndpoint(
            reactor, host, port, timeout=settings.connect_timeout
        )
        if settings.tls is not None:
            endpoint = wrapClientTLS(tls_creator(settings.tls, host), endpoint)
        endpoints.append(endpoint)
    return endpoints[0] if len(endpoints) == 1 else InOrderEndpoint(endpoints)


def tls_creator(tls: TlsSettings, host: str) -> IOpenSSLClientConnectionCreator:
    """Client TLS options for ``host`` as ``tls`` asks."""
    client_certificate = None
    if tls.cert_file is not None:
        pem = _read(tls.cert_file)
        if tls.key_file is not None:
            pem += b"\n" + _read(tls.key_file)
        try:
            client_certificate = PrivateCertificate.loadPEM(pem)
        except Exception as e:
            raise ConfigError(
                f"cannot load the AMQP client certificate {tls.cert_file}: {e}"
            ) from e
    elif tls.key_file is not None:
        raise ConfigError("an AMQP client key (keyfile) needs its certfile")
    if not tls.verify:
        extra: dict[str, Any] = {}
        if client_certificate is not None:
            extra = {
                "privateKey": client_certificate.privateKey.original,
                "certificate": client_certificate.original,
            }
        creator: Any = CertificateOptions(verify=False, **extra)
        return creator  # type: ignore[no-any-return]
    if tls.ca_file is not None:
        try:
            trust: Any = Certificate.loadPEM(_read(tls.ca_file))
        except Exception as e:
            raise ConfigError(f"cannot load the AMQP CA file {tls.ca_file}: {e}") from e
    else:
        trust = platformTrust()
    return optionsForClientTLS(
        tls.server_name or host,
        trustRoot=trust,
        clientCertificate=client_certificate,
    )


def _read(path: str) -> bytes:
    try:
        return Path(path).read_bytes()
    except OSError as e:
        raise ConfigError(f"cannot read {path}: {e.strerror}") from e


@implementer(IStreamClientEndpoint)
class InOrderEndpoint:
    """Tries each endpoint in turn; fails with the last one's error."""

    def __init__(self, endpoints: list[IStreamClientEndpoint]) -> None:
        if not endpoints:
            raise ValueError("no endpoints to try")
        self._endpoints = endpoints

    def connect(self, protocol_factory: IProtocolFactory) -> Deferred[IProtocol]:
        current: list[Deferred[IProtocol]] = []
        cancelled = False

        def cancel(_: Deferred[IProtocol]) -> None:
            nonlocal cancelled
            cancelled = True
            current[-1].cancel()

        result: Deferred[IProtocol] = Deferred(cancel)

        def attempt(index: int) -> None:
            d = self._endpoints[index].connect(protocol_factory)
            current.append(d)

            def failed(failure: Failure) -> None:
                if result.called:
                    return
                if not cancelled and index + 1 < len(self._endpoints):
                    attempt(index + 1)
                else:
                    result.errback(failure)

            d.addCallbacks(result.callback, failed)

        attempt(0)
        return result
