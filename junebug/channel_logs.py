"""Per-channel and per-router log files, and reading them back for the API.

:class:`LogFileRouter` writes the log events of each owner (a channel id or a
router id) as JSON lines to ``<logging_path>/<owner id>``, rotated by
:class:`twisted.python.logfile.LogFile` into ``<owner id>.1`` (newest) ...
``<owner id>.N``, with a single observer, and hands each entry to the
:class:`~junebug.stored_logs.StoredLogs` it is given (what the API reads:
readable through any process).  :func:`read_logs` reads the files back,
newest first.  An event with a ``message_id`` key is also about that message
(its entry goes to the message's stored log too).

Which events land in an owner's file
------------------------------------
An event (``twisted.logger``) at level info or above belongs to owner ``X`` when

* it has a key ``channel_id`` or ``router_id`` equal to ``X``, e.g.
  ``log.info("Channel started", channel_id=cid)`` or, for every event of a
  logger, ``owner_logger("junebug.channels", "channel_id", cid)``; or
* its ``log_system`` (a comma-separated list, as set by legacy
  ``twisted.python.log`` callers and by ``Logger.emit(..., log_system=...)``)
  contains ``X`` and ``X`` was registered with :meth:`LogFileRouter.add_owner`
  (a ``log_system`` is often a protocol name, not an owner, and must not
  create files).

Only set ``channel_id`` / ``router_id`` on events about channels and routers
that exist: the router opens a file for any such id.

Line format (one JSON object per line)::

    {"logger": <owner id>, "level": <10|20|30|40|50>, "timestamp": <epoch float>,
     "message": <formatted text>,
     "exception": {"class": ..., "instance": ..., "stack": [...]}}  # failures only

Passwords in ``scheme://user:password@`` URLs are replaced by ``***`` before
anything is written.
"""

from __future__ import annotations

import json
import os
import threading
import time
from collections import OrderedDict, deque
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any, Final, Literal

from twisted.internet.interfaces import IReactorThreads
from twisted.internet.threads import deferToThreadPool
from twisted.logger import (
    ILogObserver,
    LogEvent,
    Logger,
    LogLevel,
    LogPublisher,
    formatEvent,
    globalLogPublisher,
)
from twisted.python.failure import Failure
from twisted.python.logfile import LogFile
from zope.interface import implementer

from junebug.http.client import redact_text
from junebug.stored_logs import StoredLogs

#: The Python ``logging`` numbers written as ``level``.
LEVEL_NUMBERS: Final = {
    LogLevel.debug: 10,
    LogLevel.info: 20,
    LogLevel.warn: 30,
    LogLevel.error: 40,
    LogLevel.critical: 50,
}
#: Event keys naming the owner of an event.
OWNER_KEYS: Final = ("channel_id", "router_id")
DEFAULT_ROTATE_SIZE: Final = 1_000_000
DEFAULT_MAX_LOG_FILES: Final = 5
#: Bytes read per step when reading a log file backwards.
READ_BUFFER_SIZE: Final = 64 * 1024


def _usable(owner_id: str) -> bool:
    return (
        bool(owner_id)
        and owner_id not in {".", ".."}
        and not any(sep in owner_id for sep in ("/", "\\", "\0"))
        and len(owner_id.encode("utf-8", "replace")) <= 200
    )


def check_owner_id(owner_id: str) -> None:
    """Refuse ids that are not a plain file name (no path tricks)."""
    if not _usable(owner_id):
        raise ValueError(f"Not a usable log owner id: {owner_id!r}")


def event_belongs_to(event: LogEvent, owner_id: str) -> bool:
    """Whether ``event`` is about ``owner_id`` (see the module doc)."""
    if any(event.get(key) == owner_id for key in OWNER_KEYS):
        return True
    system = event.get("log_system")
    if isinstance(system, str):
        return owner_id in (part.strip() for part in system.split(","))
    return False


def _level_of(event: LogEvent) -> Any:
    """The event's :class:`LogLevel` constant; info when missing or unknown."""
    level = event.get("log_level")
    try:
        known = level in LEVEL_NUMBERS
    except TypeError:  # unhashable junk
        known = False
    return level if known else LogLevel.info


def _frame_lines(failure: Failure) -> list[str]:
    return [
        redact_text(f'File "{filename}", line {lineno}, in {name}')
        for name, filename, lineno, *_ in failure.frames
    ]


def event_entry(event: LogEvent, owner_id: str) -> dict[str, Any]:
    """The JSON object written for ``event`` in ``owner_id``'s file."""
    timestamp = event.get("log_time")
    message = formatEvent(event)
    failure = event.get("log_failure")
    entry: dict[str, Any] = {
        "logger": owner_id,
        "level": LEVEL_NUMBERS.get(_level_of(event), 20),
        "timestamp": float(timestamp)
        if isinstance(timestamp, int | float)
        else time.time(),
        "message": redact_text(message),
    }
    if isinstance(failure, Failure):
        if not message:
            entry["message"] = "Unhandled Error"
        entry["exception"] = {
            "class": repr(failure.type),
            "instance": redact_text(repr(failure.value)),
            "stack": _frame_lines(failure),
        }
    return entry


