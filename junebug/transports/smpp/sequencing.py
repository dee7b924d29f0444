"""SMPP sequence numbers.

A request's ``sequence_number`` pairs it with its response.  SMPP 3.4 allows
0x00000001..0x7FFFFFFF; after the last comes the first again.  A number is
only reused after two billion requests, long after its response is settled.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Final

MIN_SEQUENCE_NUMBER: Final = 0x00000001
MAX_SEQUENCE_NUMBER: Final = 0x7FFFFFFF


def wrap_sequence_number(counter: int) -> int:
    """Map any positive counter (e.g. a Redis ``INCR`` result) into the
    sequence number range, so that ``MAX + 1`` becomes ``1`` again.

    This lets a shared counter grow without bound and without a lock.
    """
    if counter < MIN_SEQUENCE_NUMBER:
        raise ValueError(f"counter must be positive, not {counter}")
    return (counter - 1) % MAX_SEQUENCE_NUMBER + 1


class SequenceGenerator(Iterator[int]):
    """Hands out sequence numbers in memory: ``start``, ``start + 1``, ... and
    back to 1 after 0x7FFFFFFF."""

    def __init__(self, start: int = MIN_SEQUENCE_NUMBER) -> None:
        if not MIN_SEQUENCE_NUMBER <= start <= MAX_SEQUENCE_NUMBER:
            raise ValueError(f"start must be 1..0x7FFFFFFF, not {start}")
        self._next = start
        self.last: int | None = None

    def next_sequence_number(self) -> int:
        """The next sequence number."""
        number = self._next
        self._next = (
            MIN_SEQUENCE_NUMBER if number == MAX_SEQUENCE_NUMBER else number + 1
        )
        self.last = number
        return number

    def __next__(self) -> int:
        return self.next_sequence_number()

    def __iter__(self) -> SequenceGenerator:
        return self
