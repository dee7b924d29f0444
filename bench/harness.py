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
from contextlib import contextmanager, suppress
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


def ensure_command(command: str, package: str) -> str:
    """The path of ``command``, installing Debian's ``package`` first if
    needed (as root; ``apt-get update`` once if the install finds nothing)."""
    found = shutil.which(command)
    if found:
        return found
    if os.geteuid() != 0:
        raise RuntimeError(f"{command} is not installed (apt-get install {package})")
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    install = ["apt-get", "install", "-y", "-q", "-o", "DPkg::Lock::Timeout=300"]
    subprocess.run(
        [*install, package], check=False, env=env, capture_output=True, timeout=900
    )
    if not shutil.which(command):
        subprocess.run(
            ["apt-get", "update", "-q"],
            check=False,
            env=env,
            capture_output=True,
            timeout=900,
        )
        subprocess.run(
            [*install, package], check=True, env=env, capture_output=True, timeout=900
        )
    return shutil.which(command) or command


def ensure_wrk() -> str:
    """The path of wrk, installing Debian's package first if needed."""
    return ensure_command("wrk", "wrk")


def run_wrk(
    url: str,
    body: Any,
    seconds: int = 10,
    connections: int = 16,
    threads: int = 2,
    method: str = "POST",
) -> dict[str, float]:
    """POST ``body`` to ``url`` with wrk (or GET ``url``, ``body`` unused);
    requests/s and latency percentiles."""
    wrk = ensure_wrk()
    script = tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False)
    payload = json.dumps(body).replace("\\", "\\\\").replace('"', '\\"')
    request = (
        'wrk.method = "POST"\n'
        f'wrk.body = "{payload}"\n'
        'wrk.headers["Content-Type"] = "application/json"\n'
        if method == "POST"
        else 'wrk.method = "GET"\n'
    )
    script.write(
        request + "done = function(summary, latency, requests)\n"
        '  io.write(string.format("JSON {\\"requests\\": %d, \\"duration_us\\": %d, '
        '\\"errors\\": %d, \\"non2xx\\": %d, \\"p50\\": %d, \\"p95\\": %d, '
        '\\"p99\\": %d}\\n", summary.requests, summary.duration, '
        "summary.errors.connect + summary.errors.read + summary.errors.write + "
        "summary.errors.timeout, summary.errors.status, latency:percentile(50), "
        "latency:percentile(95), latency:percentile(99)))\n"
        "end\n"
    )
    script.close()
    try:
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
            timeout=seconds + 60,
        )
    finally:
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


def _die_with_parent() -> None:
    """In a child before ``exec``: SIGTERM when the bench dies (Linux's
    ``PR_SET_PDEATHSIG``), so a killed run leaves no daemon behind."""
    import ctypes

    pr_set_pdeathsig = 1
    ctypes.CDLL(None).prctl(pr_set_pdeathsig, signal.SIGTERM)


