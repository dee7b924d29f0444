"""MO messages in parts, held in the channel's store until they are whole.

Each part is written to a hash in the store (Redis in production) before its
``deliver_sm`` is answered, so the parts already answered survive a crash or
a restart of ``jb``: the SMSC never sends an answered part again, so a part
kept only in memory would be a lost message.  The hash lives for
``multipart_reassembly_ttl`` seconds after its last part.

When the last part arrives the text is decoded and handed to ``publish``;
the hash is deleted only after that succeeded.  If ``publish`` fails the
parts stay, the last part is refused, and the SMSC's retry completes the
message.  A crash between publishing and deleting leaves a complete hash; the
SMSC, which got no answer for the last part, sends it again and the message
is published a second time (at least once, never lost).  Parts of one message
are handled one at a time, so two copies of a part cannot publish it twice
in one process.
"""

from __future__ import annotations

import math
from collections.abc import Awaitable, Callable

from twisted.internet.defer import DeferredLock

from junebug.stores import keys
from junebug.stores.backend import KeyValueBackend
from junebug.transports.smpp.codec import DataCodings, MultipartInfo, decode_parts

__all__ = ["StoredReassembler"]


class StoredReassembler:
    """Reassembles MO parts of one channel through its store."""

    def __init__(
        self,
        store: KeyValueBackend,
        key_prefix: str,
        ttl: float,
        data_codings: DataCodings,
    ) -> None:
        self._store = store
        self._key_prefix = key_prefix
        self._ttl = max(1, math.ceil(ttl))
        self._codings = data_codings
        self._locks: dict[str, DeferredLock] = {}

    def key(self, sender: str, recipient: str, part: MultipartInfo) -> str:
        """The store key of the message a part belongs to."""
        return keys.smpp_multipart(
            self._key_prefix, sender, recipient, part.ref, part.total
        )

    async def add(
        self,
        sender: str,
        recipient: str,
        part: MultipartInfo,
        data_coding: int,
        publish: Callable[[str], Awaitable[None]],
    ) -> bool:
        """Store a part; publish the text once every part is in.

        Returns whether the message was complete (and so published).  A
        repeated part replaces the earlier copy.  Raises :class:`ValueError`
        for a part number outside ``1..total``; after dropping the message,
        the decoding errors of :func:`decode_parts`; and whatever the store or
        ``publish`` raise (the parts are kept then).
        """
        if not 1 <= part.seqnum <= part.total:
            raise ValueError(f"part {part.seqnum} of {part.total} is impossible")
        key = self.key(sender, recipient, part)
        lock = self._locks.get(key)
        if lock is None:
            lock = self._locks[key] = DeferredLock()
        await lock.acquire()
        try:
            return await self._add(key, part, data_coding, publish)
        finally:
            lock.release()
            if not lock.locked and not lock.waiting:
                self._locks.pop(key, None)

    async def _add(
        self,
        key: str,
        part: MultipartInfo,
        data_coding: int,
        publish: Callable[[str], Awaitable[None]],
    ) -> bool:
        field = str(part.seqnum)
        await self._store.hset(
            key, {field: f"{data_coding}:{part.data.hex()}"}, ttl=self._ttl
        )
        stored = await self._store.hgetall(key)
        parts: list[tuple[bytes, int]] = []
        for seqnum in range(1, part.total + 1):
            value = stored.get(str(seqnum))
            if value is None:
                return False
            coding, _, data = value.partition(":")
            parts.append((bytes.fromhex(data), int(coding)))
        try:
            text = decode_parts(parts, self._codings)
        except Exception:
            await self._store.delete(key)
            raise
        await publish(text)
        await self._store.delete(key)
        return True
