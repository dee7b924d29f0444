"""What every benchmark scenario needs: processes, HTTP calls, load, figures.

The driver is plain blocking Python: it starts ``jb`` and its peers as
subprocesses and measures them from outside, so nothing here runs on
Junebug's reactor.  Load comes from ``wrk`` (installed from Debian's packages
when missing) or from :mod:`bench.loadgen` for open-loop fixed-rate load.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def rss_mb(pid: int) -> float:
    """Resident set size of a process, in MiB."""
    with open(f"/proc/{pid}/status", encoding="ascii") as handle:
        for line in handle:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


def peak_rss_mb(pid: int) -> float:
    with open(f"/proc/{pid}/status", encoding="ascii") as handle:
        for line in handle:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return 0.0


def call(
    method: str, url: str, body: Any = None, timeout: float = 30
) -> tuple[int, Any]:
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, method=method)
    request.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, json.loads(response.read() or b"null")
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read() or b"null")


def wait_for(check: Any, timeout: float = 30.0, what: str = "condition") -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            value = check()
        except OSError:
            value = None
        if value:
            return value
        time.sleep(0.05)
    raise TimeoutError(f"{what} not reached within {timeout}s")


def ensure_wrk() -> str:
    """The path of wrk, installing Debian's package first if needed."""
    found = shutil.which("wrk")
    if found:
        return found
    if os.geteuid() != 0:
        raise RuntimeError("wrk is not installed (apt-get install wrk)")
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    subprocess.run(
        ["apt-get", "install", "-y", "-q", "-o", "DPkg::Lock::Timeout=300", "wrk"],
        check=False,
        env=env,
        capture_output=True,
    )
    if not shutil.which("wrk"):
        subprocess.run(
            ["apt-get", "update", "-q"], check=False, env=env, capture_output=True
        )
        subprocess.run(
            ["apt-get", "install", "-y", "-q", "-o", "DPkg::Lock::Timeout=300", "wrk"],
            check=True,
            env=env,
            capture_output=True,
        )
    return shutil.which("wrk") or "wrk"


def run_wrk(
    url: str, body: Any, seconds: int = 10, connections: int = 16, threads: int = 2
) -> dict[str, float]:
    """POST ``body`` to ``url`` with wrk; requests/s and latency percentiles."""
    wrk = ensure_wrk()
    script = tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False)
    payload = json.dumps(body).replace("\\", "\\\\").replace('"', '\\"')
    script.write(
        'wrk.method = "POST"\n'
        f'wrk.body = "{payload}"\n'
        'wrk.headers["Content-Type"] = "application/json"\n'
        "done = function(summary, latency, requests)\n"
        '  io.write(string.format("JSON {\\"requests\\": %d, \\"duration_us\\": %d, '
        '\\"errors\\": %d, \\"non2xx\\": %d, \\"p50\\": %d, \\"p95\\": %d, '
        '\\"p99\\": %d}\\n", summary.requests, summary.duration, '
        "summary.errors.connect + summary.errors.read + summary.errors.write + "
        "summary.errors.timeout, summary.errors.status, latency:percentile(50), "
        "latency:percentile(95), latency:percentile(99)))\n"
        "end\n"
    )
    script.close()
    result = subprocess.run(
        [
            wrk,
            f"-t{threads}",
            f"-c{connections}",
            f"-d{seconds}s",
            "-s",
            script.name,
            url,
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    os.unlink(script.name)
    line = next(x for x in result.stdout.splitlines() if x.startswith("JSON "))
    data = json.loads(line[5:])
    seconds_run = data["duration_us"] / 1e6
    return {
        "requests": data["requests"],
        "msg_per_s": data["requests"] / seconds_run,
        "errors": data["errors"],
        "non2xx": data["non2xx"],
        "p50_ms": data["p50"] / 1000,
        "p95_ms": data["p95"] / 1000,
        "p99_ms": data["p99"] / 1000,
    }


class Process:
    """A child process with its output in a temp file."""

    def __init__(self, argv: list[str], env: dict[str, str] | None = None) -> None:
        self.log = tempfile.NamedTemporaryFile("w+", suffix=".log", delete=False)
        self.proc = subprocess.Popen(
            argv,
            stdout=self.log,
            stderr=subprocess.STDOUT,
            env=dict(os.environ, **(env or {})),
            cwd=ROOT,
        )

    @property
    def pid(self) -> int:
        return self.proc.pid

    def output(self) -> str:
        with open(self.log.name, encoding="utf-8", errors="replace") as handle:
            return handle.read()

    def stop(self, sig: int = signal.SIGTERM) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


@contextmanager
def jb(
    *args: str, embedded: bool = False, env: dict[str, str] | None = None
) -> Iterator[tuple[Process, str]]:
    """A running ``jb`` (real Redis/RabbitMQ with a private prefix and vhost,
    or ``--embedded``); yields the process and its base URL."""
    port = free_port()
    argv = [
        sys.executable,
        "-m",
        "junebug",
        "-i",
        "127.0.0.1",
        "-p",
        str(port),
        "-lp",
        tempfile.mkdtemp(prefix="jb-bench-logs-"),
        *args,
    ]
    vhost = None
    prefix = f"jb-bench-{uuid.uuid4().hex}"
    if embedded:
        argv.append("--embedded")
    else:
        vhost = f"jb-bench-{uuid.uuid4().hex[:12]}"
        subprocess.run(["rabbitmqctl", "-q", "add_vhost", vhost], check=True)
        subprocess.run(
            [
                "rabbitmqctl",
                "-q",
                "set_permissions",
                "-p",
                vhost,
                "guest",
                ".*",
                ".*",
                ".*",
            ],
            check=True,
        )
        argv += ["--redis-key-prefix", prefix, "--amqp-vhost", vhost]
    process = Process(argv, env=dict(env or {}, JUNEBUG_DISABLE_LOGGING="1"))
    base = f"http://127.0.0.1:{port}"
    try:
        wait_for(lambda: call("GET", base + "/health")[0] == 200, 60, "jb start")
        yield process, base
    finally:
        process.stop()
        if vhost:
            subprocess.run(["rabbitmqctl", "-q", "delete_vhost", vhost], check=False)
            subprocess.run(
                ["redis-cli", "--scan", "--pattern", f"{prefix}:*"],
                capture_output=True,
                check=False,
            )
            _delete_redis_prefix(prefix)


def _delete_redis_prefix(prefix: str) -> None:
    keys = subprocess.run(
        ["redis-cli", "--scan", "--pattern", f"{prefix}:*"],
        capture_output=True,
        text=True,
        check=False,
    ).stdout.split()
    for start in range(0, len(keys), 500):
        subprocess.run(
            ["redis-cli", "DEL", *keys[start : start + 500]],
            capture_output=True,
            check=False,
        )
