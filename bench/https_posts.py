"""CPU per HTTPS POST: Junebug's keep-alive pool beside ``Agent``.

A TLS web server in a child process (a certificate from a throw-away CA)
answers ``{}``; :class:`~junebug.http.client.HttpClient` POSTs ``--posts``
JSON bodies to it, ``--concurrency`` at a time, once through its own pool and
once through an ``Agent`` with the same trust root (the path ``https://`` URLs
took before the pool spoke TLS).  The figure is this process's CPU per POST
(the client's alone), median of ``--repeat`` runs.

    .venv/bin/python -m bench.https_posts [--posts 3000] [--concurrency 10]
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
import time
from typing import Any

from twisted.internet import task
from twisted.internet.defer import (
    Deferred,
    DeferredSemaphore,
    ensureDeferred,
    gatherResults,
)
from twisted.internet.protocol import ProcessProtocol
from twisted.internet.ssl import DefaultOpenSSLContextFactory
from twisted.web.client import Agent, BrowserLikePolicyForHTTPS, HTTPConnectionPool
from twisted.web.resource import Resource
from twisted.web.server import Site

from junebug.http.client import HttpClient
from junebug.testing.certificates import make_certificates
from junebug.tls import TlsSettings


class _Ok(Resource):
    isLeaf = True  # noqa: N815  (twisted.web names it so)

    def render_POST(self, request: Any) -> bytes:  # noqa: N802
        request.setHeader(b"Content-Type", b"application/json")
        return b"{}"


async def measure(
    client: HttpClient, url: str, posts: int, concurrency: int, repeat: int
) -> float:
    """Median CPU seconds per POST."""
    limit = DeferredSemaphore(concurrency)
    body = {"message_id": "x" * 32, "content": "hello", "to": "+27000000000"}

    async def post() -> None:
        result = await client.post_json(url, body)
        assert result.ok, result

    await post()  # connect and warm up
    figures = []
    for _ in range(repeat):
        started = time.process_time()
        await gatherResults(
            [limit.run(lambda: ensureDeferred(post())) for _ in range(posts)]
        )
        figures.append((time.process_time() - started) / posts)
    return statistics.median(figures)


class _Server(ProcessProtocol):
    """The child server: its first line of output is its port."""

    def __init__(self) -> None:
        self.port: Deferred[int] = Deferred()
        self.ended: Deferred[None] = Deferred()
        self._output = b""

    def outReceived(self, data: bytes) -> None:  # noqa: N802
        self._output += data
        if b"\n" in self._output and not self.port.called:
            self.port.callback(int(self._output.split(b"\n")[0]))

    def processEnded(self, reason: Any) -> None:  # noqa: N802
        self.ended.callback(None)


def serve(key_file: str, cert_file: str) -> None:
    """The child: serve TLS on a free port, print it, run until killed."""

    def start(reactor: Any) -> Deferred[None]:
        options = DefaultOpenSSLContextFactory(key_file, cert_file)
        port = reactor.listenSSL(0, Site(_Ok()), options, interface="127.0.0.1")
        print(port.getHost().port, flush=True)
        return Deferred()

    task.react(start)


async def main(reactor: Any, args: argparse.Namespace) -> None:
    directory = tempfile.mkdtemp(prefix="jb-bench-tls-")
    try:
        files = make_certificates(directory)
        server = _Server()
        argv = [sys.executable, "-m", "bench.https_posts", "--serve"]
        argv += [files.key_file, files.cert_file]
        child = reactor.spawnProcess(server, sys.executable, argv, env=os.environ)
        url = f"https://localhost:{await server.port}/mo"
        pool_client = HttpClient(reactor, ca_file=files.ca_file)
        pool = HTTPConnectionPool(reactor, persistent=True)
        pool.maxPersistentPerHost = args.concurrency
        policy = BrowserLikePolicyForHTTPS(TlsSettings(files.ca_file).trust_root)
        agent_client = HttpClient(
            reactor, agent=Agent(reactor, contextFactory=policy, pool=pool)
        )
        try:
            for name, client in (("pool", pool_client), ("Agent", agent_client)):
                seconds = await measure(
                    client, url, args.posts, args.concurrency, args.repeat
                )
                print(f"HTTPS POST through {name}: {seconds * 1e6:.0f} us CPU/POST")
        finally:
            await pool_client.close()
            await agent_client.close()
            await pool.closeCachedConnections()
            child.signalProcess("TERM")
            await server.ended
    finally:
        shutil.rmtree(directory, ignore_errors=True)


def run() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--posts", type=int, default=3000)
    parser.add_argument("--concurrency", type=int, default=10)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--serve", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        serve(*args.serve)
        return
    task.react(lambda reactor: ensureDeferred(main(reactor, args)))


if __name__ == "__main__":
    run()
