"""Where jb's time went: a summary of ``py-spy record -f raw`` output.

``python -m bench.profile_summary FILE [--top 25] [--match TEXT]`` prints, as
shares of all samples: the functions that are on the stack most often
(inclusive), the functions that were running (self), and the packages the
running code belongs to.  ``--match`` restricts the inclusive list to frames
whose name or file contains TEXT (e.g. ``junebug/``).

Record with ``BENCH_PROFILE=<dir> python -m bench api smpp``, or by hand:
``py-spy record -p <jb pid> -f raw -o jb.txt``.
"""

from __future__ import annotations

import argparse
import collections
import re
from collections.abc import Iterator

_FRAME = re.compile(r"^(?P<name>.*) \((?P<file>[^()]*?)(?::(?P<line>\d+))?\)$")


def parse(path: str) -> Iterator[tuple[list[str], int]]:
    """(frames, outermost first; samples) for each line of a raw profile."""
    with open(path, encoding="utf-8", errors="replace") as handle:
        for line in handle:
            stack, _, count = line.rstrip("\n").rpartition(" ")
            if stack and count.isdigit():
                yield stack.split(";"), int(count)


def function(frame: str) -> str:
    """A frame without its line number: ``name (file)``."""
    match = _FRAME.match(frame)
    return f"{match['name']} ({match['file']})" if match else frame


def package(frame: str) -> str:
    """The package a frame's code belongs to (``junebug.api``, ``twisted.web``)."""
    match = _FRAME.match(frame)
    path = match["file"] if match else frame
    if "site-packages/" in path:
        path = path.split("site-packages/", 1)[1]
    elif path.startswith("<frozen"):
        return "python (frozen)"
    elif "/lib/python3" in path:
        return "python stdlib: " + path.rsplit("/", 1)[-1]
    parts = path.replace(".py", "").split("/")
    if parts[0] in ("junebug", "twisted") and len(parts) > 2:
        return ".".join(parts[:2])
    if parts[0] in ("junebug", "twisted"):
        return ".".join(parts[:2]) if len(parts) > 1 else parts[0]
    if len(parts) == 1:
        return "python stdlib: " + parts[0]
    return parts[0]


#: What jb was doing, by the first of these found anywhere on the stack
#: (so a Redis reply that resumes an API request counts as the API's).
ACTIVITIES = (
    ("API: POST /channels/<id>/messages/", ("send_message (junebug/api/",)),
    ("MT: outbound message -> transport", ("Channel._handle_outbound ",)),
    ("events: store, POST to event_url", ("Forwarder.handle_event ",)),
    ("MO: store, POST to mo_url", ("Forwarder.handle_inbound ",)),
    ("SMPP: PDUs received", ("SmppProtocol.dataReceived ",)),
    ("HTTP client: responses", ("twisted/web/_newclient.py", "junebug/http/")),
    ("Redis: replies", ("_RespProtocol.dataReceived ", "txredisapi.py")),
    ("AMQP: frames received", ("AmqpConnection.dataReceived ", "pika/")),
    ("HTTP server: parsing, routing", ("twisted/web/", "klein/", "werkzeug/")),
    ("socket writes (send)", ("writeSomeData ",)),
    ("logging", ("logging_setup.py", "twisted/logger/")),
)


def activity(frames: list[str]) -> str:
    for label, needles in ACTIVITIES:
        if any(needle in frame for frame in frames for needle in needles):
            return label
    return f"other: {package(frames[-1])}"


def summarise(path: str, top: int = 25, match: str | None = None) -> str:
    total = 0
    threads = 0
    inclusive: collections.Counter[str] = collections.Counter()
    own: collections.Counter[str] = collections.Counter()
    packages: collections.Counter[str] = collections.Counter()
    entries: collections.Counter[str] = collections.Counter()
    for frames, count in parse(path):
        if frames[0].startswith("Thread._bootstrap "):
            # Twisted's thread pool, idle in Queue.get: not the reactor.
            threads += count
            continue
        total += count
        for name in {function(frame) for frame in frames}:
            inclusive[name] += count
        own[function(frames[-1])] += count
        packages[package(frames[-1])] += count
        entries[activity(frames)] += count
    if not total:
        return f"{path}: no samples"
    lines = [
        f"{path}: {total} samples of the reactor thread "
        f"({threads} of other threads left out)"
    ]

    def table(title: str, counter: collections.Counter[str], keep: int) -> None:
        lines.append(f"\n{title}")
        for name, count in counter.most_common(keep):
            lines.append(f"  {100 * count / total:5.1f}%  {name}")

    chosen = collections.Counter(
        {k: v for k, v in inclusive.items() if match is None or match in k}
    )
    table("activities (see ACTIVITIES)", entries, top)
    table("inclusive (on the stack)", chosen, top)
    table("self (running)", own, top)
    table("self, by package", packages, top)
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("files", nargs="+")
    parser.add_argument("--top", type=int, default=25)
    parser.add_argument("--match")
    args = parser.parse_args(argv)
    for path in args.files:
        print(summarise(path, args.top, args.match))


if __name__ == "__main__":
    main()
