"""A Junebug with send users on one channel, an HTTP sink for its callbacks.

:func:`start_dialects` starts the sink and a Junebug whose startup channel
``chan`` (a fake transport, or an smpp channel on a real SMSC peer) has the
sink as ``mo_url`` (with ``mo_path`` and ``mo_format``), and the send users
``kuser``/``kpass`` (Kannel) and ``juser``/``jpass`` (Jasmin) on it.
:meth:`Dialects.get` and :meth:`Dialects.post` make raw requests.
"""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import urlencode

import attrs
from twisted.trial.unittest import SynchronousTestCase

from junebug.testing.api import ApiDriver, json_request
from junebug.testing.http_sink import HttpSink
from junebug.tests.support.smsc import PeerKind, SmscPeer

CHANNEL = "chan"
KANNEL_USER = {"username": "kuser", "password": "kpass"}
JASMIN_USER = {"username": "juser", "password": "jpass"}


@attrs.frozen
class Dialects:
    api: ApiDriver
    sink: HttpSink
    #: The sink's URL.
    base: str
    peer: SmscPeer | None = None

    async def get(self, path: str, params: Any) -> tuple[int, bytes, Any]:
        """GET ``path`` with ``params`` (pairs or a mapping; bytes values
        are percent-encoded as they are)."""
        url = f"{self.api.base}{path}?{urlencode(params)}"
        code, body, headers = await json_request(self.api.client, "GET", url)
        return code, _raw(body), headers

    async def post(
        self, path: str, data: bytes, content_type: bytes, **headers: bytes
    ) -> tuple[int, bytes, Any]:
        sent = {b"Content-Type": [content_type]}
        sent.update({k.replace("_", "-").encode(): [v] for k, v in headers.items()})
        code, body, answer = await json_request(
            self.api.client, "POST", self.api.base + path, raw=data, headers=sent
        )
        return code, _raw(body), answer

    def transport(self) -> Any:
        return self.api.transport(CHANNEL)


def _raw(body: Any) -> bytes:
    if isinstance(body, bytes):
        return body
    return json.dumps(body).encode()


async def start_dialects(
    case: SynchronousTestCase,
    reactor: Any,
    *,
    mo_path: str = "/mo",
    mo_format: str = "junebug",
    peer_kind: PeerKind | None = None,
    **config: Any,
) -> Dialects:
    sink = HttpSink(reactor)
    base = await sink.start()
    case.addCleanup(sink.stop)
    peer = None
    channel: dict[str, Any] = {
        "id": CHANNEL,
        "type": "fake",
        "mo_url": base + mo_path,
        "mo_format": mo_format,
        "config": {},
    }
    if peer_kind is not None:
        peer = SmscPeer(reactor, peer_kind, mode="dlr")
        await peer.start()
        case.addCleanup(peer.stop)
        channel["type"] = "smpp"
        channel["config"] = {
            "twisted_endpoint": peer.endpoint,
            "system_id": "esme1",
            "password": "secret",
            "initial_reconnect_delay": 0.1,
        }
    api = ApiDriver(reactor)
    case.addCleanup(api.stop)
    layer: dict[str, Any] = {
        "startup_channels": [channel],
        "send_users": [
            {**KANNEL_USER, "channel_id": CHANNEL, "dialects": ["kannel"]},
            {**JASMIN_USER, "channel_id": CHANNEL, "dialects": ["jasmin"]},
        ],
    }
    layer.update(config)
    await api.start(**layer)
    return Dialects(api, sink, base, peer)
