"""``python -m bench [scenario ...]``: run benchmarks, print a table, write JSON.

Scenarios (all by default): ``api`` (a), ``smpp`` (b), ``mo`` (c),
``latency`` (d), ``channels`` (e), ``embedded`` (f); ``faults`` runs the
fault-injection suite instead.  Figures are msg/s sustained, p50/p95/p99
latency, peak RSS and the ratio to a baseline measured in the same run.
Results go to ``bench/results/<time>.json``.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import sys
from typing import Any

from bench import scenarios

SCENARIOS = ("api", "smpp", "mo", "latency", "channels", "embedded")


def run(name: str, seconds: int, quick: bool) -> list[dict[str, Any]]:
    if name == "api":
        return scenarios.api_accept(seconds)
    if name == "channels":
        return scenarios.idle_channels(20 if quick else 100)
    if name == "embedded":
        return [
            *scenarios.api_accept(seconds, embedded=True)[1:],
            *scenarios.idle_channels(20 if quick else 100, embedded=True),
        ]
    extra = getattr(scenarios, f"scenario_{name}", None)
    if extra is None:
        return [{"scenario": name, "skipped": "not available in this build"}]
    rows: list[dict[str, Any]] = extra(seconds, quick)
    return rows


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
        "note",
    ]
    present = [c for c in columns if any(c in row for row in rows)]
    lines = [" | ".join(present)]
    for row in rows:
        cells = []
        for column in present:
            value = row.get(column, "")
            if isinstance(value, float):
                value = f"{value:,.2f}" if value < 100 else f"{value:,.0f}"
            cells.append(str(value if value is not None else ""))
        lines.append(" | ".join(cells))
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench")
    parser.add_argument("scenarios", nargs="*", default=list(SCENARIOS))
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--quick", action="store_true", help="smaller loads")
    parser.add_argument("--json", help="where to write results")
    args = parser.parse_args(argv)
    if args.scenarios == ["faults"]:
        from bench import faults

        return faults.main()
    rows: list[dict[str, Any]] = []
    for name in args.scenarios:
        print(f"running {name} ...", file=sys.stderr, flush=True)
        try:
            rows.extend(run(name, args.seconds, args.quick))
        except Exception as exc:  # keep going: report what failed
            rows.append({"scenario": name, "note": f"failed: {exc}"})
    print(format_table(rows))
    report = {
        "when": datetime.datetime.now(datetime.UTC).isoformat(),
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "platform": platform.platform(),
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
