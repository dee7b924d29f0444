"""Requests between the processes of a gateway, over RabbitMQ.

Each process consumes its own queue ``junebug.control.<process id>``,
declared with an expiry so RabbitMQ deletes it once the process is gone.
Two kinds of message travel on them:

- ``{"kind": "request", action, channel_id, changes, request_id,
  reply_to}``: a change (``update``, ``restart``, ``delete``) of a channel
  whose transport runs in the receiving process, asked through another
  one's API.  The owner runs it with its local registry and answers
  ``{"kind": "reply", request_id, ok, result, error}`` to ``reply_to``.
  The requester answers its HTTP request with that result, or 503
  (``owner unavailable``) after ``control_timeout`` seconds without one,
  or 503 (``AmqpConnectionError``, nothing changed) if the request could not
  be sent at all.
- ``{"kind": "take", channel_id}``: a process that just released a channel
  tells the one placement picks, so it runs a reconciliation pass now
  instead of at its next tick.

If the channel has no live owner the requesting process runs the change
itself (and so becomes the owner).  Nothing depends on these messages
arriving: the reconciler picks every change up from Redis within an
interval.
"""

from __future__ import annotations

import uuid
from typing import Any

from twisted.internet import defer
from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger

from junebug.amqp.broker import Broker, Consumer
from junebug.channels.properties import ChannelProperties
from junebug.channels.registry import ChannelRegistry
from junebug.cluster.leases import Owner
from junebug.cluster.reconciler import Reconciler
from junebug.errors import (
    BrokerError,
    InvalidBody,
    JunebugError,
    OwnerUnavailable,
    PublishOutcomeUnknown,
    refusal,
)
from junebug.messages import Message
from junebug.stores import keys
from junebug.stores.backend import KeyValueBackend

log = Logger()

#: Seconds a control queue outlives its consumer (then RabbitMQ deletes it).
QUEUE_EXPIRES = 60.0


def control_queue(process_id: str) -> str:
    return f"junebug.control.{process_id}"


def _error_classes() -> dict[str, type[JunebugError]]:
    found: dict[str, type[JunebugError]] = {}
    pending: list[type[JunebugError]] = [JunebugError]
    while pending:
        cls = pending.pop()
        found[cls.name] = cls
        pending.extend(cls.__subclasses__())
    return found


def error_reply(exc: JunebugError) -> dict[str, Any]:
    """An error as a reply carries it."""
    error: dict[str, Any] = {
        "code": exc.code,
        "description": exc.description,
        "type": exc.name,
        "message": str(exc),
    }
    if isinstance(exc, InvalidBody):
        error["errors"] = exc.errors
    return error


def error_from_reply(error: dict[str, Any]) -> JunebugError:
    """The error an owner answered, raised again here (same type and code)."""
    name = str(error.get("type"))
    cls = _error_classes().get(name)
    if cls is InvalidBody:
        return InvalidBody(list(error.get("errors") or []))
    if cls is None:
        return JunebugError(str(error.get("message")))
    return cls(str(error.get("message", "")))


