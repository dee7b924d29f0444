"""Which live process should run each channel: pure functions.

Every process computes the same answer from the same inputs (the live
process ids, the channel ids and the current owners), so no coordinator is
needed; the lease (:mod:`junebug.cluster.leases`) makes a process with a
stale view harmless, since it can only acquire a channel nobody holds.

The answer is *sticky* (a channel stays where it runs unless its owner has
more than its share) and *balanced* (no process gets more than
``quota = ceil(channels / processes)``).  Ties are broken by rendezvous
hashing: each (channel, process) pair has a score, the same everywhere; a
process over quota keeps its highest-scoring channels, and a free channel
goes to the highest-scoring process still under quota.  When a process
joins or leaves, only the channels that must move (the excess of those over
quota, the channels of the one that left) move.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Iterable, Mapping

import attrs


def score(channel_id: str, process_id: str) -> int:
    """The rendezvous score of running ``channel_id`` on ``process_id``."""
    digest = hashlib.blake2b(
        f"{channel_id}\0{process_id}".encode(), digest_size=8
    ).digest()
    return int.from_bytes(digest, "big")


def quota(channels: int, processes: int) -> int:
    """The most channels one process should run."""
    if processes <= 0:
        return 0
    return math.ceil(channels / processes)


def assign(
    processes: Iterable[str],
    channels: Iterable[str],
    owners: Mapping[str, str | None],
) -> dict[str, str]:
    """The process each channel should run on (every channel gets one while
    there is a live process).

    ``owners`` maps a channel to the process holding its lease (``None`` or
    absent: nobody); an owner that is not among ``processes`` is ignored (its
    lease will expire).
    """
    live = sorted(set(processes))
    wanted = sorted(set(channels))
    if not live:
        return {}
    limit = quota(len(wanted), len(live))
    held: dict[str, list[str]] = {process: [] for process in live}
    free: list[str] = []
    for channel in wanted:
        owner = owners.get(channel)
        if owner in held:
            held[owner].append(channel)
        else:
            free.append(channel)
    placed: dict[str, str] = {}
    for process, mine in held.items():
        mine.sort(key=lambda channel: score(channel, process), reverse=True)
        for channel in mine[:limit]:
            placed[channel] = process
        free.extend(mine[limit:])
    counts = {process: len(held[process][:limit]) for process in live}
    for channel in sorted(free):
        under = [process for process in live if counts[process] < limit]
        best = max(under, key=lambda process: score(channel, process))
        placed[channel] = best
        counts[best] += 1
    return placed


@attrs.frozen
class Plan:
    """What one process should do now."""

    #: Channels to take (their lease is free, or will be once released).
    acquire: tuple[str, ...]
    #: Channels this process holds and should hand over.
    release: tuple[str, ...]


def plan_for(
    me: str,
    processes: Iterable[str],
    channels: Iterable[str],
    owners: Mapping[str, str | None],
) -> Plan:
    """The part of :func:`assign` that is ``me``'s to do.

    A channel held by another live process is never acquired: its owner
    releases it first.  A channel whose lease is held by a process not
    alive any more is in ``acquire`` for the process that should take it;
    acquiring fails until the lease expires.
    """
    live = set(processes) | {me}
    placed = assign(live, channels, owners)
    acquire = []
    release = []
    for channel, process in sorted(placed.items()):
        owner = owners.get(channel)
        if process == me and owner != me and owner not in live:
            acquire.append(channel)
        elif process != me and owner == me:
            release.append(channel)
    return Plan(acquire=tuple(acquire), release=tuple(release))
