"""``GET``/``HEAD /health`` of the message API, as every vumi2 worker has it.

The body is vumi2's, not Junebug's envelope, so what watches vumi2 workers
watches this one unchanged::

    {"health": "ok", "components": {"amqp": {"health": "ok", "state": "open"}}}

200 while the broker connection is open; 500 (vumi2's code), ``"health":
"down"`` and ``"state": "closed"`` while it is not.
"""

from __future__ import annotations

import json
from typing import Any

from klein import Klein
from twisted.web.iweb import IRequest

from junebug.amqp.broker import Broker


def health_report(broker: Broker) -> dict[str, Any]:
    """vumi2's health body for one AMQP connection."""
    up = broker.is_connected()
    health = "ok" if up else "down"
    amqp = {"health": health, "state": "open" if up else "closed"}
    return {"health": health, "components": {"amqp": amqp}}


def install(app: Klein, broker: Broker) -> None:
    """Add ``/health`` to ``app`` (werkzeug answers ``HEAD`` like ``GET``)."""

    @app.route("/health", methods=["GET"], endpoint="health")
    def health(request: IRequest) -> bytes:
        report = health_report(broker)
        request.setResponseCode(200 if report["health"] == "ok" else 500)
        request.setHeader(b"Content-Type", b"application/json")
        return json.dumps(report).encode("utf-8")
