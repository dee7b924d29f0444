"""What Linux's ``/proc`` says about processes the tests started: their
children, and which of them holds the server end of a TCP connection (the
kernel's own record of which ``jb`` worker accepted it)."""

from __future__ import annotations

import os
from pathlib import Path

_TCP_TABLES = ("/proc/net/tcp", "/proc/net/tcp6")
_ESTABLISHED = "01"


def child_pids(pid: int) -> set[int]:
    """The pids of ``pid``'s children now (none if it has gone)."""
    try:
        text = Path(f"/proc/{pid}/task/{pid}/children").read_text()
    except OSError:
        return set()
    return {int(word) for word in text.split()}


def is_running(pid: int) -> bool:
    """Whether ``pid`` exists and is not a zombie."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rpartition(")")[2].split()[0] != "Z"


def _connection_inode(local_port: int, remote_port: int) -> str | None:
    for table in _TCP_TABLES:
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            local, remote, state, inode = fields[1], fields[2], fields[3], fields[9]
            if (
                state == _ESTABLISHED
                and int(local.rpartition(":")[2], 16) == local_port
                and int(remote.rpartition(":")[2], 16) == remote_port
            ):
                return inode
    return None


def connection_owner(pids: set[int], server_port: int, client_port: int) -> int | None:
    """Which of ``pids`` holds the accepted end of the connection from
    ``client_port`` to ``server_port`` (None if none of them does)."""
    inode = _connection_inode(server_port, client_port)
    if inode is None:
        return None
    target = f"socket:[{inode}]"
    for pid in pids:
        fd_dir = f"/proc/{pid}/fd"
        try:
            names = os.listdir(fd_dir)
        except OSError:
            continue
        for name in names:
            try:
                if os.readlink(f"{fd_dir}/{name}") == target:
                    return pid
            except OSError:
                continue
    return None
