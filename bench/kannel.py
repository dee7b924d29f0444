"""Kannel beside the bench: a generated ``kannel.conf``, bearerbox and smsbox.

Debian's ``kannel`` package (installed like ``wrk`` when missing) has two
daemons: ``bearerbox`` holds the SMSC connections, the message queues and
the delivery-report store; ``smsbox`` is the HTTP side: ``sendsms`` takes
MT, an ``sms-service`` posts MO to a URL, and each MT's ``dlr-url`` is
called for its delivery reports.  :func:`kannel` writes a configuration
into a temporary directory (:func:`kannel_conf`: every port free and on
loopback, one SMPP ``smsc`` bound as transceiver to the bench's node SMSC
with the same credentials and window as Junebug's channel), runs both
daemons as children with only panics logged (``-v 4``, ``log-level = 4``)
and stops them when the block ends, whatever happens.

:func:`sendsms_query` makes the MT request (a ``GET``, as Kannel's
``sendsms`` is usually called): the same addresses and text as Junebug's,
``dlr-mask=31`` (every report: delivered, failed, buffered, the SMSC's ack
and nack) and a ``dlr-url`` on the sink that carries the request's number,
which stands in for the message id Kannel does not return.
"""

from __future__ import annotations

import os
import shutil
import signal
import sys
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any
from urllib.parse import urlencode

import attrs

from bench.harness import Process, Smsc, ensure_command, free_port, listening, wait_for

#: The ``sendsms-user`` of the generated configuration.
USER = "bench"
PASSWORD = "bench-secret"
#: Kannel's log level for both daemons: 4 logs panics only.
LOG_LEVEL = 4


@attrs.frozen
class KannelSetup:
    """What a generated ``kannel.conf`` points at.

    ``smsc_port`` is the node SMSC's; ``sink_url`` the bench sink's base URL;
    ``directory`` holds the logs and the message store; ``window`` is the
    SMPP window (``max-pending-submits``).
    """

    smsc_port: int
    sink_url: str
    directory: str
    admin_port: int = attrs.field(factory=free_port)
    smsbox_port: int = attrs.field(factory=free_port)
    sendsms_port: int = attrs.field(factory=free_port)
    window: int = 10

    @property
    def sendsms_url(self) -> str:
        return f"http://127.0.0.1:{self.sendsms_port}/cgi-bin/sendsms"


def _group(name: str, settings: dict[str, Any]) -> str:
    """One group: strings quoted, numbers and booleans bare."""
    lines = [f"group = {name}"]
    for key, value in settings.items():
        if isinstance(value, bool):
            shown = "true" if value else "false"
        elif isinstance(value, str):
            if '"' in value or "\n" in value:
                raise ValueError(f"{key}: {value!r} cannot be written quoted")
            shown = f'"{value}"'
        else:
            shown = str(value)
        lines.append(f"{key} = {shown}")
    return "\n".join(lines) + "\n"


def kannel_conf(setup: KannelSetup) -> str:
    """The text of ``kannel.conf`` for ``setup``: groups ``core``, ``smsc``,
    ``smsbox``, ``sendsms-user`` and ``sms-service``."""
    directory = setup.directory
    groups = [
        _group(
            "core",
            {
                "admin-port": setup.admin_port,
                "admin-interface": "127.0.0.1",
                "admin-password": PASSWORD,
                "admin-allow-ip": "127.0.0.1",
                "smsbox-port": setup.smsbox_port,
                "smsbox-interface": "127.0.0.1",
                "box-allow-ip": "127.0.0.1",
                "log-file": os.path.join(directory, "bearerbox.log"),
                "log-level": LOG_LEVEL,
                # Delivery reports wait for their receipt in memory, as
                # Junebug's SMSC id mappings wait in Redis.
                "dlr-storage": "internal",
                # Accepted messages are kept on disk until sent, as
                # Junebug's wait in RabbitMQ's durable queues.
                "store-type": "file",
                "store-location": os.path.join(directory, "kannel.store"),
            },
        ),
        _group(
            "smsc",
            {
                "smsc": "smpp",
                "smsc-id": "node",
                "host": "127.0.0.1",
                "port": setup.smsc_port,
                "transceiver-mode": True,
                "smsc-username": "esme1",
                "smsc-password": "secret",
                # Kannel insists on one; the node SMSC ignores it.
                "system-type": "VMA",
                "max-pending-submits": setup.window,
                "enquire-link-interval": 300,
                "reconnect-delay": 1,
            },
        ),
        _group(
            "smsbox",
            {
                "bearerbox-host": "127.0.0.1",
                "bearerbox-port": setup.smsbox_port,
                "sendsms-port": setup.sendsms_port,
                "sendsms-interface": "127.0.0.1",
                "log-file": os.path.join(directory, "smsbox.log"),
                "log-level": LOG_LEVEL,
            },
        ),
        _group(
            "sendsms-user",
            {
                "username": USER,
                "password": PASSWORD,
                "user-allow-ip": "127.0.0.1",
                "max-messages": 1,
            },
        ),
        _group(
            "sms-service",
            {
                # Every MO, whatever its first word, POSTed to the sink;
                # nothing sent back to the phone.
                "keyword": "default",
                "catch-all": True,
                "post-url": setup.sink_url + "/kannel/mo",
                "max-messages": 0,
                "omit-empty": True,
            },
        ),
    ]
    return "# Generated by python -m bench kannel (bench/kannel.py).\n\n" + "\n".join(
        groups
    )


