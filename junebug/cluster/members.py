"""Which ``jb`` processes are part of the gateway, and who this one is.

Each process announces itself with a heartbeat key
``cluster:process:<id>`` (JSON: id, host, pid, started, last heartbeat,
channels held) that expires ``lease_seconds`` after its last renewal, and
adds its id to the set ``cluster:processes``.  The live processes are the
members of the set whose heartbeat still exists; the others are pruned from
the set by whoever notices.  Times in a heartbeat are for people to read:
no process compares another's clock with its own.
"""

from __future__ import annotations

import json
import math
import os
import secrets
import socket
from collections.abc import Callable
from typing import Any

import attrs
from twisted.internet.interfaces import IReactorTime

from junebug.stores import keys
from junebug.stores.backend import KeyValueBackend


@attrs.frozen
class Identity:
    """Who this process is."""

    id: str
    host: str
    pid: int
    started: float

    @classmethod
    def new(cls, clock: IReactorTime) -> Identity:
        """A fresh random id for this process."""
        return cls(
            id=secrets.token_hex(8),
            host=socket.gethostname(),
            pid=os.getpid(),
            started=clock.seconds(),
        )


@attrs.frozen
class ProcessInfo:
    """A live process as its heartbeat describes it."""

    id: str
    host: str
    pid: int
    started: float
    last_heartbeat: float
    channels: tuple[str, ...]

    def as_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "host": self.host,
            "pid": self.pid,
            "started": self.started,
            "last_heartbeat": self.last_heartbeat,
            "channels": list(self.channels),
        }

    @classmethod
    def parse(cls, raw: str) -> ProcessInfo | None:
        """A heartbeat read back; ``None`` if it is not one."""
        try:
            data = json.loads(raw)
            return cls(
                id=str(data["id"]),
                host=str(data["host"]),
                pid=int(data["pid"]),
                started=float(data["started"]),
                last_heartbeat=float(data["last_heartbeat"]),
                channels=tuple(str(cid) for cid in data["channels"]),
            )
        except (ValueError, KeyError, TypeError):
            return None


class Membership:
    """Writes this process's heartbeat and reads everyone's."""

    def __init__(
        self,
        backend: KeyValueBackend,
        clock: IReactorTime,
        identity: Identity,
        lease_seconds: float,
        held: Callable[[], list[str]],
    ) -> None:
        self._backend = backend
        self._clock = clock
        self.identity = identity
        self.lease_seconds = lease_seconds
        self._held = held
        self.left = False
        #: The channels the last heartbeat written said this process holds.
        self.announced: tuple[str, ...] | None = None

    def info(self) -> ProcessInfo:
        me = self.identity
        return ProcessInfo(
            id=me.id,
            host=me.host,
            pid=me.pid,
            started=me.started,
            last_heartbeat=self._clock.seconds(),
            channels=tuple(self._held()),
        )

    async def heartbeat(self) -> None:
        """Say (again) that this process is alive, and what it holds."""
        if self.left:
            return
        info = self.info()
        self.announced = info.channels
        await self._backend.set(
            keys.cluster_process(info.id),
            json.dumps(info.as_json()),
            ttl=math.ceil(self.lease_seconds),
        )
        await self._backend.sadd(keys.CLUSTER_PROCESSES, info.id)

    async def heartbeat_if_changed(self) -> None:
        """A heartbeat now if the channels held changed since the last one."""
        if tuple(self._held()) != self.announced:
            await self.heartbeat()

    async def live(self) -> list[ProcessInfo]:
        """Every live process (this one included unless it left), by id;
        the dead are pruned from the set."""
        ids = sorted(await self._backend.smembers(keys.CLUSTER_PROCESSES))
        raw = await self._backend.mget(*(keys.cluster_process(pid) for pid in ids))
        alive: list[ProcessInfo] = []
        dead: list[str] = []
        for process_id, value in zip(ids, raw, strict=True):
            info = None if value is None else ProcessInfo.parse(value)
            if info is None:
                dead.append(process_id)
            else:
                alive.append(info)
        if dead:
            await self._backend.srem(keys.CLUSTER_PROCESSES, *dead)
        me = self.identity.id
        if not self.left and all(info.id != me for info in alive):
            alive.append(self.info())  # our heartbeat did not get through yet
            alive.sort(key=lambda info: info.id)
        return alive

    async def leave(self) -> None:
        """Stop counting this process (a clean stop)."""
        self.left = True
        me = self.identity.id
        await self._backend.srem(keys.CLUSTER_PROCESSES, me)
        await self._backend.delete(keys.cluster_process(me))
