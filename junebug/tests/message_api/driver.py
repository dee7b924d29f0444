"""An in-process message API on an in-memory broker, driven over real HTTP.

The driver also plays the transport on the far side of the connector: it
consumes ``<connector>.outbound`` (recording each message, acking it if asked)
and publishes inbound messages and events as a vumi transport would.
"""

from __future__ import annotations

from typing import Any

from treq.client import HTTPClient
from twisted.internet.defer import Deferred, DeferredQueue
from twisted.web.client import Agent, HTTPConnectionPool

from junebug.amqp import topology
from junebug.amqp.broker import Consumer
from junebug.amqp.memory import MemoryBroker
from junebug.message_api.config import build_config
from junebug.message_api.service import MessageApi, start_message_api
from junebug.messages import Message, ack, user_message
from junebug.testing.api import json_request

CONNECTOR = "rapidpro"


class MessageApiDriver:
    """A started message API on 127.0.0.1:<random port>, plus its transport."""

    def __init__(self, reactor: Any) -> None:
        self.reactor = reactor
        self.broker = MemoryBroker(reactor)
        self.api: MessageApi | None = None
        self.base = ""
        self.outbound: DeferredQueue[Message] = DeferredQueue()
        self.auto_ack = True
        self._consumer: Consumer | None = None
        self._pool = HTTPConnectionPool(reactor, persistent=False)
        self.client = HTTPClient(Agent(reactor, pool=self._pool))

    async def start(self, **options: Any) -> MessageApi:
        layer: dict[str, Any] = {
            "connector_name": CONNECTOR,
            "http_bind": "127.0.0.1:0",
            "mo_message_url": "http://127.0.0.1:9/unused",
        }
        layer.update(options)
        cache = layer.pop("cache", None)
        config = build_config(layer)
        self.api = await start_message_api(
            self.reactor, config, broker=self.broker, cache=cache
        )
        self.base = f"http://127.0.0.1:{self.api.address.port}"
        self._consumer = await self.broker.consume(
            topology.outbound(config.connector_name), self._transport
        )
        return self.api

    @property
    def connector(self) -> str:
        assert self.api is not None
        return self.api.config.connector_name

    async def stop(self) -> None:
        if self._consumer is not None:
            await self._consumer.stop()
            self._consumer = None
        if self.api is not None:
            await self.api.stop()
            self.api = None
        await self.broker.close()
        await self._pool.closeCachedConnections()

    async def _transport(self, message: Message) -> None:
        self.outbound.put(message)
        if self.auto_ack:
            await self.event(
                ack(message["message_id"], "smsc-id", message.get("transport_name"))
            )

    async def next_outbound(self, timeout: float = 10.0) -> Message:
        d: Deferred[Message] = self.outbound.get()
        d.addTimeout(timeout, self.reactor)
        return await d

    async def receive(self, content: str | None, **fields: Any) -> Message:
        """Publish an MO message to ``<connector>.inbound`` as a transport would."""
        msg = user_message(
            to_addr=fields.pop("to_addr", "2020"),
            from_addr=fields.pop("from_addr", "+250788383383"),
            transport_name=fields.pop("transport_name", "sms-channel"),
            transport_type=fields.pop("transport_type", "sms"),
            content=content,
            **fields,
        )
        await self.broker.publish(topology.inbound(self.connector), msg)
        return msg

    async def event(self, event: Message) -> None:
        """Publish a vumi event to ``<connector>.event``."""
        await self.broker.publish(topology.event(self.connector), event)

    async def request(
        self,
        method: str,
        path: str,
        body: Any = None,
        *,
        raw: bytes | None = None,
        headers: dict[bytes, list[bytes]] | None = None,
    ) -> tuple[int, Any, Any]:
        """Send a request; return (status, parsed JSON body, response headers)."""
        return await json_request(
            self.client, method, self.base + path, body, raw, headers
        )