def _message_id(event: LogEvent) -> str | None:
    """The ``message_id`` an event is about, if it names one."""
    value = event.get("message_id")
    if isinstance(value, str) and value:
        return value
    return None


def _unlimited(value: int | None) -> int | None:
    return value or None


class _OwnerFile:
    """One owner's rotating log file (the directory is created if missing)."""

    def __init__(
        self,
        directory: Path,
        owner_id: str,
        rotate_size: int | None,
        max_log_files: int | None,
    ) -> None:
        directory.mkdir(mode=0o755, parents=True, exist_ok=True)
        self._file = LogFile(
            owner_id,
            str(directory),
            rotateLength=_unlimited(rotate_size),
            maxRotatedFiles=_unlimited(max_log_files),
        )

    def write(self, entry: dict[str, Any]) -> None:
        self._file.write((json.dumps(entry) + "\n").encode("utf-8"))
        self._file.flush()

    def close(self) -> None:
        self._file.close()


@implementer(ILogObserver)
class _GuardedObserver:
    """Shared plumbing: level filter, re-entrancy guard, write-error reporting."""

    def __init__(self, publisher: LogPublisher | None, min_level: LogLevel) -> None:
        self._publisher = globalLogPublisher if publisher is None else publisher
        self._report = Logger(namespace=__name__, observer=self._publisher)
        self._min_level = min_level
        self._lock = threading.RLock()
        self._local = threading.local()
        self._reported_failure = False
        self._observing = False

    def _observe(self) -> None:
        if not self._observing:
            self._observing = True
            self._publisher.addObserver(self)

    def _unobserve(self) -> None:
        if self._observing:
            self._observing = False
            self._publisher.removeObserver(self)

    def __call__(self, event: LogEvent) -> None:
        if getattr(self._local, "writing", False):
            return  # emitted while we write: dropped (re-entrancy guard)
        if _level_of(event) < self._min_level:
            return
        self._local.writing = True
        try:
            with self._lock:
                self._route(event)
        except Exception:
            if not self._reported_failure:
                self._reported_failure = True
                # No owner key: this event must not come back to a log file.
                self._report.failure("Cannot write a channel log")
        else:
            self._reported_failure = False
        finally:
            self._local.writing = False

    def _route(self, event: LogEvent) -> None:
        raise NotImplementedError


@implementer(ILogObserver)
class LogFileRouter(_GuardedObserver):
    """One observer writing every owner's events to that owner's file.

    An event goes to the file of the owner named by its ``channel_id`` /
    ``router_id`` key (any id that is a plain file name), and to the files of
    the owners registered with :meth:`add_owner` that its ``log_system`` lists.
    Files are opened on first use; at most ``max_open_files`` stay open (least
    recently used are closed, and reopened for appending when needed).
    """

    def __init__(
        self,
        logging_path: str | os.PathLike[str],
        log_rotate_size: int | None = DEFAULT_ROTATE_SIZE,
        max_log_files: int | None = DEFAULT_MAX_LOG_FILES,
        *,
        publisher: LogPublisher | None = None,
        min_level: LogLevel = LogLevel.info,
        max_open_files: int = 128,
        store: StoredLogs | None = None,
    ) -> None:
        super().__init__(publisher, min_level)
        #: Also gets every entry (see :mod:`junebug.stored_logs`).
        self.store = store
        self.directory = Path(logging_path)
        self.rotate_size = log_rotate_size
        self.max_log_files = max_log_files
        self.max_open_files = max(1, max_open_files)
        self._files: OrderedDict[str, _OwnerFile] = OrderedDict()
        self._system_owners: set[str] = set()
        self._started = False

    def start(self) -> None:
        """Create the directory and start observing."""
        self.directory.mkdir(mode=0o755, parents=True, exist_ok=True)
        with self._lock:
            self._started = True
        self._observe()

    def stop(self) -> None:
        """Stop observing and close every file."""
        self._unobserve()
        with self._lock:
            self._started = False
            files = list(self._files.values())
            self._files.clear()
            for logfile in files:
                logfile.close()

    def add_owner(self, owner_id: str) -> None:
        """Also route events whose ``log_system`` lists ``owner_id``."""
        check_owner_id(owner_id)
        with self._lock:
            self._system_owners.add(owner_id)

    def remove_owner(self, owner_id: str) -> None:
        """Undo :meth:`add_owner` and close ``owner_id``'s file (if open)."""
        with self._lock:
            self._system_owners.discard(owner_id)
            logfile = self._files.pop(owner_id, None)
            if logfile is not None:
                logfile.close()

    def owners_of(self, event: LogEvent) -> list[str]:
        """The owners whose files ``event`` is written to."""
        owners: list[str] = []
        for key in OWNER_KEYS:
            value = event.get(key)
            if isinstance(value, str) and value not in owners and _usable(value):
                owners.append(value)
        system = event.get("log_system")
        if isinstance(system, str) and self._system_owners:
            for part in system.split(","):
                part = part.strip()
                if part in self._system_owners and part not in owners:
                    owners.append(part)
        return owners

    def _file_for(self, owner_id: str) -> _OwnerFile:
        logfile = self._files.get(owner_id)
        if logfile is not None:
            self._files.move_to_end(owner_id)
            return logfile
        while len(self._files) >= self.max_open_files:
            _, oldest = self._files.popitem(last=False)
            oldest.close()
        logfile = _OwnerFile(
            self.directory, owner_id, self.rotate_size, self.max_log_files
        )
        self._files[owner_id] = logfile
        return logfile

    def _route(self, event: LogEvent) -> None:
        if not self._started:
            return
        store = self.store
        message_id = _message_id(event) if store is not None else None
        for owner_id in self.owners_of(event):
            entry = event_entry(event, owner_id)
            if store is not None:
                store.add_line(owner_id, entry, message_id)
            self._file_for(owner_id).write(entry)


