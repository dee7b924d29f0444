"""The benchmark scenarios; each returns rows of figures for the report.

Every scenario starts what it needs (``jb`` on the real Redis and RabbitMQ
with a private key prefix and vhost, or ``--embedded``; the node SMSC; the
HTTP sink of :mod:`bench.sink`), offers load for about ``seconds`` and stops
everything again, whatever happens.  A row has ``scenario``, ``msg_per_s``,
``p50_ms``/``p95_ms``/``p99_ms``, ``peak_rss_mb`` (of the process measured),
``ratio`` (to the row's baseline, measured in the same run) and a ``note``.
"""

from __future__ import annotations

import collections
import json
import os
import statistics
import sys
import time
from collections.abc import Callable, Iterable
from typing import Any

from bench.harness import (
    CpuMeter,
    Process,
    call,
    free_port,
    jb,
    listening,
    node_smsc,
    peak_rss_mb,
    problems,
    profiled,
    rss_mb,
    run_wrk,
    sink,
    smpp_baseline,
    smpp_channel,
    wait_for,
)
from bench.loadgen import Sample, closed_loop, json_body, open_loop

FAKE = ["--channels", "fake:junebug.testing.transports.NullTransport"]
MESSAGE = {"to": "+27820000000", "content": "benchmark message"}
#: Offered load of scenario (d).
LATENCY_RATE = 500
#: Clients of the closed-loop MT load of scenario (b).
MT_CONNECTIONS = int(os.environ.get("BENCH_MT_CONNECTIONS", "16"))
#: After the load: how long to wait for every event or MO at the sink, and
#: how long without any arrival before giving up (retries back off).
DRAIN_TIMEOUT = 240.0
DRAIN_STALL = 90.0


def logged_note(logged: dict[str, Any]) -> str:
    return f"; jb logged {logged['count']} warnings/errors" if logged["count"] else ""


def percentiles(seconds: Iterable[float]) -> dict[str, float | None]:
    """p50/p95/p99 in milliseconds (nearest rank), None when empty."""
    values = sorted(seconds)
    if not values:
        return {"p50_ms": None, "p95_ms": None, "p99_ms": None}

    def rank(p: float) -> float:
        index = min(len(values) - 1, max(0, round(p / 100 * len(values)) - 1))
        return values[index] * 1000

    return {"p50_ms": rank(50), "p95_ms": rank(95), "p99_ms": rank(99)}


def ratio_of(value: float | None, base: float | None) -> float | None:
    return value / base if value and base else None


def _baseline_klein() -> Any:
    port = free_port()
    process = Process([sys.executable, "-m", "bench.baseline_klein", str(port)])
    wait_for(lambda: listening(port), 30, "baseline start")
    return process, f"http://127.0.0.1:{port}/messages/"


# --- (a) and (f): API accept rate --------------------------------------------


def scenario_api(
    seconds: int, quick: bool, embedded: bool = False
) -> list[dict[str, Any]]:
    """(a) POST /channels/<id>/messages/ with wrk, against a bare Klein handler.

    Both get the same wrk load (2 threads, 16 connections, ``seconds``).  The
    channel is a ``fake`` (NullTransport) channel with an ``amqp_queue``, so
    the figure is the API's: validation, the outbound record in Redis and the
    confirmed publish to RabbitMQ.
    """
    process, url = _baseline_klein()
    try:
        meter = CpuMeter(klein=process.pid).start()
        base: dict[str, Any] = dict(run_wrk(url, MESSAGE, seconds))
        meter.stop()
        base["cpu"] = meter.summary()
        base["peak_rss_mb"] = peak_rss_mb(process.pid)
    finally:
        process.stop()
        process.discard()
    with jb(*FAKE, embedded=embedded) as (process, url):
        code, body = call(
            "POST",
            url + "/channels/",
            {"type": "fake", "config": {}, "amqp_queue": "bench-sink"},
        )
        if code != 201:
            raise RuntimeError(f"channel create failed: {code} {body}")
        cid = body["result"]["id"]
        meter = CpuMeter(jb=process.pid).start()
        with profiled(process.pid, "api-embedded" if embedded else "api"):
            figures: dict[str, Any] = dict(
                run_wrk(f"{url}/channels/{cid}/messages/", MESSAGE, seconds)
            )
        meter.stop()
        figures["cpu"] = meter.summary()
        figures["peak_rss_mb"] = peak_rss_mb(process.pid)
    label = "(f) api accept, embedded" if embedded else "(a) api accept"
    rows: list[dict[str, Any]] = [
        {
            "scenario": f"{label}: bare Klein handler (baseline)",
            **base,
            "ratio": 1.0,
            "note": _wrk_note(base),
        },
        {
            "scenario": label,
            **figures,
            "ratio": ratio_of(figures["msg_per_s"], base["msg_per_s"]),
            "note": _wrk_note(figures),
        },
    ]
    return rows


