"""The benchmark scenarios; each returns rows of figures for the report."""

from __future__ import annotations

import sys
import time
from typing import Any

from bench.harness import (
    Process,
    call,
    free_port,
    jb,
    peak_rss_mb,
    rss_mb,
    run_wrk,
    wait_for,
)

FAKE = ["--channels", "fake:junebug.testing.transports.NullTransport"]
MESSAGE = {"to": "+27820000000", "content": "benchmark message"}


def api_accept(seconds: int, embedded: bool = False) -> list[dict[str, Any]]:
    """(a) POST /channels/<id>/messages/ against a bare Klein handler, same run."""
    port = free_port()
    baseline = Process([sys.executable, "-m", "bench.baseline_klein", str(port)])
    try:
        wait_for(lambda: _listening(port), 30, "baseline start")
        base = run_wrk(f"http://127.0.0.1:{port}/messages/", MESSAGE, seconds)
        base["peak_rss_mb"] = peak_rss_mb(baseline.pid)
    finally:
        baseline.stop()
    with jb(*FAKE, embedded=embedded) as (process, url):
        code, body = call(
            "POST",
            url + "/channels/",
            {"type": "fake", "config": {}, "amqp_queue": "bench-sink"},
        )
        assert code == 201, body
        cid = body["result"]["id"]
        jb_figures = run_wrk(f"{url}/channels/{cid}/messages/", MESSAGE, seconds)
        jb_figures["peak_rss_mb"] = peak_rss_mb(process.pid)
    label = "(f) api accept, embedded" if embedded else "(a) api accept"
    return [
        {"scenario": "bare Klein handler (baseline)", **base, "ratio": 1.0},
        {
            "scenario": label,
            **jb_figures,
            "ratio": jb_figures["msg_per_s"] / base["msg_per_s"],
        },
    ]


def idle_channels(count: int, embedded: bool = False) -> list[dict[str, Any]]:
    """(e) RSS of ``count`` idle telnet channels over an empty jb."""
    with jb(embedded=embedded) as (process, url):
        time.sleep(1.0)
        empty = rss_mb(process.pid)
        started = time.monotonic()
        for _ in range(count):
            code, body = call(
                "POST",
                url + "/channels/",
                {
                    "type": "telnet",
                    "config": {"twisted_endpoint": "tcp:0:interface=127.0.0.1"},
                    "mo_url": "http://127.0.0.1:9/mo",
                },
            )
            assert code == 201, body
        took = time.monotonic() - started
        time.sleep(1.0)
        full = rss_mb(process.pid)
    label = "(f) idle channels, embedded" if embedded else "(e) idle channels"
    return [
        {
            "scenario": f"{label} x{count}",
            "empty_rss_mb": round(empty, 1),
            "rss_mb": round(full, 1),
            "extra_rss_mb": round(full - empty, 1),
            "per_channel_kb": round((full - empty) * 1024 / count, 1),
            "create_per_s": round(count / took, 1),
            "ratio": None,
        }
    ]


def _listening(port: int) -> bool:
    import socket

    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) == 0