class Process:
    """A child process with its output in a temp file (``die_with_parent``:
    terminated if the bench itself dies)."""

    def __init__(
        self,
        argv: list[str],
        env: dict[str, str] | None = None,
        die_with_parent: bool = False,
    ) -> None:
        self.log = tempfile.NamedTemporaryFile("w+", suffix=".log", delete=False)
        self.proc = subprocess.Popen(
            argv,
            stdout=self.log,
            stderr=subprocess.STDOUT,
            env=dict(os.environ, **(env or {})),
            cwd=ROOT,
            preexec_fn=_die_with_parent if die_with_parent else None,
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

    def discard(self) -> None:
        """Remove the output file (after :meth:`stop`)."""
        self.log.close()
        with suppress(OSError):
            os.unlink(self.log.name)


@contextmanager
def jb(
    *args: str, embedded: bool = False, env: dict[str, str] | None = None
) -> Iterator[tuple[Process, str]]:
    """A running ``jb`` (real Redis/RabbitMQ with a private prefix and vhost,
    or ``--embedded``); yields the process and its base URL."""
    port = free_port()
    logs = tempfile.mkdtemp(prefix="jb-bench-logs-")
    experiments = os.environ.get("BENCH_EXPERIMENTS")
    argv = [
        sys.executable,
        "-m",
        "bench.experiments" if experiments else "junebug",
        "-i",
        "127.0.0.1",
        "-p",
        str(port),
        "-lp",
        logs,
        *args,
    ]
    vhost = None
    prefix = f"jb-bench-{uuid.uuid4().hex}"
    if embedded:
        argv.append("--embedded")
    else:
        vhost = f"jb-bench-{uuid.uuid4().hex[:12]}"
        rabbitmqctl("add_vhost", vhost)
        rabbitmqctl("set_permissions", "-p", vhost, "guest", ".*", ".*", ".*")
        argv += ["--redis-key-prefix", prefix, "--amqp-vhost", vhost]
    process = Process(argv, env=env)
    base = f"http://127.0.0.1:{port}"
    try:
        wait_for(lambda: _health(process, base), 60, "jb start")
        yield process, base
    except BaseException:
        print(f"jb output (tail):\n{process.output()[-3000:]}", file=sys.stderr)
        raise
    finally:
        process.stop()
        shutil.rmtree(logs, ignore_errors=True)
        process.discard()
        if vhost:
            try:
                rabbitmqctl("delete_vhost", vhost)
            except RuntimeError as exc:
                print(f"warning: {exc}", file=sys.stderr)
            _delete_redis_prefix(prefix)


#: Warnings jb always logs in some setups: not problems of the run.
EXPECTED_WARNINGS = ("Running with --embedded",)


def problems(process: Process, limit: int = 5) -> dict[str, Any]:
    """The WARN/ERROR/CRITICAL lines jb logged: a count and the first few."""
    found = [
        line
        for line in process.output().splitlines()
        if any(f"] {level}" in line for level in ("WARN", "ERROR", "CRITICAL"))
        and not any(expected in line for expected in EXPECTED_WARNINGS)
    ]
    return {"count": len(found), "first": found[:limit]}


def rabbitmqctl(*args: str, attempts: int = 3) -> str:
    """Run ``rabbitmqctl -q ARGS``, trying again a couple of times."""
    result = None
    for attempt in range(attempts):
        result = subprocess.run(
            ["rabbitmqctl", "-q", *args],
            capture_output=True,
            text=True,
            check=False,
            timeout=120,
        )
        if result.returncode == 0:
            return result.stdout
        time.sleep(1 + attempt)
    assert result is not None
    raise RuntimeError(
        f"rabbitmqctl {' '.join(args)} failed ({result.returncode}): "
        f"{(result.stdout + result.stderr).strip()[-500:]}"
    )


def _health(process: Process, base: str) -> bool:
    if process.proc.poll() is not None:
        raise RuntimeError(f"jb exited early:\n{process.output()[-3000:]}")
    return call("GET", base + "/health", timeout=5)[0] == 200


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


@contextmanager
def sink() -> Iterator[Sink]:
    """The HTTP sink of :mod:`bench.sink` in its own process."""
    port = free_port()
    process = Process([sys.executable, "-m", "bench.sink", str(port)])
    try:
        wait_for(lambda: listening(port), 30, "sink start")
        yield Sink(process, f"http://127.0.0.1:{port}")
    finally:
        process.stop()
        process.discard()


class Sink:
    """A running :mod:`bench.sink`."""

    def __init__(self, process: Process, url: str) -> None:
        self.process = process
        self.url = url

    def stats(self) -> dict[str, Any]:
        return call("GET", self.url + "/stats")[1]  # type: ignore[no-any-return]

    def dump(self) -> dict[str, Any]:
        return call("GET", self.url + "/dump", timeout=60)[1]  # type: ignore[no-any-return]

    def reset(self) -> None:
        call("POST", self.url + "/reset", {})

    def wait(self, done: Any, timeout: float, stall: float = 30.0) -> dict[str, Any]:
        """Poll :meth:`stats` until ``done(stats)``, ``timeout`` seconds pass,
        or nothing new arrives for ``stall`` seconds; return the last stats."""
        deadline = time.monotonic() + timeout
        last_change = time.monotonic()
        seen = None
        while True:
            stats = self.stats()
            if done(stats):
                return stats
            progress = (stats["event_posts"], stats["mo_posts"])
            if progress != seen:
                seen, last_change = progress, time.monotonic()
            now = time.monotonic()
            if now > deadline or now - last_change > stall:
                return stats
            time.sleep(0.1)


@contextmanager
def node_smsc(
    mode: str = "dlr", env: dict[str, str] | None = None, port: int | None = None
) -> Iterator[Smsc]:
    """``junebug/tests/support/peers/node_smpp_smsc.js`` as a plain subprocess,
    on ``port`` or a free one."""
    from junebug.tests.support.smsc import PEERS_DIR, node_smpp_modules

    port = port or free_port()
    node = shutil.which("node") or "node"
    process = Process(
        [node, str(PEERS_DIR / "node_smpp_smsc.js")],
        env={
            "PORT": str(port),
            "MODE": mode,
            "QUIET": "1",
            "NODE_PATH": str(node_smpp_modules()),
            **(env or {}),
        },
    )
    try:
        wait_for(lambda: "listening" in process.output(), 30, "SMSC start")
        yield Smsc(process, port)
    finally:
        process.stop()
        process.discard()


class Smsc:
    """A running node SMSC."""

    def __init__(self, process: Process, port: int) -> None:
        self.process = process
        self.port = port

    @property
    def endpoint(self) -> str:
        return f"tcp:host=127.0.0.1:port={self.port}"

    def bound(self) -> bool:
        """Whether a transceiver has bound."""
        return "bind_transceiver ok" in self.process.output()

    def line(self, prefix: str) -> str | None:
        """The last line of output starting with ``prefix``, if any."""
        found = None
        for text in self.process.output().splitlines():
            if text.startswith(prefix):
                found = text
        return found


def smpp_channel(
    base: str,
    smsc: Smsc,
    mo_url: str,
    window: int = 10,
    properties: dict[str, Any] | None = None,
    **extra: Any,
) -> str:
    """Create an smpp channel bound to ``smsc``; wait for the bind; its id.

    ``properties`` are more channel properties (``rate_limit_count``...),
    ``extra`` more keys of its config."""
    request = {
        "type": "smpp",
        "mo_url": mo_url,
        **(properties or {}),
        "config": {
            "twisted_endpoint": smsc.endpoint,
            "system_id": "esme1",
            "password": "secret",
            "window_size": window,
            **extra,
        },
    }
    # With --workers the first /health may come from one worker while
    # another, still starting, takes this request: 503 NotReady, try again.
    deadline = time.monotonic() + 30
    code, body = call("POST", base + "/channels/", request)
    while code == 503 and time.monotonic() < deadline:
        time.sleep(0.2)
        code, body = call("POST", base + "/channels/", request)
    if code != 201:
        raise RuntimeError(f"channel create failed: {code} {body}")
    channel_id: str = body["result"]["id"]
    wait_for(smsc.bound, 30, "SMPP bind")
    return channel_id


def listening(port: int) -> bool:
    """Whether something accepts TCP connections on 127.0.0.1:``port``."""
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) == 0