def _wrk_note(figures: dict[str, Any]) -> str:
    note = "wrk -t2 -c16"
    if figures.get("errors") or figures.get("non2xx"):
        note += f"; {figures['errors']} socket errors, {figures['non2xx']} non-2xx"
    return note


# --- (b): end-to-end MT through SMPP --------------------------------------------


def mt_body(sink_url: str, prioritised: bool = False) -> Callable[[int], bytes]:
    """The MT body of the SMPP scenarios (``{n}`` numbers each request);
    ``prioritised``: request ``n`` has priority ``n % 5 + 1``."""
    template = {
        "to": "27820001111",
        "from": "1234",
        "content": "bench MT {n}",
        "event_url": sink_url + "/event",
    }
    if not prioritised:
        return json_body(template)

    def make(n: int) -> bytes:
        body = {**template, "content": f"bench MT {n}", "priority": n % 5 + 1}
        return json.dumps(body).encode()

    return make


def scenario_smpp(
    seconds: int, quick: bool, embedded: bool = False, prioritised: bool = False
) -> list[dict[str, Any]]:
    """(b) MT end to end: POST with event_url -> SMPP -> submitted + DLR events.

    ``MT_CONNECTIONS`` clients POST to an smpp channel (window 10) bound to the
    node SMSC in ``dlr`` mode for ``seconds``; then the run waits until every
    accepted message has both its ``submitted`` and ``delivery_succeeded``
    event at the sink.  msg/s = messages with both events / (first POST to
    last event); latency = 201 at the client to ``delivery_succeeded`` at the
    sink.  Baseline: the protocol core alone (SmppSession, window 10, no
    gateway), ``submit_sm``/s against the same SMSC.
    """
    base = smpp_baseline("core", 5000 if quick else 20000, window=10)
    label = "(f) MT end to end, embedded" if embedded else "(b) MT end to end"
    if prioritised:
        label += ", priorities 1-5"
    with (
        sink() as http_sink,
        node_smsc("dlr") as smsc,
        jb(embedded=embedded) as (process, url),
    ):
        cid = smpp_channel(url, smsc, http_sink.url + "/mo", window=10)
        body = mt_body(http_sink.url, prioritised)
        meter = CpuMeter(
            jb=process.pid, sink=http_sink.process.pid, smsc=smsc.process.pid
        ).start()
        with profiled(
            process.pid,
            ("smpp-embedded" if embedded else "smpp")
            + ("-priorities" if prioritised else ""),
        ):
            samples = closed_loop(
                f"{url}/channels/{cid}/messages/", body, seconds, MT_CONNECTIONS
            )
            accepted = {s.message_id: s for s in samples if s.message_id}
            count = len(accepted)

            def all_events(stats: dict[str, Any]) -> bool:
                types: dict[str, int] = stats["event_types"]
                return (
                    types.get("submitted", 0) >= count
                    and types.get("delivery_succeeded", 0) >= count
                )

            http_sink.wait(all_events, timeout=DRAIN_TIMEOUT, stall=DRAIN_STALL)
        meter.stop()
        peak = peak_rss_mb(process.pid)
        dump = http_sink.dump()
        logged = problems(process)
    events = dump["events"]
    complete = [
        (sample, events[mid])
        for mid, sample in accepted.items()
        if mid in events and {"submitted", "delivery_succeeded"} <= events[mid].keys()
    ]
    started = min(s.sent for s in samples)
    ended = max((max(e.values()) for _, e in complete), default=started)
    rate = len(complete) / (ended - started) if ended > started else 0.0
    latencies = [
        e["delivery_succeeded"] - s.answered for s, e in complete if s.answered
    ]
    missing = count - len(complete)
    failed = request_errors(samples)
    note = (
        f"{count} accepted ({count / seconds:,.0f}/s over {seconds}s, "
        f"{MT_CONNECTIONS} clients), drained in {ended - started:.1f}s; "
        f"{missing} without both events; failed POSTs: {failed}; "
        f"{dump['event_repeats']} repeated events{logged_note(logged)}"
    )
    return [
        {
            "scenario": "(b) baseline: protocol core submit_sm, window 10",
            "msg_per_s": base["msg_per_s"],
            "peak_rss_mb": base["peak_rss_mb"],
            "ratio": 1.0,
            "note": f"SmppSession alone, {base['count']} submit_sm, node SMSC",
        },
        {
            "scenario": label,
            "msg_per_s": rate,
            **percentiles(latencies),
            "peak_rss_mb": peak,
            "ratio": ratio_of(rate, base["msg_per_s"]),
            "accepted_per_s": count / seconds,
            "all_events": missing == 0,
            "note": note,
            "cpu": meter.summary(),
            **cpu_per_1k(meter, len(complete)),
            "jb_problems": logged,
        },
    ]


