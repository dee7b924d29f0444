"""The baseline of scenario (a): a bare Klein POST handler answering JSON.

Run as ``python -m bench.baseline_klein PORT``; it parses the JSON body and
answers a small JSON envelope, which is the least any API server must do.
"""

from __future__ import annotations

import json
import sys
from typing import Any

from klein import Klein
from twisted.internet import reactor
from twisted.web.server import Site

app = Klein()


@app.route("/messages/", methods=["POST"])
def accept(request):  # type: ignore[no-untyped-def]
    body = json.loads(request.content.read())
    request.setResponseCode(201)
    request.setHeader(b"Content-Type", b"application/json")
    return json.dumps({"status": 201, "result": {"to": body.get("to")}}).encode()


if __name__ == "__main__":
    site: Any = Site(app.resource())
    reactor.listenTCP(int(sys.argv[1]), site, interface="127.0.0.1")
    reactor.run()
