"""``python -m bench faults``: the fault-injection suite, in a subprocess.

It restarts RabbitMQ and takes minutes, so it is not part of the default
``pytest`` run (``-m "not faults"``); this runs exactly that suite::

    pytest -m faults junebug/tests/faults -s
"""

from __future__ import annotations

import subprocess
import sys

from bench.harness import ROOT


def main(argv: list[str] | None = None) -> int:
    command = [
        sys.executable,
        "-m",
        "pytest",
        "-m",
        "faults",
        "junebug/tests/faults",
        "-s",
        *(argv or []),
    ]
    print("+ " + " ".join(command[1:]), file=sys.stderr, flush=True)
    return subprocess.run(command, cwd=ROOT, check=False).returncode


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