def cpu_per_1k(meter: CpuMeter, messages: int) -> dict[str, float | None]:
    """CPU seconds per 1000 messages: of jb alone, and of jb + Redis +
    RabbitMQ (what the gateway costs the machine)."""
    thousands = messages / 1000
    if not thousands:
        return {"cpu_s_per_1k": None, "cpu_s_per_1k_all": None}
    own = meter.seconds.get("jb", 0.0)
    shared = sum(meter.seconds.get(name, 0.0) for name in ("redis", "rabbitmq"))
    return {
        "cpu_s_per_1k": own / thousands,
        "cpu_s_per_1k_all": (own + shared) / thousands,
    }


def scenario_priorities(seconds: int, quick: bool) -> list[dict[str, Any]]:
    """(b) twice, back to back: every MT priority 1, then priorities 1 to 5 in
    turn (five queues consumed, a fate claim per message as always).  The
    ratio is the plain run's CPU per message over the prioritised run's."""
    plain = scenario_smpp(seconds, quick)[1]
    mixed = scenario_smpp(seconds, quick, prioritised=True)[1]
    mixed["ratio"] = ratio_of(plain.get("cpu_s_per_1k"), mixed.get("cpu_s_per_1k"))
    mixed["note"] = (
        f"CPU/1k msgs jb {mixed.get('cpu_s_per_1k') or 0:.2f}s vs "
        f"{plain.get('cpu_s_per_1k') or 0:.2f}s at priority 1; " + mixed["note"]
    )
    return [plain, mixed]


# --- (c): MO from the SMSC to mo_url ------------------------------------------


def scenario_mo(seconds: int, quick: bool) -> list[dict[str, Any]]:
    """(c) MO: the node SMSC floods ``deliver_sm`` (50 unanswered at most).

    jb's smpp channel posts each to ``mo_url`` (the sink).  msg/s is at the
    sink, first MO to last; latency is the SMSC's send to the sink's arrival.
    Baseline: the same flood into a bare SmppSession that only answers
    ``deliver_sm_resp`` (the protocol core, no gateway).
    """
    count = 2000 if quick else 1000 * seconds
    base = smpp_baseline("mo", count)
    with (
        sink() as http_sink,
        node_smsc("ack-only", env={"MO_COUNT": str(count)}) as smsc,
        jb() as (process, url),
    ):
        meter = CpuMeter(
            jb=process.pid, sink=http_sink.process.pid, smsc=smsc.process.pid
        )
        with profiled(process.pid, "mo"):
            smpp_channel(url, smsc, http_sink.url + "/mo", window=10)
            meter.start()
            stats = http_sink.wait(
                lambda st: st["mo_unique"] >= count,
                timeout=DRAIN_TIMEOUT,
                stall=DRAIN_STALL,
            )
            meter.stop()
        peak = peak_rss_mb(process.pid)
        done = smsc.line("MO_DONE ")
        latencies = http_sink.dump()["mo_latencies"]
        logged = problems(process)
    first, last = stats["mo_first"], stats["mo_last"]
    received = stats["mo_unique"]
    rate = (received - 1) / (last - first) if received > 1 and last > first else 0.0
    if done:
        smsc_report = json.loads(done[len("MO_DONE ") :])
        sent = (
            f"SMSC had all {smsc_report['ok']} answered in "
            f"{smsc_report['elapsed_s']:.1f}s, {smsc_report['refused']} refused"
        )
    else:
        sent = "SMSC did not finish"
    note = (
        f"{received} of {count} MO at mo_url ({stats['mo_posts']} posts); "
        f"{sent}{logged_note(logged)}"
    )
    return [
        {
            "scenario": "(c) baseline: bare SMPP session answering deliver_sm",
            "msg_per_s": base["msg_per_s"],
            "peak_rss_mb": base["peak_rss_mb"],
            "ratio": 1.0,
            "note": f"SmppSession alone, {base['count']} deliver_sm, node SMSC",
        },
        {
            "scenario": "(c) MO to mo_url",
            "msg_per_s": rate,
            **percentiles(latencies),
            "peak_rss_mb": peak,
            "ratio": ratio_of(rate, base["msg_per_s"]),
            "all_events": received == count,
            "note": note,
            "cpu": meter.summary(),
            "jb_problems": logged,
        },
    ]