def smpp_baseline(kind: str, count: int, window: int = 10) -> dict[str, Any]:
    """A figure of :mod:`bench.smpp_bench` (``core`` or ``mo``), run apart."""
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "bench.smpp_bench",
            "--baseline",
            kind,
            "--count",
            str(count),
            "--window",
            str(window),
        ],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=ROOT,
        check=False,
    )
    for line in result.stdout.splitlines():
        if line.startswith("JSON "):
            figures: dict[str, Any] = json.loads(line[5:])
            return figures
    raise RuntimeError(
        f"smpp_bench --baseline {kind} failed:\n{result.stdout}\n{result.stderr}"
    )


@contextmanager
def profiled(pid: int, name: str) -> Iterator[None]:
    """Sample ``pid`` with py-spy (100 Hz) while the block runs, if
    ``BENCH_PROFILE`` names a directory: the collapsed stacks go to
    ``<dir>/<name>.txt`` (``py-spy record -f raw``); see
    :mod:`bench.profile_summary`."""
    directory = os.environ.get("BENCH_PROFILE")
    if not directory:
        yield
        return
    os.makedirs(directory, exist_ok=True)
    recorder = subprocess.Popen(
        [
            shutil.which("py-spy")
            or os.path.join(os.path.dirname(sys.executable), "py-spy"),
            "record",
            "-p",
            str(pid),
            "-f",
            "raw",
            "-o",
            os.path.join(directory, f"{name}.txt"),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        yield
    finally:
        recorder.send_signal(signal.SIGINT)
        try:
            recorder.wait(timeout=60)
        except subprocess.TimeoutExpired:
            recorder.kill()
            recorder.wait()


def cpu_seconds(pid: int) -> float:
    """User + system CPU time a process used so far."""
    with open(f"/proc/{pid}/stat", encoding="ascii") as handle:
        fields = handle.read().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def descendants(pid: int) -> list[int]:
    """The live children of ``pid``, their children and so on."""
    found: list[int] = []
    pending = [pid]
    while pending:
        parent = pending.pop()
        with suppress(OSError):
            for task in os.listdir(f"/proc/{parent}/task"):
                with open(
                    f"/proc/{parent}/task/{task}/children", encoding="ascii"
                ) as handle:
                    children = [int(child) for child in handle.read().split()]
                found += children
                pending += children
    return found


def tree_cpu_seconds(pid: int) -> float:
    """CPU time of ``pid`` and of its live descendants (a gateway that runs
    workers counts them too); a process gone meanwhile counts nothing."""
    total = 0.0
    for member in (pid, *descendants(pid)):
        with suppress(OSError):
            total += cpu_seconds(member)
    return total


def _pids_named(name: str) -> list[int]:
    found = subprocess.run(
        ["pgrep", "-x", name], capture_output=True, text=True, check=False
    ).stdout.split()
    return [int(pid) for pid in found]


class CpuMeter:
    """CPU used by named processes between :meth:`start` and :meth:`stop`, in
    % of one core (``200`` is both cores of a 2-core machine).  RabbitMQ and
    Redis are found by name; ``load generator`` is this process and the
    children it waited for (wrk); ``machine`` is every CPU of the machine,
    whoever used it.  Each process counts with its descendants (a gateway's
    workers); :attr:`seconds` keeps the CPU seconds behind each figure,
    :attr:`elapsed` the wall-clock seconds they were used in."""

    def __init__(self, **pids: int) -> None:
        self.pids = dict(pids)
        for name, key in (("beam.smp", "rabbitmq"), ("redis-server", "redis")):
            for pid in _pids_named(name):
                self.pids.setdefault(key, pid)
        self.started: dict[str, float] = {}
        self.wall = 0.0
        self.used: dict[str, float] = {}
        self.seconds: dict[str, float] = {}
        self.elapsed = 0.0

    def start(self) -> CpuMeter:
        self.wall = time.monotonic()
        self.started = {name: self._read(pid) for name, pid in self.pids.items()}
        self.machine = _machine_busy()
        self.driver = _driver_cpu()
        return self

    def stop(self) -> dict[str, float]:
        wall = self.elapsed = time.monotonic() - self.wall
        for name, pid in self.pids.items():
            self.seconds[name] = self._read(pid) - self.started[name]
            self.used[name] = 100 * self.seconds[name] / wall
        self.used["load generator"] = 100 * (_driver_cpu() - self.driver) / wall
        busy, total = _machine_busy()
        self.used["machine"] = (
            100
            * (os.cpu_count() or 1)
            * (busy - self.machine[0])
            / max(1, total - self.machine[1])
        )
        return self.used

    def summary(self) -> str:
        return "cpu% " + ", ".join(
            f"{name} {value:.0f}" for name, value in self.used.items()
        )

    @staticmethod
    def _read(pid: int) -> float:
        return tree_cpu_seconds(pid)


def _driver_cpu() -> float:
    times = os.times()
    return times.user + times.system + times.children_user + times.children_system


def _machine_busy() -> tuple[int, int]:
    """(busy, total) jiffies of all CPUs, from /proc/stat."""
    with open("/proc/stat", encoding="ascii") as handle:
        values = [int(x) for x in handle.readline().split()[1:]]
    idle = values[3] + values[4]
    return sum(values) - idle, sum(values)


def machine_info() -> dict[str, Any]:
    """The machine and the versions a report's figures depend on."""
    import platform
    from importlib.metadata import version

    info: dict[str, Any] = {
        "cpus": os.cpu_count(),
        "platform": platform.platform(),
        "python": platform.python_version(),
    }
    with suppress(OSError), open("/proc/cpuinfo", encoding="utf-8") as handle:
        for line in handle:
            if line.startswith("model name"):
                info["cpu_model"] = line.split(":", 1)[1].strip()
                break
    with suppress(OSError), open("/proc/meminfo", encoding="ascii") as handle:
        for line in handle:
            if line.startswith("MemTotal:"):
                info["ram_gib"] = round(int(line.split()[1]) / 1024 / 1024, 1)
    for package in ("twisted", "klein", "treq", "pika", "txredisapi", "jsonschema"):
        with suppress(Exception):
            info[package] = version(package)
    for name, argv in (
        ("commit", ["git", "-C", ROOT, "rev-parse", "--short", "HEAD"]),
        ("uncommitted", ["git", "-C", ROOT, "status", "--porcelain", "junebug"]),
        ("redis", ["redis-server", "--version"]),
        ("rabbitmq", ["rabbitmqctl", "version"]),
        ("node", ["node", "--version"]),
    ):
        with suppress(Exception):
            info[name] = subprocess.run(
                argv, capture_output=True, text=True, timeout=30, check=False
            ).stdout.strip()
    return info
