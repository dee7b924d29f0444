"""What a consumer does with a message once its handler is done.

Both brokers (:mod:`junebug.amqp.memory`, :mod:`junebug.amqp.consumer`) ask
:func:`settlement` and carry out the answer, so a failing handler is treated
the same way whichever broker runs it:

- the handler returned: :attr:`Settlement.ACK`;
- the body is not a vumi message: :attr:`Settlement.DEAD_LETTER` at once;
- it raised one of :data:`~junebug.errors.RETRY_LATER` (something it needs is
  away): :attr:`Settlement.REQUEUE_LATER`, after :data:`RETRY_LATER_PAUSE`
  seconds on the broker's clock, never counted as a failure;
- it raised anything else: :attr:`Settlement.REQUEUE` the first time,
  :attr:`Settlement.DEAD_LETTER` (to ``<queue>.failed``) when the message was
  already redelivered, so a poison message cannot loop.

:func:`settle_handled` is that answer for a handled message, logged, once the
pause of a requeue-later has passed.
"""

from __future__ import annotations

import enum

from twisted.internet.interfaces import IReactorTime
from twisted.internet.task import deferLater
from twisted.logger import Logger
from twisted.python.failure import Failure

from junebug.errors import RETRY_LATER

__all__ = ["RETRY_LATER_PAUSE", "Settlement", "settle_handled", "settlement"]

#: Seconds a consumer waits before requeueing a message whose handler raised
#: one of :data:`~junebug.errors.RETRY_LATER`.
RETRY_LATER_PAUSE = 1.0


class Settlement(enum.Enum):
    """The fate of one delivered message."""

    #: Done: acknowledge it.
    ACK = "ack"
    #: Failed once: back to its queue, flagged as redelivered.
    REQUEUE = "requeue"
    #: Could not be handled now: back to its queue after a pause, no strike.
    REQUEUE_LATER = "requeue later"
    #: Failed again, or unreadable: moved to ``<queue>.failed``.
    DEAD_LETTER = "dead-letter"


def settlement(
    error: BaseException | None, *, redelivered: bool, readable: bool = True
) -> Settlement:
    """The fate of a message whose handler raised ``error`` (``None``: it
    returned); ``readable`` is false when the body was not a vumi message."""
    if not readable:
        return Settlement.DEAD_LETTER
    if error is None:
        return Settlement.ACK
    if isinstance(error, RETRY_LATER):
        return Settlement.REQUEUE_LATER
    return Settlement.DEAD_LETTER if redelivered else Settlement.REQUEUE


async def settle_handled(
    error: Exception | None,
    *,
    redelivered: bool,
    queue: str,
    clock: IReactorTime,
    log: Logger,
    pause: bool = True,
) -> Settlement:
    """:func:`settlement` of a readable message, logged to ``log``: a warning
    and the :data:`RETRY_LATER_PAUSE` on ``clock`` before a requeue-later, the
    handler's failure before a requeue or dead-letter.  A consumer that is
    stopping passes ``pause=False``: it will not be given the message again,
    and waiting would only hold up its stop (a channel's hand-over waits
    for its outbound consumer)."""
    how = settlement(error, redelivered=redelivered)
    if how is Settlement.REQUEUE_LATER:
        log.warn(
            "Requeueing a message of {queue} for later: {error}",
            queue=queue,
            error=error,
        )
        if pause:
            await deferLater(clock, RETRY_LATER_PAUSE, lambda: None)
    elif how is not Settlement.ACK:
        log.failure(
            "Handler for {queue} failed ({what})",
            failure=Failure(error),
            queue=queue,
            what=how.value,
        )
    return how