# --- (d): latency at a fixed offered load -------------------------------------


def request_errors(samples: list[Sample]) -> str:
    """The failed requests, counted by kind: ``3 x HTTP 503, 1 x OSError``."""
    kinds: collections.Counter[str] = collections.Counter()
    for sample in samples:
        if sample.status is not None and 200 <= sample.status < 300:
            continue
        if sample.status is not None:
            kinds[f"HTTP {sample.status}"] += 1
        else:
            kinds[(sample.error or "no answer").split(":")[0]] += 1
    return ", ".join(f"{n} x {kind}" for kind, n in kinds.most_common()) or "none"


def answered_samples(samples: list[Sample]) -> list[Sample]:
    return [s for s in samples if s.status is not None and 200 <= s.status < 300]


def _achieved(samples: list[Sample]) -> float:
    done = answered_samples(samples)
    if len(done) < 2:
        return 0.0
    span = max(s.answered or 0.0 for s in done) - min(s.sent for s in samples)
    return len(done) / span if span > 0 else 0.0


def scenario_latency(seconds: int, quick: bool) -> list[dict[str, Any]]:
    """(d) Open-loop ``LATENCY_RATE`` msg/s for ``seconds``: latency.

    POST -> 201 and POST -> ``submitted`` event at the sink, for an smpp
    channel (window 10) on the node SMSC in ``ack-only`` mode (so the only
    events are ``submitted``).  Latency counts from each request's scheduled
    time.  Baseline: the bare Klein handler at the same offered rate.
    """
    rate = LATENCY_RATE
    process, url = _baseline_klein()
    try:
        meter = CpuMeter(klein=process.pid).start()
        base_samples = open_loop(url, json_body(MESSAGE), rate, seconds)
        meter.stop()
        base_cpu = meter.summary()
        base_peak = peak_rss_mb(process.pid)
    finally:
        process.stop()
        process.discard()
    base_latency = [s.latency for s in answered_samples(base_samples) if s.latency]
    base_figures = percentiles(base_latency)
    with (
        sink() as http_sink,
        node_smsc("ack-only") as smsc,
        jb() as (process, url),
    ):
        cid = smpp_channel(url, smsc, http_sink.url + "/mo", window=10)
        body = mt_body(http_sink.url)
        # One client, one request at a time: the floor under any load.
        single = closed_loop(
            f"{url}/channels/{cid}/messages/", body, min(3, seconds), 1
        )
        meter = CpuMeter(
            jb=process.pid, sink=http_sink.process.pid, smsc=smsc.process.pid
        ).start()
        with profiled(process.pid, "latency"):
            samples = open_loop(f"{url}/channels/{cid}/messages/", body, rate, seconds)
            accepted = {s.message_id: s for s in samples if s.message_id}
            # The sink counts the submitted events of the single-client phase too.
            expected = len(accepted) + sum(1 for s in single if s.message_id)
            http_sink.wait(
                lambda st: st["event_types"].get("submitted", 0) >= expected,
                timeout=DRAIN_TIMEOUT,
                stall=DRAIN_STALL,
            )
        meter.stop()
        peak = peak_rss_mb(process.pid)
        events = http_sink.dump()["events"]
        logged = problems(process)
    api_latency = [s.latency for s in answered_samples(samples) if s.latency]
    arrivals = {
        mid: events[mid]["submitted"]
        for mid in accepted
        if "submitted" in events.get(mid, {})
    }
    submitted = [arrivals[mid] - accepted[mid].sent for mid in arrivals]
    first_sent = min(s.sent for s in samples)
    last_event = max(arrivals.values(), default=first_sent)
    submitted_rate = (
        len(arrivals) / (last_event - first_sent) if last_event > first_sent else 0.0
    )
    failed = request_errors(samples)
    api = percentiles(api_latency)
    offered = f"{rate}/s offered for {seconds}s, open loop"
    return [
        {
            "scenario": f"(d) baseline: bare Klein POST->response @{rate}/s",
            "msg_per_s": _achieved(base_samples),
            **base_figures,
            "peak_rss_mb": base_peak,
            "ratio": 1.0,
            "note": offered,
            "cpu": base_cpu,
        },
        {
            "scenario": "(d) latency POST->201, one client, sequential",
            "msg_per_s": _achieved(single),
            **percentiles(s.latency for s in answered_samples(single) if s.latency),
            "peak_rss_mb": None,
            "ratio": None,
            "note": f"closed loop, 1 connection, {min(3, seconds)}s; failed: "
            f"{request_errors(single)}",
        },
        {
            "scenario": f"(d) latency POST->201 @{rate}/s",
            "msg_per_s": _achieved(samples),
            **api,
            "peak_rss_mb": peak,
            "ratio": ratio_of(base_figures["p99_ms"], api["p99_ms"]),
            "note": f"{offered}; failed: {failed}; ratio = baseline p99 / p99",
            "cpu": meter.summary(),
        },
        {
            "scenario": f"(d) latency POST->submitted event @{rate}/s",
            "msg_per_s": submitted_rate,
            **percentiles(submitted),
            "peak_rss_mb": peak,
            "ratio": ratio_of(base_figures["p99_ms"], percentiles(submitted)["p99_ms"]),
            "all_events": len(submitted) == len(accepted),
            "note": (
                f"{len(submitted)} of {len(accepted)} submitted events arrived; "
                f"msg/s = events / (first POST to last event){logged_note(logged)}"
            ),
            "jb_problems": logged,
        },
    ]


