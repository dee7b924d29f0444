"""(h) the Kannel dialect's MT path beside the Junebug API's.

Accept: one ``jb`` (real Redis and RabbitMQ) has a ``fake`` (NullTransport)
channel with an ``amqp_queue`` and a send user on it; wrk (2 threads, 16
connections, ``seconds`` each) first POSTs the JSON message to
``/channels/<id>/messages/``, then GETs ``/cgi-bin/sendsms`` with the same
message.  Both paths validate, store the outbound record and publish with a
confirm, so the ratio is what the dialect costs: parsing the query, the
send user's constant-time check, Kannel's answer.

End to end: the (k) scenario's MT run (:mod:`bench.kannel_compare`: closed
loop, then every report at the sink; the node SMSC in ``dlr`` mode) against
Junebug's API with an ``event_url``, then against Junebug's ``sendsms`` with
the very query the (k) run sends real Kannel (``dlr-mask=31``, a ``dlr-url``
at the sink's ``/kannel/dlr``).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any
from urllib.parse import urlencode

from bench import kannel
from bench.harness import (
    CpuMeter,
    Sink,
    jb,
    node_smsc,
    peak_rss_mb,
    problems,
    run_wrk,
    wait_for,
)
from bench.kannel_compare import Gateway, _junebug_mt, _kannel_id, _mt
from bench.scenarios import FAKE, MESSAGE, ratio_of

CHANNEL = {
    "id": "bench-dialect",
    "type": "fake",
    "config": {},
    "amqp_queue": "bench-sink",
}
USER = {"username": "bench", "password": "bench-pass", "channel_id": CHANNEL["id"]}


def _note(figures: dict[str, Any], what: str) -> str:
    note = f"{what}; wrk -t2 -c16"
    if figures.get("errors") or figures.get("non2xx"):
        note += f"; {figures['errors']} socket errors, {figures['non2xx']} non-2xx"
    return note


@contextmanager
def _sendsms_mt(http_sink: Sink) -> Iterator[Gateway]:
    """jb with an smpp channel (window 10) on the node SMSC and the (k)
    run's Kannel user on it; MT through ``/cgi-bin/sendsms``."""
    with node_smsc("dlr") as smsc:
        channel = {
            "id": "bench-sendsms",
            "type": "smpp",
            "mo_url": http_sink.url + "/mo",
            "config": {
                "twisted_endpoint": smsc.endpoint,
                "system_id": "esme1",
                "password": "secret",
                "window_size": 10,
            },
        }
        user = {
            "username": kannel.USER,
            "password": kannel.PASSWORD,
            "channel_id": channel["id"],
        }
        args = ["--startup-channels", json.dumps(channel)]
        args += ["--send-users", json.dumps(user)]
        with jb(*args) as (process, url):
            wait_for(smsc.bound, 30, "SMPP bind")
            yield Gateway(
                name="Junebug sendsms",
                url=f"{url}/cgi-bin/sendsms",
                body=kannel.sendsms_query(http_sink.url),
                method="GET",
                pids={"jb": process.pid},
                message_id=_kannel_id,
                problems=lambda: problems(process),
            )


def _end_to_end(seconds: int) -> list[dict[str, Any]]:
    api, _ = _mt(_junebug_mt, seconds)
    sendsms, _ = _mt(_sendsms_mt, seconds)
    rows = []
    for label, figures in (
        ("Junebug API (baseline)", api),
        ("Kannel sendsms", sendsms),
    ):
        rows.append(
            {
                "scenario": f"(h) MT end to end: {label}",
                "msg_per_s": figures["msg_per_s"],
                "p50_ms": figures.get("p50_ms"),
                "p95_ms": figures.get("p95_ms"),
                "p99_ms": figures.get("p99_ms"),
                "peak_rss_mb": figures.get("peak_rss_mb"),
                "cpu_s_per_1k": figures.get("cpu_s_per_1k"),
                "all_events": figures["complete"] == figures["accepted"],
                "note": (
                    f"{figures['accepted']} accepted, {figures['complete']} with "
                    f"both reports, drained in {figures['drained_s']:.1f}s; "
                    f"failed requests: {figures['failed']}"
                ),
                "cpu": figures["cpu"],
            }
        )
    rows[0]["ratio"] = 1.0
    rows[1]["ratio"] = ratio_of(sendsms["msg_per_s"], api["msg_per_s"])
    return rows


def scenario_dialect(seconds: int, quick: bool) -> list[dict[str, Any]]:
    """(h) API vs Kannel sendsms: accept (same jb, same channel), then end
    to end through SMPP with every report."""
    return [*_accept(seconds), *_end_to_end(seconds)]


def _accept(seconds: int) -> list[dict[str, Any]]:
    """API accept vs Kannel sendsms accept, same jb, same channel."""
    args = [
        *FAKE,
        "--startup-channels",
        json.dumps(CHANNEL),
        "--send-users",
        json.dumps(USER),
    ]
    query = urlencode(
        {
            "username": USER["username"],
            "password": USER["password"],
            "to": MESSAGE["to"],
            "text": MESSAGE["content"],
        }
    )
    with jb(*args) as (process, url):
        api_url = f"{url}/channels/{CHANNEL['id']}/messages/"
        meter = CpuMeter(jb=process.pid).start()
        api: dict[str, Any] = dict(run_wrk(api_url, MESSAGE, seconds))
        meter.stop()
        api["cpu"] = meter.summary()
        meter = CpuMeter(jb=process.pid).start()
        kannel: dict[str, Any] = dict(
            run_wrk(f"{url}/cgi-bin/sendsms?{query}", None, seconds, method="GET")
        )
        meter.stop()
        kannel["cpu"] = meter.summary()
        peak = peak_rss_mb(process.pid)
    return [
        {
            "scenario": "(h) MT accept: Junebug API (baseline)",
            **api,
            "peak_rss_mb": peak,
            "ratio": 1.0,
            "note": _note(api, "POST /channels/<id>/messages/"),
        },
        {
            "scenario": "(h) MT accept: Kannel sendsms",
            **kannel,
            "peak_rss_mb": peak,
            "ratio": ratio_of(kannel["msg_per_s"], api["msg_per_s"]),
            "note": _note(kannel, "GET /cgi-bin/sendsms, 202 expected"),
        },
    ]
