"""An ``smpp`` channel created over a real API against a real SMSC peer.

:func:`start_smpp_channel` starts the peer, an :class:`HttpSink` for the
channel's callbacks and an :class:`ApiDriver` (each stopped at the test's
cleanup), then creates the channel and checks the API answered 201.
"""

from __future__ import annotations

from typing import Any

import attrs
from twisted.trial.unittest import SynchronousTestCase

from junebug.testing.api import ApiDriver
from junebug.testing.http_sink import HttpSink
from junebug.tests.support.smsc import PeerKind, SmscPeer

__all__ = ["SmppChannel", "start_smpp_channel"]


@attrs.frozen
class SmppChannel:
    """What :func:`start_smpp_channel` started."""

    peer: SmscPeer
    sink: HttpSink
    #: The sink's URL.
    base: str
    api: ApiDriver
    #: The new channel's id.
    channel_id: str


async def start_smpp_channel(
    case: SynchronousTestCase,
    reactor: Any,
    kind: PeerKind,
    mo_path: str,
    *,
    mode: str = "dlr",
    config: dict[str, Any] | None = None,
    junebug: dict[str, Any] | None = None,
) -> SmppChannel:
    """An smpp channel on a ``kind`` peer in ``mode`` whose ``mo_url`` is
    the sink's URL followed by ``mo_path``; ``config`` is added to the
    channel's config, ``junebug`` to Junebug's (e.g. real backends)."""
    peer = SmscPeer(reactor, kind, mode=mode)
    await peer.start()
    case.addCleanup(peer.stop)
    sink = HttpSink(reactor)
    base = await sink.start()
    case.addCleanup(sink.stop)
    api = ApiDriver(reactor)
    case.addCleanup(api.stop)
    await api.start(**(junebug or {}))
    code, created, _ = await api.request(
        "POST",
        "/channels/",
        {
            "type": "smpp",
            "mo_url": base + mo_path,
            "config": {
                "twisted_endpoint": peer.endpoint,
                "system_id": "esme1",
                "password": "secret",
                "initial_reconnect_delay": 0.1,
                **(config or {}),
            },
        },
    )
    case.assertEqual(code, 201, created)
    return SmppChannel(peer, sink, base, api, created["result"]["id"])
