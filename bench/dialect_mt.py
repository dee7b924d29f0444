"""(h) the Kannel dialect's MT path beside the Junebug API's, in one ``jb``.

One ``jb`` (real Redis and RabbitMQ) has a ``fake`` (NullTransport) channel
with an ``amqp_queue`` and a send user on it; wrk (2 threads, 16
connections, ``seconds`` each) first POSTs the JSON message to
``/channels/<id>/messages/``, then GETs ``/cgi-bin/sendsms`` with the same
message.  Both paths validate, store the outbound record and publish with a
confirm, so the ratio is what the dialect costs: parsing the query, the
send user's constant-time check, Kannel's answer.
"""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import urlencode

from bench.harness import CpuMeter, jb, peak_rss_mb, run_wrk
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


def scenario_dialect(seconds: int, quick: bool) -> list[dict[str, Any]]:
    """(h) API accept vs Kannel sendsms accept, same jb, same channel."""
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
