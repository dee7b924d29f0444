"""A transport double: records MT messages and acks (or nacks) them."""

from __future__ import annotations

import json
import os
from typing import Any, ClassVar

import attrs

from junebug.messages import UserMessage, ack, nack, user_message
from junebug.transports.interface import TransportContext


@attrs.frozen
class FakeConfig:
    """Knobs for tests: fail at start, nack everything, or reject a field."""

    fail_start: bool = False
    fail_outbound: bool = False
    nack_reason: str | None = None
    number: int = 0


class FakeTransport:
    """Records every MT message (find one with ``ApiDriver.transport``)."""

    CONFIG_CLASS: ClassVar[type[Any]] = FakeConfig
    TRANSPORT_TYPE: ClassVar[str] = "fake"

    def __init__(self, context: TransportContext, config: FakeConfig) -> None:
        self.context = context
        self.config = config
        self.outbound: list[UserMessage] = []
        self.started = False
        self.stopped = False
        self.fail_outbound = config.fail_outbound

    async def start(self) -> None:
        if self.config.fail_start:
            raise RuntimeError("configured to fail")
        self.started = True

    async def stop(self) -> None:
        self.stopped = True

    async def handle_outbound(self, message: UserMessage) -> None:
        if self.fail_outbound:
            raise RuntimeError("transport crashed")
        self.outbound.append(message)
        cid = self.context.channel_id
        if self.config.nack_reason:
            await self.context.publish_event(
                nack(message["message_id"], self.config.nack_reason, cid)
            )
        else:
            await self.context.publish_event(
                ack(message["message_id"], message["message_id"], cid)
            )

    async def receive(self, content: str | None, **fields: Any) -> UserMessage:
        """Publish an MO message as if a user had sent it."""
        msg = user_message(
            to_addr=fields.pop("to_addr", "+2780"),
            from_addr=fields.pop("from_addr", "+2781"),
            transport_name=self.context.channel_id,
            transport_type=self.TRANSPORT_TYPE,
            content=content,
            **fields,
        )
        await self.context.publish_inbound(msg)
        return msg


@attrs.frozen
class RecordingConfig:
    """Where to append delivered messages, and a file whose presence fails start."""

    path: str
    fail_if_exists: str | None = None


class RecordingTransport:
    """Appends each MT message as a JSON line to a file (for subprocess tests)."""

    CONFIG_CLASS: ClassVar[type[Any]] = RecordingConfig
    TRANSPORT_TYPE: ClassVar[str] = "recording"

    def __init__(self, context: TransportContext, config: RecordingConfig) -> None:
        self.context = context
        self.config = config

    async def start(self) -> None:
        marker = self.config.fail_if_exists
        if marker and os.path.exists(marker):
            raise RuntimeError(f"{marker} exists")

    async def stop(self) -> None:
        return None

    async def handle_outbound(self, message: UserMessage) -> None:
        with open(self.config.path, "a", encoding="utf-8") as handle:
            handle.write(json.dumps(message) + "\n")
        await self.context.publish_event(
            ack(message["message_id"], message["message_id"], self.context.channel_id)
        )


@attrs.frozen
class NullConfig:
    """No options."""


class NullTransport:
    """Acks every MT message and keeps nothing (benchmarks)."""

    CONFIG_CLASS: ClassVar[type[Any]] = NullConfig
    TRANSPORT_TYPE: ClassVar[str] = "null"

    def __init__(self, context: TransportContext, config: NullConfig) -> None:
        self.context = context

    async def start(self) -> None:
        return None

    async def stop(self) -> None:
        return None

    async def handle_outbound(self, message: UserMessage) -> None:
        await self.context.publish_event(
            ack(message["message_id"], message["message_id"], self.context.channel_id)
        )
