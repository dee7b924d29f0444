"""``/processes/``: the live ``jb`` processes of the gateway (docs/cluster.rst)."""

from __future__ import annotations

from klein import Klein
from twisted.web.iweb import IRequest

from junebug.api.dependencies import ApiDependencies
from junebug.api.envelope import render


def install(app: Klein, deps: ApiDependencies) -> None:
    """Add ``GET /processes/`` to ``app``."""

    @app.route("/processes/", methods=["GET"], endpoint="processes.list_processes")
    async def list_processes(request: IRequest) -> bytes:
        cluster = deps.cluster
        processes = [] if cluster is None else await cluster.processes()
        return render(
            request, 200, "processes listed", [info.as_json() for info in processes]
        )