@implementer(ILogObserver)
class _OwnerTagger:
    def __init__(self, key: str, owner_id: str, observer: ILogObserver) -> None:
        self._key = key
        self._owner_id = owner_id
        self._observer = observer

    def __call__(self, event: LogEvent) -> None:
        event.setdefault(self._key, self._owner_id)
        self._observer(event)


def owner_logger(
    namespace: str,
    owner_key: Literal["channel_id", "router_id"],
    owner_id: str,
    *,
    observer: ILogObserver | None = None,
) -> Logger:
    """A :class:`Logger` whose every event carries ``owner_key=owner_id``."""
    target: ILogObserver = globalLogPublisher if observer is None else observer
    return Logger(
        namespace=namespace, observer=_OwnerTagger(owner_key, owner_id, target)
    )


def _lines_backwards(stream: IO[bytes], buffer_size: int) -> Iterator[bytes]:
    """Complete lines of ``stream``, last first; bytes after the last newline
    (an incomplete line still being written) are ignored."""
    position = stream.seek(0, os.SEEK_END)
    pending: deque[bytes] = deque()  # pieces of the line before the newest newline
    seen_newline = False
    while position > 0:
        size = min(buffer_size, position)
        position -= size
        stream.seek(position)
        chunk = stream.read(size)
        parts = chunk.split(b"\n")
        if len(parts) == 1:
            pending.appendleft(chunk)
            continue
        line = parts[-1] + b"".join(pending)
        if seen_newline:
            yield line
        seen_newline = True
        yield from reversed(parts[1:-1])
        pending = deque([parts[0]])
    if seen_newline:
        yield b"".join(pending)


def _log_files(directory: Path, owner_id: str) -> Iterator[Path]:
    current = directory / owner_id
    if current.exists():
        yield current
    index = 1
    while True:
        rotated = directory / f"{owner_id}.{index}"
        if not rotated.exists():
            return
        yield rotated
        index += 1


def read_logs(
    logging_path: str | os.PathLike[str],
    owner_id: str,
    n: int,
    *,
    buffer_size: int = READ_BUFFER_SIZE,
) -> list[dict[str, Any]]:
    """The newest ``n`` entries of ``owner_id``'s logs, newest first.

    Blocking (file I/O): run it in a thread, see :func:`read_logs_async`.
    Blank and undecodable lines are skipped; missing files give ``[]``.
    """
    check_owner_id(owner_id)
    if n < 1:
        raise ValueError(f"n must be positive, not {n}")
    entries: list[dict[str, Any]] = []
    for path in _log_files(Path(logging_path), owner_id):
        try:
            stream = path.open("rb")
        except FileNotFoundError:
            continue  # rotated away meanwhile
        with stream:
            for raw in _lines_backwards(stream, buffer_size):
                if not raw.strip():
                    continue
                try:
                    entry = json.loads(raw)
                except ValueError:
                    continue
                if not isinstance(entry, dict):
                    continue
                entries.append(entry)
                if len(entries) >= n:
                    return entries
    return entries


async def read_logs_async(
    reactor: IReactorThreads,
    logging_path: str | os.PathLike[str],
    owner_id: str,
    n: int,
) -> list[dict[str, Any]]:
    """:func:`read_logs` in the reactor's thread pool."""
    entries: list[dict[str, Any]] = await deferToThreadPool(
        reactor, reactor.getThreadPool(), read_logs, logging_path, owner_id, n
    )
    return entries