# --- (e) and (f): idle channels -----------------------------------------------


def _settled_rss(pid: int, timeout: float = 10.0) -> float:
    """RSS once it stops moving (two readings 0.5 s apart within 0.25 MiB)."""
    previous = rss_mb(pid)
    deadline = time.monotonic() + timeout
    readings = [previous]
    while time.monotonic() < deadline:
        time.sleep(0.5)
        current = rss_mb(pid)
        readings.append(current)
        if abs(current - previous) < 0.25:
            return current
        previous = current
    return statistics.median(readings[-3:])


def _create_channel(url: str, body: dict[str, Any], attempts: int = 3) -> str:
    last: Any = None
    for _ in range(attempts):
        code, answer = call("POST", url + "/channels/", body)
        if code == 201:
            channel_id: str = answer["result"]["id"]
            return channel_id
        last = (code, answer)
        time.sleep(0.5)
    raise RuntimeError(f"channel create failed {attempts} times: {last}")


def scenario_channels(
    seconds: int, quick: bool, embedded: bool = False
) -> list[dict[str, Any]]:
    """(e) RSS of N idle telnet channels over an empty jb (N = 100, 20 quick).

    Each channel listens on its own port and has its consumers on the broker,
    as any channel has.  RSS is read once it has settled, before and after.
    """
    count = 20 if quick else 100
    with jb(embedded=embedded) as (process, url):
        empty = _settled_rss(process.pid)
        started = time.monotonic()
        ids = [
            _create_channel(
                url,
                {
                    "type": "telnet",
                    "config": {"twisted_endpoint": "tcp:0:interface=127.0.0.1"},
                    "mo_url": "http://127.0.0.1:9/mo",
                },
            )
            for _ in range(count)
        ]
        took = time.monotonic() - started
        full = _settled_rss(process.pid)
        code, listed = call("GET", url + "/channels/")
        running = len(listed["result"]) if code == 200 else None
        peak = peak_rss_mb(process.pid)
    label = "(f) idle channels, embedded" if embedded else "(e) idle channels"
    return [
        {
            "scenario": f"{label} x{count}",
            "peak_rss_mb": peak,
            "empty_rss_mb": round(empty, 1),
            "rss_mb": round(full, 1),
            "extra_rss_mb": round(full - empty, 1),
            "per_channel_kb": round((full - empty) * 1024 / count, 1),
            "create_per_s": round(count / took, 1),
            "ratio": None,
            "note": (
                f"{len(ids)} created ({count / took:,.0f}/s), {running} listed; "
                f"{(full - empty) * 1024 / count:,.0f} KiB each"
            ),
        }
    ]


def scenario_embedded(seconds: int, quick: bool) -> list[dict[str, Any]]:
    """(f) (a), (b) and (e) again with ``--embedded`` (in-memory store and broker)."""
    return [
        *scenario_api(seconds, quick, embedded=True),
        *scenario_smpp(seconds, quick, embedded=True)[1:],
        *scenario_channels(seconds, quick, embedded=True),
    ]


__all__ = [
    "percentiles",
    "scenario_api",
    "scenario_channels",
    "scenario_embedded",
    "scenario_latency",
    "scenario_mo",
    "scenario_smpp",
]
