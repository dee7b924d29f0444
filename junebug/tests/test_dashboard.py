"""``/dashboard/``: served only with the ``dashboard`` option, behind the API's
authentication, from files shipped in the package.  (The page itself runs in
a real browser in ``integration/test_dashboard_browser.py``.)"""

from __future__ import annotations

import base64
import fnmatch
import re
import tomllib
from pathlib import Path
from typing import Any

from twisted.internet import reactor
from twisted.trial.unittest import SynchronousTestCase, TestCase

from junebug.api.dashboard import CONTENT_SECURITY_POLICY
from junebug.cli import build_parser, cli_layer
from junebug.config import JunebugConfig, load_config
from junebug.dashboard.assets import CONTENT_TYPES, load_assets
from junebug.testing.api import ApiDriver, json_request

ROOT = Path(__file__).resolve().parents[2]


def basic(user: str, password: str) -> dict[bytes, list[bytes]]:
    token = base64.b64encode(f"{user}:{password}".encode()).decode()
    return {b"Authorization": [f"Basic {token}".encode()]}


class DashboardTestCase(TestCase):
    async def start(self, **overrides: Any) -> ApiDriver:
        api = ApiDriver(reactor)
        self.addCleanup(api.stop)
        await api.start(**overrides)
        return api

    async def get(
        self, api: ApiDriver, path: str, headers: dict[bytes, list[bytes]] | None = None
    ) -> tuple[int, Any, Any]:
        return await json_request(api.client, "GET", api.base + path, headers=headers)


class DashboardOffTests(DashboardTestCase):
    async def test_off_by_default_is_404(self) -> None:
        """Without the option there are no dashboard routes: the usual 404
        envelope, and nothing about it in the OpenAPI document."""
        self.assertFalse(JunebugConfig().dashboard)
        api = await self.start()
        for path in ("/dashboard/", "/dashboard/static/dashboard.js"):
            code, body, _ = await self.get(api, path)
            self.assertEqual(code, 404, path)
            self.assertEqual(body["code"], "Not Found")
        assert api.junebug is not None
        rules = [rule.rule for rule in api.junebug.api.app.url_map.iter_rules()]
        self.assertFalse([rule for rule in rules if "dashboard" in rule])
        _, document, _ = await self.get(api, "/openapi.json")
        self.assertFalse([path for path in document["paths"] if "dashboard" in path])


class DashboardOnTests(DashboardTestCase):
    async def test_page_and_assets(self) -> None:
        """The page, its stylesheet and its script, each with its content
        type and the headers that keep other origins and inline code out."""
        api = await self.start(dashboard=True)
        for path, kind in (
            ("/dashboard/", b"text/html"),
            ("/dashboard/static/dashboard.css", b"text/css"),
            ("/dashboard/static/dashboard.js", b"text/javascript"),
        ):
            code, body, headers = await self.get(api, path)
            self.assertEqual(code, 200, path)
            self.assertTrue(
                headers.getRawHeaders(b"Content-Type")[0].startswith(kind), path
            )
            self.assertEqual(
                headers.getRawHeaders(b"Content-Security-Policy"),
                [CONTENT_SECURITY_POLICY],
            )
            self.assertEqual(
                headers.getRawHeaders(b"X-Content-Type-Options"), [b"nosniff"]
            )
            self.assertTrue(body)
        code, body, _ = await self.get(api, "/dashboard/")
        self.assertIn(b'<script src="static/dashboard.js"', body)

    async def test_unknown_files_are_404_envelopes(self) -> None:
        """Only the shipped assets are served; anything else is the API's
        404 (never a file from the disk)."""
        api = await self.start(dashboard=True)
        for path in (
            "/dashboard/static/nope.js",
            "/dashboard/static/index.html",
            "/dashboard/static/..%2F__init__.py",
            "/dashboard/other",
        ):
            code, body, _ = await self.get(api, path)
            self.assertEqual(code, 404, path)
            self.assertEqual(body["status"], 404, path)

    async def test_slashless_path_redirects(self) -> None:
        api = await self.start(dashboard=True)
        code, _, headers = await self.get(api, "/dashboard")
        self.assertEqual(code, 308)
        self.assertEqual(headers.getRawHeaders(b"Location"), [b"/dashboard/"])

    async def test_listed_in_openapi_as_html(self) -> None:
        """The routes are in ``/openapi.json`` with their real content types."""
        api = await self.start(dashboard=True)
        _, document, _ = await self.get(api, "/openapi.json")
        page = document["paths"]["/dashboard/"]["get"]["responses"]["200"]
        self.assertEqual(list(page["content"]), ["text/html"])
        asset = document["paths"]["/dashboard/static/{name}"]["get"]
        self.assertEqual(
            sorted(asset["responses"]["200"]["content"]),
            ["text/css", "text/javascript"],
        )

    async def test_behind_basic_auth(self) -> None:
        """With API credentials the dashboard needs them too (a browser asks
        for Basic ones); ``/health`` stays open."""
        api = await self.start(dashboard=True, api_username="ops", api_password="pw")
        for path in ("/dashboard/", "/dashboard/static/dashboard.js"):
            code, body, headers = await self.get(api, path)
            self.assertEqual(code, 401, path)
            self.assertEqual(body["description"], "unauthorized")
            self.assertEqual(
                headers.getRawHeaders(b"WWW-Authenticate"), [b'Basic realm="junebug"']
            )
            code, _, _ = await self.get(api, path, basic("ops", "wrong"))
            self.assertEqual(code, 401, path)
            code, _, _ = await self.get(api, path, basic("ops", "pw"))
            self.assertEqual(code, 200, path)
        code, _, _ = await self.get(api, "/health")
        self.assertEqual(code, 200)

    async def test_behind_token_auth(self) -> None:
        api = await self.start(dashboard=True, api_token="secret")
        code, _, _ = await self.get(api, "/dashboard/")
        self.assertEqual(code, 401)
        code, _, _ = await self.get(
            api, "/dashboard/", {b"Authorization": [b"Token secret"]}
        )
        self.assertEqual(code, 200)


