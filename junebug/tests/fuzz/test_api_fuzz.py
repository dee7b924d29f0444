"""The API fuzzed by schemathesis against our own /openapi.json: no 500s.

``jb --embedded`` runs as a subprocess; schemathesis generates requests from
the document (every served route, with the request schemas the endpoints
validate with) and fails on any server error or an answer that is not the
JSON envelope.  Bounded: a fixed seed and a few examples per operation.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile

from twisted.internet import reactor
from twisted.internet.utils import getProcessOutputAndValue
from twisted.trial.unittest import TestCase

from junebug.tests.support.process import JbProcess, free_port

EXAMPLES = int(os.environ.get("JUNEBUG_FUZZ_EXAMPLES", "25"))


class ApiFuzzTests(TestCase):
    timeout = 300

    async def test_no_server_errors(self) -> None:
        """Every generated request gets a non-5xx answer in the envelope."""
        jb = JbProcess(
            reactor,
            ["--embedded", "--logging-path", tempfile.mkdtemp(prefix="jb-fuzz-")],
            free_port(),
        )
        await jb.start()
        self.addCleanup(jb.stop)
        schemathesis = os.path.join(os.path.dirname(sys.executable), "schemathesis")
        out, err, code = await getProcessOutputAndValue(
            schemathesis,
            [
                "run",
                f"{jb.base}/openapi.json",
                "--checks",
                "not_a_server_error,content_type_conformance,response_schema_conformance",
                "--max-examples",
                str(EXAMPLES),
                "--seed",
                "20261125",
                "--request-timeout",
                "10",
                "--generation-deterministic",
            ],
            env=dict(os.environ, SCHEMATHESIS_TELEMETRY="false", NO_COLOR="1"),
            reactor=reactor,
        )
        report = out.decode(errors="replace") + err.decode(errors="replace")
        self.assertEqual(code, 0, report[-6000:] + "\n" + jb.output[-3000:])
        doc_routes = json.loads((await _get(jb.base + "/openapi.json")).decode())[
            "paths"
        ]
        self.assertIn("/channels/", doc_routes)


async def _get(url: str) -> bytes:
    from treq.client import HTTPClient
    from twisted.web.client import Agent, HTTPConnectionPool

    pool = HTTPConnectionPool(reactor, persistent=False)
    client = HTTPClient(Agent(reactor, pool=pool))
    try:
        response = await client.get(url)
        return await response.content()
    finally:
        await pool.closeCachedConnections()