class Control:
    """This process's control queue: serves requests, sends them."""

    def __init__(
        self,
        *,
        broker: Broker,
        backend: KeyValueBackend,
        clock: IReactorTime,
        registry: ChannelRegistry,
        reconciler: Reconciler,
        timeout: float,
    ) -> None:
        self._broker = broker
        self._backend = backend
        self._clock = clock
        self.registry = registry
        self.reconciler = reconciler
        self.timeout = timeout
        self._consumer: Consumer | None = None
        self._pending: dict[str, Deferred[dict[str, Any]]] = {}

    @property
    def me(self) -> str:
        return self.reconciler.me

    @property
    def queue(self) -> str:
        return control_queue(self.me)

    async def start(self) -> None:
        self._consumer = await self._broker.consume(
            self.queue, self._handle, expires=QUEUE_EXPIRES
        )

    async def stop(self) -> None:
        consumer, self._consumer = self._consumer, None
        if consumer is not None:
            await consumer.stop()
        pending, self._pending = self._pending, {}
        for waiting in pending.values():
            waiting.cancel()

    # -- asking ----------------------------------------------------------

    async def _remote_owner(self, channel_id: str) -> str | None:
        """The live process, other than this one, that owns the channel."""
        if self._consumer is None:
            return None
        raw = await self._backend.get(keys.cluster_owner(channel_id))
        owner = Owner.parse(raw)
        if owner is None or owner.process == self.me:
            return None
        if not await self._backend.exists(keys.cluster_process(owner.process)):
            return None
        return owner.process

    async def _ask(
        self,
        process_id: str,
        action: str,
        channel_id: str,
        changes: ChannelProperties | None = None,
    ) -> Any:
        request_id = uuid.uuid4().hex
        waiting: Deferred[dict[str, Any]] = Deferred()
        self._pending[request_id] = waiting
        request = {
            "kind": "request",
            "action": action,
            "channel_id": channel_id,
            "changes": changes,
            "request_id": request_id,
            "reply_to": self.queue,
        }
        waiting.addTimeout(self.timeout, self._clock)
        try:
            try:
                await self._broker.publish(
                    control_queue(process_id), request, ttl=self.timeout
                )
            except PublishOutcomeUnknown:
                pass  # it may have gone: its reply may still come
            except BrokerError as exc:
                waiting.addErrback(lambda _: None)
                waiting.cancel()
                raise refusal(
                    exc,
                    f"Channel {channel_id} not changed: the request to process "
                    f"{process_id}, which runs it, could not be sent",
                ) from exc
            reply = await waiting
        except defer.TimeoutError:
            raise OwnerUnavailable(
                f"process {process_id}, which runs channel {channel_id}, did not "
                f"answer within {self.timeout:g}s (control_timeout); the change "
                "may still take effect"
            ) from None
        finally:
            self._pending.pop(request_id, None)
        if not reply.get("ok"):
            raise error_from_reply(dict(reply.get("error") or {}))
        return reply.get("result")

    async def update(
        self, channel_id: str, changes: ChannelProperties
    ) -> ChannelProperties:
        """Change a channel, in the process that runs it."""
        owner = await self._remote_owner(channel_id)
        if owner is None:
            return await self.registry.update(channel_id, changes)
        result: ChannelProperties = await self._ask(
            owner, "update", channel_id, changes
        )
        await self.registry.refresh(channel_id)
        return result

    async def restart(self, channel_id: str) -> None:
        """Restart a channel, in the process that runs it."""
        owner = await self._remote_owner(channel_id)
        if owner is None:
            await self.registry.restart(channel_id)
            return
        await self._ask(owner, "restart", channel_id)
        await self.registry.refresh(channel_id)

    async def delete(self, channel_id: str) -> None:
        """Delete a channel, in the process that runs it."""
        owner = await self._remote_owner(channel_id)
        if owner is None:
            await self.registry.delete(channel_id)
            return
        await self._ask(owner, "delete", channel_id)
        await self.registry.drop(channel_id)

    async def tell_take(self, channel_id: str, process_id: str | None) -> None:
        """Tell ``process_id`` that ``channel_id`` is free for it now."""
        if process_id is None or process_id == self.me:
            return
        await self._broker.publish(
            control_queue(process_id),
            {"kind": "take", "channel_id": channel_id},
            ttl=QUEUE_EXPIRES,
        )

    # -- answering -------------------------------------------------------

    async def _handle(self, message: Message) -> None:
        """Never raises: a control message is not worth a failed queue."""
        try:
            kind = message.get("kind")
            if kind == "reply":
                waiting = self._pending.get(str(message.get("request_id")))
                if waiting is not None and not waiting.called:
                    waiting.callback(dict(message))
            elif kind == "take":
                self.reconciler.poke()
            elif kind == "request":
                await self._serve(message)
            else:
                log.warn("Unknown control message {message!r}", message=message)
        except Exception:
            log.failure("Could not handle control message {message!r}", message=message)

    async def _serve(self, request: Message) -> None:
        action = request.get("action")
        channel_id = str(request.get("channel_id"))
        reply: dict[str, Any] = {
            "kind": "reply",
            "request_id": request.get("request_id"),
        }
        try:
            result: Any = None
            if action == "update":
                result = await self.registry.update(
                    channel_id,
                    dict(request.get("changes") or {}),  # type: ignore[arg-type]
                )
            elif action == "restart":
                await self.registry.restart(channel_id)
            elif action == "delete":
                await self.registry.delete(channel_id)
            else:
                raise JunebugError(f"unknown control action {action!r}")
        except JunebugError as exc:
            reply.update(ok=False, error=error_reply(exc))
        except Exception as exc:
            log.failure("Control request {action} failed", action=action)
            reply.update(
                ok=False,
                error={"code": 500, "type": "InternalError", "message": str(exc)},
            )
        else:
            reply.update(ok=True, result=result)
        reply_to = request.get("reply_to")
        if reply_to:
            await self._broker.publish(str(reply_to), reply, ttl=self.timeout)