class DashboardOptionTests(SynchronousTestCase):
    def test_flag_file_and_environment(self) -> None:
        """``--dashboard`` is generated from the field like every flag."""
        path, layer = cli_layer(build_parser().parse_args(["--dashboard"]))
        self.assertTrue(load_config(path, {}, layer).dashboard)
        path, layer = cli_layer(build_parser().parse_args(["--dashboard", "false"]))
        self.assertFalse(load_config(path, {}, layer).dashboard)
        self.assertTrue(load_config(None, {"JUNEBUG_DASHBOARD": "true"}).dashboard)
        self.assertFalse(load_config(None, {}).dashboard)
        help_text = build_parser().format_help()
        self.assertIn("--dashboard", help_text)


#: Ways a script turns text into markup or code; the page uses none of them.
MARKUP_SINKS = re.compile(
    r"innerHTML|outerHTML|insertAdjacentHTML|document\.write|\beval\(|"
    r"new Function|setTimeout\(\s*[\"'`]"
)


class AssetTests(SynchronousTestCase):
    def test_shipped_in_the_package(self) -> None:
        """The files are read through importlib.resources (package data, so
        an installed Junebug has them), none empty."""
        assets = load_assets()
        self.assertEqual(sorted(assets), sorted(CONTENT_TYPES))
        for name, asset in assets.items():
            self.assertTrue(asset.body, name)

    def test_declared_as_package_data(self) -> None:
        """pyproject.toml's package data takes every file of ``static/`` into
        the wheel (a wheel built from it was checked to hold them)."""
        pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
        patterns = pyproject["tool"]["setuptools"]["package-data"]["junebug"]
        static = ROOT / "junebug" / "dashboard" / "static"
        names = sorted(path.name for path in static.iterdir())
        self.assertEqual(names, sorted(CONTENT_TYPES))
        for name in names:
            inside = f"dashboard/static/{name}"
            self.assertTrue(
                any(fnmatch.fnmatch(inside, pattern) for pattern in patterns), name
            )

    def test_script_only_makes_text(self) -> None:
        """The script never parses strings as HTML or code: what the API says
        (labels, message content, log lines) can only become text nodes."""
        script = load_assets()["dashboard.js"].body.decode("utf-8")
        self.assertEqual(MARKUP_SINKS.findall(script), [])
        self.assertIn("createTextNode", script)

    def test_page_has_no_inline_code(self) -> None:
        """The Content-Security-Policy forbids inline scripts and styles, so
        the page has none (they would not run)."""
        page = load_assets()["index.html"].body.decode("utf-8")
        for tag in re.findall(r"<script\b[^>]*>", page):
            self.assertIn(" src=", tag)
        self.assertNotIn("<style", page)
        self.assertNotRegex(page, r"\son\w+=")
        self.assertNotRegex(page, r"\sstyle=")


FAKE_CHANNEL = {"type": "fake", "config": {}}


class CrossSiteTests(DashboardTestCase):
    async def post(
        self, api: ApiDriver, headers: dict[bytes, list[bytes]]
    ) -> tuple[int, Any]:
        code, body, _ = await json_request(
            api.client, "POST", api.base + "/channels/", FAKE_CHANNEL, headers=headers
        )
        return code, body

    async def test_changes_from_another_site_are_refused(self) -> None:
        """With the dashboard on, a change a browser sends for another site
        (a form or script there, using the operator's credentials) is a 403
        and changes nothing; the dashboard's own requests, clients that are
        not browsers, and reads from anywhere pass."""
        api = await self.start(dashboard=True, api_username="ops", api_password="pw")
        auth = basic("ops", "pw")
        host = api.base.removeprefix("http://")
        for refused in (
            {b"Sec-Fetch-Site": [b"cross-site"]},
            {b"Sec-Fetch-Site": [b"same-site"]},
            {b"Origin": [b"http://evil.example"]},
            {b"Origin": [b"null"]},
            {b"Origin": [b"http://127.0.0.1:1"]},
        ):
            code, body = await self.post(api, {**auth, **refused})
            self.assertEqual(code, 403, refused)
            self.assertEqual(body["result"]["errors"][0]["type"], "CrossSiteRequest")
        assert api.junebug is not None
        self.assertEqual(await api.junebug.channels.store.list_ids(), [])
        for accepted in (
            {},
            {b"Sec-Fetch-Site": [b"same-origin"]},
            {b"Sec-Fetch-Site": [b"none"]},
            {b"Origin": [f"http://{host}".encode()]},
            # Behind a proxy that ends TLS, the browser's origin is https.
            {b"Origin": [f"https://{host}".encode()]},
        ):
            code, body = await self.post(api, {**auth, **accepted})
            self.assertEqual(code, 201, (accepted, body))
        code, _, _ = await self.get(
            api, "/channels/", {**auth, b"Sec-Fetch-Site": [b"cross-site"]}
        )
        self.assertEqual(code, 200)
        code, _ = await self.post(api, {b"Origin": [b"http://evil.example"]})
        self.assertEqual(code, 401)  # credentials are checked first

    async def test_not_checked_with_the_dashboard_off(self) -> None:
        """Off, the API does exactly what it did before (no extra check)."""
        api = await self.start()
        code, _ = await self.post(api, {b"Sec-Fetch-Site": [b"cross-site"]})
        self.assertEqual(code, 201)
