"""``python -m bench [scenario ...]``: run benchmarks, print a table, write JSON.

Scenarios (all but ``kannel`` by default): ``api`` (a), ``smpp`` (b),
``mo`` (c), ``latency`` (d), ``channels`` (e), ``embedded`` (f),
``ratelimit`` (g: what a rate-limited channel costs per message, see
:mod:`bench.rate_limit`) and ``kannel`` (k: Junebug against Kannel, see
:mod:`bench.kannel_compare`; about 2.5 minutes more, so only when named);
``faults`` runs the
fault-injection suite instead.  Figures are msg/s sustained, p50/p95/p99
latency, peak RSS and the ratio to a baseline measured in the same run.
Results go to ``bench/results/<time>.json``.

``BENCH_PROFILE=<dir>`` samples jb with py-spy during each scenario's load
(collapsed stacks in ``<dir>/<scenario>.txt``); ``python -m
bench.profile_summary <dir>/<scenario>.txt`` prints where the time went.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import statistics
import sys
from typing import Any

from bench import kannel_compare, rate_limit, scenarios
from bench.harness import machine_info

SCENARIOS = (
    "api",
    "smpp",
    "mo",
    "latency",
    "channels",
    "embedded",
    "ratelimit",
    "priorities",
    "kannel",
)
#: What runs when no scenario is named.
DEFAULT = SCENARIOS[:-1]


def run(name: str, seconds: int, quick: bool) -> list[dict[str, Any]]:
    scenario = next(
        (
            found
            for module in (scenarios, rate_limit, kannel_compare)
            if (found := getattr(module, f"scenario_{name}", None)) is not None
        ),
        None,
    )
    if scenario is None:
        return [{"scenario": name, "note": "no such scenario"}]
    rows: list[dict[str, Any]] = scenario(seconds, quick)
    return rows


def merge_runs(runs: list[list[dict[str, Any]]]) -> list[dict[str, Any]]:
    """One row per scenario row from repeated runs: the median of each
    figure, ``all_events`` only if every run had them, the rest from the
    first run; ``runs`` keeps every run's msg/s."""
    if len(runs) == 1:
        return runs[0]
    merged = []
    for index, first in enumerate(runs[0]):
        same = [
            run[index]
            for run in runs
            if index < len(run) and run[index].get("scenario") == first["scenario"]
        ]
        row = dict(first)
        for key, value in first.items():
            values = [r.get(key) for r in same]
            if isinstance(value, bool):
                row[key] = all(values)
            elif isinstance(value, (int, float)) and all(
                isinstance(v, (int, float)) for v in values
            ):
                row[key] = statistics.median(values)  # type: ignore[type-var]
        row["all_runs"] = same
        rates = [r.get("msg_per_s") for r in same]
        if any(isinstance(rate, (int, float)) for rate in rates):
            row["runs"] = rates
            shown = ", ".join(f"{rate:,.0f}" for rate in rates if rate is not None)
            row["note"] = f"{row.get('note', '')} [median of {len(same)}: {shown}]"
        merged.append(row)
    return merged


def format_table(rows: list[dict[str, Any]]) -> str:
    columns = [
        "scenario",
        "msg_per_s",
        "p50_ms",
        "p95_ms",
        "p99_ms",
        "peak_rss_mb",
        "ratio",
        "extra_rss_mb",
        "cpu_s_per_1k",
        "cpu_ms_per_msg",
        "redis_cpu_ms_per_msg",
        "all_events",
        "note",
    ]
    present = [c for c in columns if any(c in row for row in rows)]
    lines = [" | ".join(present)]
    for row in rows:
        cells = []
        for column in present:
            value = row.get(column, "")
            if isinstance(value, float):
                if value >= 100:
                    value = f"{value:,.0f}"
                elif 0 < abs(value) < 0.1:
                    value = f"{value:.2g}"
                else:
                    value = f"{value:,.2f}"
            cells.append(str(value if value is not None else ""))
        lines.append(" | ".join(cells))
    return "\n".join(lines)


def _tree_changes(start: dict[str, Any]) -> dict[str, Any] | None:
    """The commit and uncommitted files at the end, if they changed."""
    end = machine_info()
    keys = ("commit", "uncommitted")
    if all(end.get(key) == start.get(key) for key in keys):
        return None
    print("warning: junebug/ changed during the run", file=sys.stderr)
    return {key: end.get(key) for key in keys}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench")
    parser.add_argument("scenarios", nargs="*", default=list(DEFAULT))
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--quick", action="store_true", help="smaller loads")
    parser.add_argument(
        "--repeat",
        type=int,
        default=1,
        help="run each scenario N times and report medians (shared machines)",
    )
    parser.add_argument("--json", help="where to write results")
    parser.add_argument(
        "--profile",
        metavar="DIR",
        help="sample jb with py-spy during each load into DIR/<scenario>.txt",
    )
    parser.add_argument(
        "--experiment",
        action="append",
        default=[],
        metavar="NAME",
        help="run jb with a change applied from outside: nodelay, noform "
        "(see bench/experiments.py); repeatable",
    )
    args = parser.parse_args(argv)
    if args.profile:
        os.environ["BENCH_PROFILE"] = os.path.abspath(args.profile)
    if args.experiment:
        os.environ["BENCH_EXPERIMENTS"] = ",".join(args.experiment)
    if args.scenarios == ["faults"]:
        from bench import faults

        return faults.main()
    unknown = sorted(set(args.scenarios) - set(SCENARIOS))
    if unknown:
        parser.error(f"unknown scenario(s) {', '.join(unknown)}; know {SCENARIOS}")
    machine = machine_info()
    rows: list[dict[str, Any]] = []
    for name in args.scenarios:
        runs = []
        for attempt in range(args.repeat):
            print(
                f"running {name} ({attempt + 1}/{args.repeat}) ...",
                file=sys.stderr,
                flush=True,
            )
            try:
                runs.append(run(name, args.seconds, args.quick))
            except Exception as exc:  # keep going: report what failed
                runs.append([{"scenario": name, "note": f"failed: {exc}"}])
        rows.extend(merge_runs(runs))
    print(format_table(rows))
    cpu = [(row["scenario"], row["cpu"]) for row in rows if row.get("cpu")]
    if cpu:
        print("\nCPU during the load (% of one core):")
        for scenario, summary in cpu:
            print(f"  {scenario}: {summary}")
    versus = [row["versus"] for row in rows if row.get("versus")]
    if versus:
        first = " (first run; the table has the medians)" if args.repeat > 1 else ""
        print(f"\nJunebug against Kannel, same run{first}; ratio 1.0 is as good:")
        for line in versus:
            print(f"  {line}")
    report = {
        "when": datetime.datetime.now(datetime.UTC).isoformat(),
        "machine": machine,
        "tree_at_end": _tree_changes(machine),
        "options": {
            "seconds": args.seconds,
            "quick": args.quick,
            "repeat": args.repeat,
            "experiments": os.environ.get("BENCH_EXPERIMENTS", ""),
            "profile": os.environ.get("BENCH_PROFILE"),
        },
        "rows": rows,
    }
    path = args.json or os.path.join(
        os.path.dirname(__file__),
        "results",
        datetime.datetime.now(datetime.UTC).strftime("%Y%m%dT%H%M%SZ.json"),
    )
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w", encoding="utf-8") as handle:
        json.dump(report, handle, indent=2)
    print(f"wrote {path}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
