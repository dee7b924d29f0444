"""What the API's routes need, handed to each route module's ``install``."""

from __future__ import annotations

from typing import Any

import attrs

from junebug.api.readiness import Readiness
from junebug.channels.registry import ChannelRegistry
from junebug.channels.sending import MessageSender
from junebug.cluster.control import Control
from junebug.cluster.node import ClusterNode
from junebug.config import JunebugConfig
from junebug.http.client import HttpClient
from junebug.metrics.families import JunebugMetrics
from junebug.reactors import JunebugReactor
from junebug.routers.registry import RouterRegistry
from junebug.stored_logs import StoredLogs


@attrs.define
class ApiDependencies:
    """What the API's routes need."""

    config: JunebugConfig
    channels: ChannelRegistry
    sender: MessageSender
    reactor: JunebugReactor
    http: HttpClient
    delivery: Any = None
    health_checks: list[Any] = attrs.field(factory=list)
    #: What ``/health/ready`` checks (see junebug.health_checks).
    ready_checks: list[Any] = attrs.field(factory=list)
    routers: RouterRegistry | None = None
    #: While set and not ready, routes answer 503 (see junebug.api.readiness).
    readiness: Readiness | None = None
    metrics: JunebugMetrics = attrs.field(factory=JunebugMetrics)
    #: The stored channel logs the logs routes read (None: the log files).
    stored_logs: StoredLogs | None = None
    #: This process's part in the gateway (junebug.cluster); unset in tests
    #: of the API alone.
    cluster: ClusterNode | None = None
    #: Runs changes in the process that owns the channel (junebug.cluster).
    control: Control | None = None
