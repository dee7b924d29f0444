"""``/dashboard/``: the web dashboard's page and its two assets.

Installed only when the ``dashboard`` option is on, so with it off the API
has no such routes (``/dashboard/`` is the usual 404) and nothing of it runs
on any request.  The files are read once, when the routes are installed, and
served from memory; the page then uses the API's own routes.  They pass
through the same authentication and readiness gate as every route.

Every answer forbids inline scripts and any other origin
(``Content-Security-Policy``): the page builds what it shows as text nodes,
and the policy is a second line of defence should a channel label or a log
line ever reach the page as markup.
"""

from __future__ import annotations

from klein import Klein
from twisted.web.iweb import IRequest
from werkzeug.exceptions import NotFound

from junebug.dashboard.assets import Asset, load_assets

#: No inline script or style, nothing from another origin, no framing.
CONTENT_SECURITY_POLICY = (
    b"default-src 'none'; script-src 'self'; style-src 'self'; "
    b"connect-src 'self'; img-src 'self' data:; base-uri 'none'; "
    b"form-action 'none'; frame-ancestors 'none'"
)


def _serve(request: IRequest, asset: Asset) -> bytes:
    request.setHeader(b"Content-Type", asset.content_type)
    request.setHeader(b"Content-Security-Policy", CONTENT_SECURITY_POLICY)
    request.setHeader(b"X-Content-Type-Options", b"nosniff")
    request.setHeader(b"Referrer-Policy", b"no-referrer")
    # Checked on each load, so an upgraded Junebug's page is used at once.
    request.setHeader(b"Cache-Control", b"no-cache")
    return asset.body


def install(app: Klein) -> None:
    """Add the dashboard routes to ``app``."""
    assets = load_assets()
    page = assets["index.html"]

    @app.route("/dashboard/", methods=["GET"], endpoint="dashboard.page")
    def dashboard_page(request: IRequest) -> bytes:
        return _serve(request, page)

    @app.route(
        "/dashboard/static/<string:name>",
        methods=["GET"],
        endpoint="dashboard.asset",
    )
    def dashboard_asset(request: IRequest, name: str) -> bytes:
        asset = assets.get(name)
        if asset is None or name == "index.html":
            raise NotFound()
        return _serve(request, asset)
