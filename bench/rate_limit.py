"""``python -m bench ratelimit``: what a rate-limited channel costs per message.

One ``jb`` on the real Redis and RabbitMQ, the node SMSC in ``dlr`` mode and
the sink; three smpp channels, one after the other, each loaded the same way
(``MT_CONNECTIONS`` clients POSTing for ``seconds``, then every accepted
message's ``submitted`` and ``delivery_succeeded`` events awaited):

- no rate limit (the baseline of the ratios);
- a limit never reached (1,000,000 per second): every ``submit_sm`` still
  spends its unit in Redis, so this is the limiter's own cost;
- a limit that holds messages back (:data:`HELD_RATE` per second): they
  wait unacknowledged in RabbitMQ and drain at the limit.

CPU is read from ``/proc`` for jb (and its children) and for Redis, over the
load and the drain; per message is CPU seconds / messages with both events.
The rows' ``ratio`` is jb's CPU per message against the unlimited channel's.
"""

from __future__ import annotations

import os
from typing import Any

from bench.harness import CpuMeter, jb, node_smsc, problems, sink, smpp_channel
from bench.loadgen import closed_loop
from bench.scenarios import (
    DRAIN_STALL,
    DRAIN_TIMEOUT,
    MT_CONNECTIONS,
    logged_note,
    mt_body,
    ratio_of,
    request_errors,
)

#: The limit of the held-back variant (messages per second).
HELD_RATE = int(os.environ.get("BENCH_RATE_LIMIT", "200"))

VARIANTS: tuple[tuple[str, dict[str, Any]], ...] = (
    ("(g) MT, no rate limit", {}),
    (
        "(g) MT, rate limit never reached",
        {"rate_limit_count": 1_000_000, "rate_limit_window": 1},
    ),
    (
        f"(g) MT, held back at {HELD_RATE}/s",
        {"rate_limit_count": HELD_RATE, "rate_limit_window": 1},
    ),
)


def scenario_ratelimit(seconds: int, quick: bool) -> list[dict[str, Any]]:
    """The three variants of the module doc, back to back on one jb."""
    rows: list[dict[str, Any]] = []
    load = max(2, seconds // 2) if quick else seconds
    with sink() as http_sink, node_smsc("dlr") as smsc, jb() as (process, url):
        for label, properties in VARIANTS:
            http_sink.reset()
            cid = smpp_channel(
                url, smsc, http_sink.url + "/mo", window=10, properties=properties
            )
            meter = CpuMeter(jb=process.pid).start()
            samples = closed_loop(
                f"{url}/channels/{cid}/messages/",
                mt_body(http_sink.url),
                load,
                MT_CONNECTIONS,
            )
            accepted = {s.message_id for s in samples if s.message_id}

            def all_events(stats: dict[str, Any], count: int = len(accepted)) -> bool:
                types: dict[str, int] = stats["event_types"]
                return (
                    types.get("submitted", 0) >= count
                    and types.get("delivery_succeeded", 0) >= count
                )

            http_sink.wait(all_events, timeout=DRAIN_TIMEOUT, stall=DRAIN_STALL)
            meter.stop()
            events = http_sink.dump()["events"]
            done = [
                mid
                for mid in accepted
                if {"submitted", "delivery_succeeded"} <= events.get(mid, {}).keys()
            ]
            started = min(s.sent for s in samples)
            ended = max((max(events[mid].values()) for mid in done), default=started)
            jb_s = meter.seconds["jb"]
            redis_s = meter.seconds.get("redis", 0.0)
            per_msg_ms = 1000 * jb_s / len(done) if done else None
            rows.append(
                {
                    "scenario": label,
                    "msg_per_s": len(done) / (ended - started)
                    if ended > started
                    else 0.0,
                    "cpu_ms_per_msg": per_msg_ms,
                    "redis_cpu_ms_per_msg": 1000 * redis_s / len(done)
                    if done
                    else None,
                    "all_events": len(done) == len(accepted),
                    "note": (
                        f"{len(accepted)} accepted over {load}s, {len(done)} with"
                        f" both events, drained in {ended - started:.1f}s; jb"
                        f" {jb_s:.1f} CPU s, redis {redis_s:.1f} CPU s; failed"
                        f" POSTs: {request_errors(samples)}"
                    ),
                    "cpu": meter.summary(),
                }
            )
        logged = problems(process)
    base = rows[0]["cpu_ms_per_msg"]
    for row in rows:
        row["ratio"] = ratio_of(row["cpu_ms_per_msg"], base)
    rows[-1]["note"] += logged_note(logged)
    return rows