def sendsms_query(sink_url: str) -> Callable[[int], bytes]:
    """The ``sendsms`` query string of MT number ``n`` (what
    :mod:`bench.loadgen` sends with ``method="GET"``): every report to the
    sink's ``/kannel/dlr`` with ``id=n`` and Kannel's report type."""

    def make(n: int) -> bytes:
        return urlencode(
            {
                "username": USER,
                "password": PASSWORD,
                "from": "1234",
                "to": "27820001111",
                "text": f"bench MT {n}",
                "dlr-mask": 31,
                "dlr-url": f"{sink_url}/kannel/dlr?id={n}&type=%d",
            }
        ).encode()

    return make


class Kannel:
    """A running bearerbox and smsbox."""

    def __init__(self, setup: KannelSetup, bearerbox: Process, smsbox: Process) -> None:
        self.setup = setup
        self.bearerbox = bearerbox
        self.smsbox = smsbox

    @property
    def sendsms_url(self) -> str:
        return self.setup.sendsms_url

    def output(self) -> str:
        """What both daemons wrote to stdout and their log files."""
        parts = [self.bearerbox.output(), self.smsbox.output()]
        for name in ("bearerbox.log", "smsbox.log"):
            path = os.path.join(self.setup.directory, name)
            if os.path.exists(path):
                with open(path, encoding="utf-8", errors="replace") as handle:
                    parts.append(handle.read())
        return "\n".join(part for part in parts if part)

    def running(self) -> bool:
        return all(p.proc.poll() is None for p in (self.bearerbox, self.smsbox))


def ensure_kannel() -> tuple[str, str]:
    """The paths of bearerbox and smsbox, installing ``kannel`` if needed."""
    bearerbox = ensure_command("bearerbox", "kannel")
    smsbox = shutil.which("smsbox") or os.path.join(
        os.path.dirname(bearerbox), "smsbox"
    )
    return bearerbox, smsbox


@contextmanager
def kannel(
    sink_url: str, smsc: Smsc | None = None, smsc_port: int | None = None
) -> Iterator[Kannel]:
    """Kannel for the bench sink and the node SMSC ``smsc`` (or one that
    will listen on ``smsc_port``: Kannel dials it again every second).

    Yields once ``sendsms`` listens and, if ``smsc`` is given, the bind is
    done; stops smsbox, then bearerbox, and removes the directory.
    """
    bearerbox_path, smsbox_path = ensure_kannel()
    port = smsc.port if smsc is not None else smsc_port
    if port is None:
        raise ValueError("kannel() needs the SMSC or its port")
    directory = tempfile.mkdtemp(prefix="kannel-bench-")
    setup = KannelSetup(smsc_port=port, sink_url=sink_url, directory=directory)
    conf = os.path.join(directory, "kannel.conf")
    with open(conf, "w", encoding="utf-8") as handle:
        handle.write(kannel_conf(setup))
    started: list[Process] = []
    try:
        bearerbox = Process(
            [bearerbox_path, "-v", str(LOG_LEVEL), conf], die_with_parent=True
        )
        started.append(bearerbox)
        wait_for(
            lambda: _up("bearerbox", bearerbox, setup.smsbox_port),
            30,
            "bearerbox start",
        )
        smsbox = Process(
            [smsbox_path, "-v", str(LOG_LEVEL), conf], die_with_parent=True
        )
        started.append(smsbox)
        running = Kannel(setup, bearerbox, smsbox)
        wait_for(lambda: _up("smsbox", smsbox, setup.sendsms_port), 30, "smsbox start")
        if smsc is not None:
            wait_for(smsc.bound, 30, "Kannel's SMPP bind")
        yield running
    except BaseException:
        tails = "\n".join(p.output()[-2000:] for p in started)
        print(f"Kannel output (tail):\n{tails}", file=sys.stderr)
        raise
    finally:
        for process in reversed(started):
            process.stop(signal.SIGTERM)
            process.discard()
        shutil.rmtree(directory, ignore_errors=True)


def _up(name: str, process: Process, port: int) -> bool:
    if process.proc.poll() is not None:
        raise RuntimeError(f"{name} exited early:\n{process.output()[-3000:]}")
    return listening(port)
