"""The reactor capabilities Junebug's parts are given, each as a narrow type.

A part names what it really calls on its reactor: Twisted's ``IReactorTime``
alone for timers (``task.Clock`` in tests), ``IReactorThreads`` to read files
in the thread pool (adapted: ``IReactorThreads(reactor)``, as Twisted advises
for what not every reactor has), :class:`TimeTCPReactor` to schedule, resolve
names and dial or listen (``MemoryReactorClock`` in tests),
:class:`ProcessReactor` to also start child processes (test fixtures, the
nginx plugin's reload command),
:class:`JunebugReactor` for the command roots that hand the reactor on to all
of them.

A zope interface that combines others is only provided by classes that
declare it, which no reactor does; so these are ``typing.Protocol`` classes
that any reactor with the methods fits, as the real ones and
``MemoryReactorClock`` do.  (The type Twisted gives the global reactor,
``_IReactorCommon``, lacks the name resolver and the thread pool.)
:class:`TimeTCPReactor` is also declared to implement the three Twisted
interfaces it mirrors, so mypy-zope lets it (and the protocols built on it)
through to typed Twisted APIs (``deferLater``, ``Deferred.addTimeout``); the
method signatures are Twisted's own.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any, Protocol

from twisted.internet.interfaces import (
    IConnector,
    IDelayedCall,
    IHostnameResolver,
    IListeningPort,
    IProcessProtocol,
    IProcessTransport,
    IReactorPluggableNameResolver,
    IReactorTCP,
    IReactorTime,
)
from twisted.internet.protocol import ClientFactory, ServerFactory
from zope.interface import implementer


@implementer(IReactorTime, IReactorTCP, IReactorPluggableNameResolver)
class TimeTCPReactor(Protocol):
    """Schedules calls, resolves host names and makes or accepts TCP
    connections: what a transport, a client that dials or a server that
    listens is given (treq's ``_ITreqReactor`` combines the same three).  The
    camelCase names are Twisted's."""

    def seconds(self) -> float: ...

    @property
    def nameResolver(self) -> IHostnameResolver: ...  # noqa: N802

    def installNameResolver(  # noqa: N802
        self, resolver: IHostnameResolver
    ) -> IHostnameResolver: ...

    def callLater(  # noqa: N802
        self,
        delay: float,
        callable: Callable[..., Any],  # noqa: A002 - Twisted's name
        *args: object,
        **kwargs: object,
    ) -> IDelayedCall: ...

    def getDelayedCalls(self) -> Sequence[IDelayedCall]: ...  # noqa: N802

    def listenTCP(  # noqa: N802
        self,
        port: int,
        factory: ServerFactory,
        backlog: int = 50,
        interface: str = "",
    ) -> IListeningPort: ...

    def connectTCP(  # noqa: N802
        self,
        host: str,
        port: int,
        factory: ClientFactory[Any],
        timeout: float = 30.0,
        bindAddress: tuple[str, int] | None = None,  # noqa: N803
    ) -> IConnector: ...


class ProcessReactor(TimeTCPReactor, Protocol):
    """Also starts child processes: what the test fixtures that run a server
    (Redis, nginx, Prosody, an SMSC, ``jb`` itself) and the nginx plugin (its
    reload command) are given."""

    def spawnProcess(  # noqa: N802
        self,
        processProtocol: IProcessProtocol,  # noqa: N803
        executable: bytes | str,
        args: Sequence[bytes | str],
        env: Mapping[str, str] | None = None,
        path: bytes | str | None = None,
        uid: int | None = None,
        gid: int | None = None,
        usePTY: bool = False,  # noqa: N803
        childFDs: Mapping[int, int | str] | None = None,  # noqa: N803
    ) -> IProcessTransport: ...


class JunebugReactor(TimeTCPReactor, Protocol):
    """What ``jb`` and ``jb message-api`` run on and hand on to their parts:
    timers, TCP, the start-up and shutdown triggers and stopping (for the
    SIGTERM handler, :mod:`junebug.shutdown_signal`) (the thread pool, which not every
    reactor has, is adapted to where it is used: ``IReactorThreads(reactor)``).
    """

    def addSystemEventTrigger(  # noqa: N802
        self,
        phase: str,
        eventType: str,  # noqa: N803
        callable: Callable[..., Any],  # noqa: A002 - Twisted's name
        *args: object,
        **kwargs: object,
    ) -> Any: ...

    def callWhenRunning(  # noqa: N802
        self,
        callable: Callable[..., Any],  # noqa: A002 - Twisted's name
        *args: object,
        **kwargs: object,
    ) -> Any: ...

    def callFromThread(  # noqa: N802
        self,
        callable: Callable[..., Any],  # noqa: A002 - Twisted's name
        *args: object,
        **kwargs: object,
    ) -> None: ...

    def stop(self) -> None: ...
