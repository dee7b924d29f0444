"""(k) ``python -m bench kannel``: Junebug against Kannel, in the same run.

Both gateways meet the same node SMSC peer (``junebug/tests/support/peers``), the
same HTTP sink (:mod:`bench.sink`) and the same load generator
(:mod:`bench.loadgen`); Kannel is Debian's, configured by
:mod:`bench.kannel`.  Junebug runs as in (b) and (c): ``jb`` on the real
Redis and RabbitMQ with one smpp channel (window 10).  Four figures, each
printed for both with the ratio (Kannel is the baseline):

- **MT end to end**: ``MT_CONNECTIONS`` clients send MT for ``seconds``
  (Junebug: POST with an ``event_url``; Kannel: ``sendsms`` with
  ``dlr-mask=31`` and a ``dlr-url``), the SMSC in ``dlr`` mode; msg/s is MT
  with both the SMSC's ack (``submitted``, Kannel's type 8) and the final
  report (``delivery_succeeded``, type 1) at the sink, over first request to
  last report; latency is the accepting answer to the final report.
- **MO flood**: the SMSC sends ``MO_COUNT`` ``deliver_sm`` (50 unanswered at
  most) once the gateway has bound; msg/s at the sink, first MO to last.
- **Request to final report at** ``LATENCY_RATE`` **msg/s offered** (open
  loop, from each request's scheduled time): p50/p95/p99.
- **CPU per 1,000 MT** during the MT run, read from ``/proc``: Kannel's
  bearerbox + smsbox; ``jb``; and ``jb`` + Redis + RabbitMQ.  Redis and
  RabbitMQ serve the whole machine, so what they used in 3 idle seconds just
  before the load is taken off, at the same rate, as other users' share.

Ratios follow the bench's rule: 1.0 is as good as the baseline, less is
worse (msg/s: Junebug / Kannel; latency and CPU: Kannel / Junebug).
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import attrs

from bench.harness import (
    CpuMeter,
    Sink,
    free_port,
    jb,
    node_smsc,
    peak_rss_mb,
    problems,
    sink,
    smpp_channel,
)
from bench.kannel import kannel, sendsms_query
from bench.loadgen import Sample, closed_loop, open_loop
from bench.scenarios import (
    DRAIN_STALL,
    DRAIN_TIMEOUT,
    LATENCY_RATE,
    MT_CONNECTIONS,
    logged_note,
    mt_body,
    percentiles,
    ratio_of,
    request_errors,
)

#: The event types of an MT that went all the way.
MT_DONE = ("submitted", "delivery_succeeded")
#: Seconds of idle CPU reading before the MT load (Redis, RabbitMQ).
IDLE_SECONDS = 3.0


@attrs.frozen
class Gateway:
    """One gateway under test: where MT goes and how to read its answers."""

    name: str
    url: str
    body: Callable[[int], bytes]
    method: str
    #: The gateway's own processes, for CPU and RSS.
    pids: dict[str, int]
    #: The message id an accepted request's reports carry (None: refused).
    message_id: Callable[[Sample], str | None]
    problems: Callable[[], dict[str, Any]] = lambda: {"count": 0, "first": []}

    def peak_rss_mb(self) -> float:
        return sum(peak_rss_mb(pid) for pid in self.pids.values())


def _junebug_id(sample: Sample) -> str | None:
    return sample.message_id


def _kannel_id(sample: Sample) -> str | None:
    ok = sample.status is not None and 200 <= sample.status < 300
    return str(sample.number) if ok else None


@contextmanager
def _junebug_mt(http_sink: Sink) -> Iterator[Gateway]:
    # BENCH_WORKERS=N runs ``jb --workers N`` (its CPU counts every worker).
    workers = os.environ.get("BENCH_WORKERS", "1")
    with node_smsc("dlr") as smsc, jb("--workers", workers) as (process, url):
        cid = smpp_channel(url, smsc, http_sink.url + "/mo", window=10)
        yield Gateway(
            name="Junebug",
            url=f"{url}/channels/{cid}/messages/",
            body=mt_body(http_sink.url),
            method="POST",
            pids={"jb": process.pid},
            message_id=_junebug_id,
            problems=lambda: problems(process),
        )


@contextmanager
def _kannel_mt(http_sink: Sink) -> Iterator[Gateway]:
    with node_smsc("dlr") as smsc, kannel(http_sink.url, smsc) as running:
        yield Gateway(
            name="Kannel",
            url=running.sendsms_url,
            body=sendsms_query(http_sink.url),
            method="GET",
            pids={
                "bearerbox": running.bearerbox.pid,
                "smsbox": running.smsbox.pid,
            },
            message_id=_kannel_id,
        )


def _completed(
    gateway: Gateway, samples: list[Sample], events: dict[str, dict[str, float]]
) -> list[tuple[Sample, dict[str, float]]]:
    done = []
    for sample in samples:
        mid = gateway.message_id(sample)
        if mid is not None and set(MT_DONE) <= events.get(mid, {}).keys():
            done.append((sample, events[mid]))
    return done


def _drain(http_sink: Sink, count: int) -> None:
    def all_reports(stats: dict[str, Any]) -> bool:
        types: dict[str, int] = stats["event_types"]
        return all(types.get(kind, 0) >= count for kind in MT_DONE)

    http_sink.wait(all_reports, timeout=DRAIN_TIMEOUT, stall=DRAIN_STALL)


def _mt_throughput(gateway: Gateway, http_sink: Sink, seconds: int) -> dict[str, Any]:
    """Closed-loop MT for ``seconds``, then every report: msg/s, latency, CPU."""
    http_sink.reset()
    idle = CpuMeter(**gateway.pids).start()
    time.sleep(IDLE_SECONDS)
    idle.stop()
    meter = CpuMeter(**gateway.pids).start()
    samples = closed_loop(
        gateway.url, gateway.body, seconds, MT_CONNECTIONS, method=gateway.method
    )
    accepted = [s for s in samples if gateway.message_id(s) is not None]
    _drain(http_sink, len(accepted))
    meter.stop()
    done = _completed(gateway, accepted, http_sink.dump()["events"])
    started = min(s.sent for s in samples)
    ended = max((max(e.values()) for _, e in done), default=started)
    own = sum(meter.seconds[name] for name in gateway.pids)
    shared = {
        name: max(0.0, meter.seconds[name] - idle.used[name] / 100 * meter.elapsed)
        for name in ("redis", "rabbitmq")
        if name in meter.seconds and gateway.name == "Junebug"
    }
    thousands = len(done) / 1000
    return {
        "msg_per_s": len(done) / (ended - started) if ended > started else 0.0,
        **percentiles(
            e["delivery_succeeded"] - s.answered for s, e in done if s.answered
        ),
        "accepted": len(accepted),
        "complete": len(done),
        "accepted_per_s": len(accepted) / seconds,
        "drained_s": ended - started,
        "failed": request_errors(samples),
        "cpu": meter.summary(),
        "idle_cpu": idle.summary(),
        "cpu_s": own,
        "shared_cpu_s": shared,
        "cpu_s_per_1k": own / thousands if thousands else None,
        "cpu_s_per_1k_all": (own + sum(shared.values())) / thousands
        if thousands
        else None,
    }


def _mt_latency(gateway: Gateway, http_sink: Sink, seconds: int) -> dict[str, Any]:
    """Open-loop MT at ``LATENCY_RATE``: scheduled request to final report."""
    http_sink.reset()
    samples = open_loop(
        gateway.url, gateway.body, LATENCY_RATE, seconds, method=gateway.method
    )
    accepted = [s for s in samples if gateway.message_id(s) is not None]
    _drain(http_sink, len(accepted))
    done = _completed(gateway, accepted, http_sink.dump()["events"])
    first = min(s.sent for s in samples)
    last = max((e["delivery_succeeded"] for _, e in done), default=first)
    return {
        "msg_per_s": len(done) / (last - first) if last > first else 0.0,
        **percentiles(e["delivery_succeeded"] - s.sent for s, e in done),
        "accepted": len(accepted),
        "complete": len(done),
        "failed": request_errors(samples),
    }


def _mt(
    open_gateway: Callable[[Sink], Any], seconds: int
) -> tuple[dict[str, Any], dict[str, Any]]:
    with sink() as http_sink, open_gateway(http_sink) as gateway:
        throughput = _mt_throughput(gateway, http_sink, seconds)
        throughput["peak_rss_mb"] = gateway.peak_rss_mb()
        latency = _mt_latency(gateway, http_sink, seconds)
        logged = gateway.problems()
        throughput["problems"] = latency["problems"] = logged
    return throughput, latency


def _mo_figures(http_sink: Sink, count: int) -> dict[str, Any]:
    stats = http_sink.wait(
        lambda st: st["mo_unique"] >= count, timeout=DRAIN_TIMEOUT, stall=DRAIN_STALL
    )
    first, last, received = stats["mo_first"], stats["mo_last"], stats["mo_unique"]
    return {
        "msg_per_s": (received - 1) / (last - first)
        if received > 1 and last > first
        else 0.0,
        **percentiles(http_sink.dump()["mo_latencies"]),
        "received": received,
        "count": count,
    }


def _junebug_mo(count: int) -> dict[str, Any]:
    with (
        sink() as http_sink,
        node_smsc("ack-only", env={"MO_COUNT": str(count)}) as smsc,
        jb() as (process, url),
    ):
        meter = CpuMeter(jb=process.pid).start()
        smpp_channel(url, smsc, http_sink.url + "/mo", window=10)
        figures = _mo_figures(http_sink, count)
        meter.stop()
        figures["smsc"] = smsc.line("MO_DONE ")
        figures["cpu"] = meter.summary()
        figures["peak_rss_mb"] = peak_rss_mb(process.pid)
        figures["problems"] = problems(process)
    return figures


def _kannel_mo(count: int) -> dict[str, Any]:
    # Kannel dials its SMSC from the start: the SMSC comes up after Kannel
    # is ready, so the flood (which starts at the bind) meets a ready smsbox.
    port = free_port()
    with sink() as http_sink, kannel(http_sink.url, smsc_port=port) as running:
        meter = CpuMeter(
            bearerbox=running.bearerbox.pid, smsbox=running.smsbox.pid
        ).start()
        with node_smsc("ack-only", env={"MO_COUNT": str(count)}, port=port) as smsc:
            figures = _mo_figures(http_sink, count)
            figures["smsc"] = smsc.line("MO_DONE ")
        meter.stop()
        figures["cpu"] = meter.summary()
        figures["peak_rss_mb"] = peak_rss_mb(running.bearerbox.pid) + peak_rss_mb(
            running.smsbox.pid
        )
        figures["problems"] = {"count": 0, "first": []}
    return figures


def _smsc_note(line: str | None) -> str:
    if not line:
        return "SMSC did not finish"
    report = json.loads(line[len("MO_DONE ") :])
    return (
        f"SMSC had all {report['ok']} answered in {report['elapsed_s']:.1f}s, "
        f"{report['refused']} refused"
    )


def _versus(what: str, unit: str, junebug: Any, kannel_: Any, ratio: Any) -> str:
    def shown(value: Any) -> str:
        return "n/a" if value is None else f"{value:,.2f}"

    return (
        f"{what}: Junebug {shown(junebug)} {unit}, Kannel {shown(kannel_)} {unit}, "
        f"ratio {shown(ratio)}"
    )


#: The figures of a row, where a gateway's figures have them.
ROW_KEYS = ("msg_per_s", "p50_ms", "p95_ms", "p99_ms", "peak_rss_mb")


def _pair(
    label: str,
    jb_figures: dict[str, Any],
    k_figures: dict[str, Any],
    key: str,
    note: Callable[[dict[str, Any]], str],
    complete: Callable[[dict[str, Any]], bool],
) -> list[dict[str, Any]]:
    """Kannel's row (the baseline) and Junebug's, whose ratio compares
    ``key``: Junebug / Kannel for msg/s, Kannel / Junebug for a latency."""
    rows = []
    for name, figures in (("Kannel (baseline)", k_figures), ("Junebug", jb_figures)):
        row: dict[str, Any] = {"scenario": f"{label}: {name}"}
        row.update((k, figures[k]) for k in ROW_KEYS if k in figures)
        row["all_events"] = complete(figures)
        row["note"] = note(figures)
        if "cpu" in figures:
            row["cpu"] = figures["cpu"]
        row["figures"] = figures
        rows.append(row)
    ours, theirs = jb_figures[key], k_figures[key]
    rows[0]["ratio"] = 1.0
    rows[1]["ratio"] = (
        ratio_of(ours, theirs) if key == "msg_per_s" else ratio_of(theirs, ours)
    )
    unit = "msg/s" if key == "msg_per_s" else "ms"
    what = label.removeprefix("(k) ")
    if key != "msg_per_s":
        what = f"{key.removesuffix('_ms')} {what}"
    rows[1]["versus"] = _versus(what, unit, ours, theirs, rows[1]["ratio"])
    return rows


def _mt_rows(jb_mt: dict[str, Any], k_mt: dict[str, Any]) -> list[dict[str, Any]]:
    def note(figures: dict[str, Any]) -> str:
        return (
            f"{figures['accepted']} accepted ({figures['accepted_per_s']:,.0f}/s, "
            f"{MT_CONNECTIONS} clients), {figures['complete']} with both reports, "
            f"drained in {figures['drained_s']:.1f}s; failed requests: "
            f"{figures['failed']}; latency: accepting answer to final report"
            f"{logged_note(figures['problems'])}"
        )

    return _pair(
        "(k) MT end to end, every report at the callback",
        jb_mt,
        k_mt,
        "msg_per_s",
        note,
        lambda figures: bool(figures["complete"] == figures["accepted"]),
    )


def _latency_rows(
    jb_lat: dict[str, Any], k_lat: dict[str, Any]
) -> list[dict[str, Any]]:
    def note(figures: dict[str, Any]) -> str:
        return (
            f"open loop; {figures['complete']} of {figures['accepted']} accepted "
            f"with both reports; failed requests: {figures['failed']}; "
            "ratio = Kannel p99 / p99"
        )

    return _pair(
        f"(k) request -> final report @{LATENCY_RATE}/s",
        jb_lat,
        k_lat,
        "p99_ms",
        note,
        lambda figures: bool(figures["complete"] == figures["accepted"]),
    )


def _mo_rows(jb_mo: dict[str, Any], k_mo: dict[str, Any]) -> list[dict[str, Any]]:
    def note(figures: dict[str, Any]) -> str:
        return (
            f"{figures['received']} of {figures['count']} MO at the sink; "
            f"{_smsc_note(figures['smsc'])}; latency: SMSC send to sink"
            f"{logged_note(figures['problems'])}"
        )

    return _pair(
        "(k) MO flood to the callback",
        jb_mo,
        k_mo,
        "msg_per_s",
        note,
        lambda figures: bool(figures["received"] == figures["count"]),
    )


def _cpu_rows(jb_mt: dict[str, Any], k_mt: dict[str, Any]) -> list[dict[str, Any]]:
    label = "(k) CPU s per 1,000 MT"
    base = k_mt["cpu_s_per_1k"]
    shared = jb_mt["shared_cpu_s"]
    rows = [
        {
            "scenario": f"{label}: Kannel bearerbox + smsbox (baseline)",
            "cpu_s_per_1k": base,
            "ratio": 1.0,
            "note": f"{k_mt['cpu_s']:.1f} CPU s for {k_mt['complete']} MT",
        },
        {
            "scenario": f"{label}: Junebug jb",
            "cpu_s_per_1k": jb_mt["cpu_s_per_1k"],
            "ratio": ratio_of(base, jb_mt["cpu_s_per_1k"]),
            "note": f"{jb_mt['cpu_s']:.1f} CPU s for {jb_mt['complete']} MT; "
            "ratio = Kannel / Junebug",
        },
        {
            "scenario": f"{label}: Junebug jb + Redis + RabbitMQ",
            "cpu_s_per_1k": jb_mt["cpu_s_per_1k_all"],
            "ratio": ratio_of(base, jb_mt["cpu_s_per_1k_all"]),
            "note": "Redis "
            + ", RabbitMQ ".join(
                f"{shared.get(name, 0.0):.1f}" for name in ("redis", "rabbitmq")
            )
            + f" CPU s after their idle rate ({jb_mt['idle_cpu']}) over "
            f"{IDLE_SECONDS:.0f}s before the load",
        },
    ]
    for row, what in ((rows[1], "jb"), (rows[2], "jb + Redis + RabbitMQ")):
        row["versus"] = _versus(
            f"CPU per 1,000 MT ({what})",
            "CPU s",
            row["cpu_s_per_1k"],
            base,
            row["ratio"],
        )
    return rows


def scenario_kannel(seconds: int, quick: bool) -> list[dict[str, Any]]:
    """(k) The four comparisons above, Junebug then Kannel for each run."""
    count = 2000 if quick else 1000 * seconds
    jb_mt, jb_lat = _mt(_junebug_mt, seconds)
    k_mt, k_lat = _mt(_kannel_mt, seconds)
    jb_mo = _junebug_mo(count)
    k_mo = _kannel_mo(count)
    return [
        *_mt_rows(jb_mt, k_mt),
        *_mo_rows(jb_mo, k_mo),
        *_latency_rows(jb_lat, k_lat),
        *_cpu_rows(jb_mt, k_mt),
    ]
