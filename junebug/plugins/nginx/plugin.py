"""Keeps an nginx virtual host in step with Junebug's HTTP channels.

At start the plugin writes ``vhost_file`` (a ``server`` block that includes
every ``*.conf`` of ``locations_dir``) and reloads nginx.  For each started
channel with a public HTTP path it writes ``<locations_dir>/<channel id>.conf``
(a ``location`` proxying that path to the channel's own port) and reloads; a
stopped channel's file is removed and nginx reloaded.  At stop the vhost and
every location file the plugin wrote are removed and nginx reloaded.

A channel's public HTTP properties are ``web_path`` and ``web_port`` from its
``config``, overridden by its ``public_http`` object (``web_path``,
``web_port``, ``enabled``).  The original documented ``public_http`` inside
``config`` but read it at the top level: both are read, the top level winning.
A channel without a path or port, or with ``enabled: false``, is left alone.
``web_port: 0`` (a port chosen at start) is replaced by the port the
channel's transport actually bound.

Reloading runs ``reload_command`` (default ``nginx -s reload``) as a child
process, without blocking the reactor.  If the command is not found, the error
``Cannot reload nginx, nginx not found in path`` is logged, as the original
did.  If it fails (nginx not running yet, say, in a container whose processes
start in any order), the failure is logged, shown by ``/health`` (503, an
``NginxReloadError``), and the reload is tried again after 1 s, then 2, 4, ...
up to :data:`MAX_RETRY_DELAY` seconds, until it succeeds; Junebug keeps
running meanwhile.  The original only logged.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Final

import attrs
from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IDelayedCall, IReactorTime
from twisted.internet.utils import getProcessOutputAndValue
from twisted.logger import Logger

from junebug.converter import structure
from junebug.errors import ConfigError
from junebug.plugins.interface import JunebugPlugin
from junebug.reactors import ProcessReactor

HERE: Final = Path(__file__).resolve().parent
DEFAULT_VHOST_TEMPLATE: Final = str(HERE / "vhost.template")
DEFAULT_LOCATION_TEMPLATE: Final = str(HERE / "location.template")
NOT_FOUND_MESSAGE: Final = "Cannot reload nginx, nginx not found in path"
#: Seconds before the first retry of a failed reload; doubled up to the most.
FIRST_RETRY_DELAY: Final = 1.0
MAX_RETRY_DELAY: Final = 60.0
#: What a public path may contain: nothing that could end an nginx directive.
SAFE_PATH: Final = re.compile(r"^/[A-Za-z0-9._~%!$&'()*+,=:@/-]*$")
SAFE_HOST: Final = re.compile(r"^[A-Za-z0-9.\-\[\]:]+$")
#: What a channel id must look like to name a file.
SAFE_ID: Final = re.compile(r"^[A-Za-z0-9_-][A-Za-z0-9._-]*$")


class NginxReloadError(RuntimeError):
    """The reload command ran and failed."""


@attrs.frozen
class NginxPluginConfig:
    """The plugin's options (the plugin's entry in ``plugins``).

    The original's: ``server_name`` (required), ``vhost_file``,
    ``locations_dir``, ``vhost_template``, ``location_template``.  New:
    ``listen`` (the vhost's ``listen`` value, ``80``), ``upstream_host`` (where
    channels are reached, ``localhost``) and ``reload_command`` (a list of
    arguments, or a string split like a shell would).
    """

    server_name: str
    vhost_file: str = "/etc/nginx/sites-enabled/junebug.conf"
    locations_dir: str = "/etc/nginx/includes/junebug/"
    vhost_template: str = DEFAULT_VHOST_TEMPLATE
    location_template: str = DEFAULT_LOCATION_TEMPLATE
    listen: Any = "80"
    upstream_host: str = "localhost"
    reload_command: Any = attrs.field(factory=lambda: ["nginx", "-s", "reload"])

    def __attrs_post_init__(self) -> None:
        if not self.server_name.strip():
            raise ConfigError("server_name: required")
        if isinstance(self.listen, bool) or not isinstance(self.listen, str | int):
            raise ConfigError("listen: expected a port or an nginx listen value")
        command = self.reload_command
        if not (
            isinstance(command, str)
            or (isinstance(command, list) and all(isinstance(a, str) for a in command))
        ):
            raise ConfigError("reload_command: expected a string or a list of strings")
        if not self.command:
            raise ConfigError("reload_command: must name a command")
        if not SAFE_HOST.match(self.upstream_host):
            raise ConfigError(f"upstream_host: {self.upstream_host!r} is not a host")

    @property
    def command(self) -> list[str]:
        if isinstance(self.reload_command, str):
            return shlex.split(self.reload_command)
        return list(self.reload_command)


def _read(path: str, option: str) -> str:
    try:
        return Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"{option}: cannot read {path}: {exc}") from exc


def _write(path: Path, content: str) -> None:
    """Write a file whole: nginx never sees a half-written one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".{path.name}.tmp")
    partial.write_text(content, encoding="utf-8")
    partial.replace(path)


def _remove(path: Path) -> None:
    path.unlink(missing_ok=True)


def public_http_properties(
    properties: Mapping[str, Any], bound_port: int | None = None
) -> dict[str, Any] | None:
    """``{enabled, web_path, web_port}`` of a channel, or None if it has no
    public HTTP path (see the module doc)."""
    config = properties.get("config")
    config = config if isinstance(config, dict) else {}
    result: dict[str, Any] = {
        "enabled": True,
        "web_path": config.get("web_path"),
        "web_port": config.get("web_port"),
    }
    for overrides in (config.get("public_http"), properties.get("public_http")):
        if isinstance(overrides, dict):
            result.update(overrides)
    if result["web_port"] == 0 and bound_port:
        result["web_port"] = bound_port
    if result["web_path"] is None or result["web_port"] in (None, 0):
        return None
    return result


class NginxPlugin(JunebugPlugin):
    """Maintains nginx config for Junebug's HTTP channels (see the module doc).

    ``reactor`` runs the reload command and times its retries; Junebug sets
    it (see :class:`~junebug.plugins.interface.JunebugPlugin`).  Without one
    the command runs on Twisted's reactor and a failed reload is not retried.
    ``clock``, if given, times the retries instead (tests).
    """

    log = Logger()

    def __init__(
        self,
        reactor: ProcessReactor | None = None,
        clock: IReactorTime | None = None,
    ) -> None:
        self.reactor = reactor
        self.clock = clock
        self.config: NginxPluginConfig | None = None
        #: Why the last reload failed; None once one succeeded.
        self.reload_problem: str | None = None
        self._retry: IDelayedCall | None = None
        self._retrying: Deferred[bool] | None = None
        self._retry_delay = FIRST_RETRY_DELAY
        self._stopping = False
        self._vhost_template = ""
        self._location_template = ""
        #: Location files written, by channel id.
        self._locations: dict[str, Path] = {}

    # -- the plugin hooks ------------------------------------------------------

    async def start_plugin(self, config: dict[str, Any], junebug_config: Any) -> None:
        self.config = structure(config, NginxPluginConfig, path="plugins.nginx")
        self._write_vhost()
        await self.reload()

    def _write_vhost(self) -> None:
        config = self._started_config()
        self._vhost_template = _read(config.vhost_template, "vhost_template")
        self._location_template = _read(config.location_template, "location_template")
        Path(config.locations_dir).mkdir(parents=True, exist_ok=True)
        _write(Path(config.vhost_file), self.vhost_config())

    async def stop_plugin(self) -> None:
        if self.config is None:
            return
        self._stopping = True
        self._cancel_retry()
        await self.retrying()
        _remove(Path(self.config.vhost_file))
        locations, self._locations = self._locations, {}
        for path in locations.values():
            _remove(path)
        await self.reload()

    async def channel_started(self, channel: Any) -> None:
        config = self._started_config()
        transport = getattr(channel, "transport", None)
        bound = getattr(transport, "port", None)
        properties = public_http_properties(
            channel.properties, bound if isinstance(bound, int) else None
        )
        if properties is None or not properties.get("enabled", True):
            return
        context = self.location_context(properties)
        if context is None or not SAFE_ID.match(str(channel.id)):
            self.log.error(
                "nginx plugin: channel {channel_id!r} has an unusable id, public "
                "path {web_path!r} or port {web_port!r}; not exposing it",
                channel_id=channel.id,
                web_path=properties.get("web_path"),
                web_port=properties.get("web_port"),
            )
            return
        path = self.location_path(channel.id)
        _write(path, self._location_template % context)
        self._locations[channel.id] = path
        self.log.info(
            "nginx plugin: exposing channel {channel_id} at {external_path} "
            "(server {server_name})",
            channel_id=channel.id,
            external_path=context["external_path"],
            server_name=config.server_name,
        )
        await self.reload()

    async def channel_stopped(self, channel: Any) -> None:
        path = self._locations.pop(channel.id, None)
        if path is None:
            return
        _remove(path)
        await self.reload()

    # -- config files --------------------------------------------------------

    def _started_config(self) -> NginxPluginConfig:
        if self.config is None:
            raise RuntimeError("the nginx plugin has not been started")
        return self.config

    def vhost_context(self) -> dict[str, str]:
        config = self._started_config()
        return {
            "server_name": config.server_name,
            "listen": str(config.listen),
            "includes": str(Path(config.locations_dir) / "*.conf"),
        }

    def vhost_config(self) -> str:
        return self._vhost_template % self.vhost_context()

    def location_context(self, properties: dict[str, Any]) -> dict[str, str] | None:
        """The template values for a channel; None if its path or port is unsafe."""
        config = self._started_config()
        external_path = "/" + str(properties["web_path"]).lstrip("/")
        port = properties["web_port"]
        if isinstance(port, str) and port.isdigit():
            port = int(port)
        if (
            not SAFE_PATH.match(external_path)
            or isinstance(port, bool)
            or not isinstance(port, int)
            or not 0 < port <= 65535
        ):
            return None
        return {
            "external_path": external_path,
            "internal_url": f"http://{config.upstream_host}:{port}{external_path}",
            "web_path": external_path,
            "web_port": str(port),
        }

    def location_path(self, channel_id: str) -> Path:
        return Path(self._started_config().locations_dir) / f"{channel_id}.conf"

    @property
    def locations(self) -> dict[str, Path]:
        """The location files written, by channel id."""
        return dict(self._locations)

    # -- reloading -----------------------------------------------------------

    async def reload(self) -> bool:
        """Run the reload command; True if nginx reloaded.

        A failure is logged, kept for :meth:`health_problems` and retried with
        back-off (see the module doc); it is never raised.
        """
        self._cancel_retry()
        try:
            reloaded = await self.run_reload_command()
        except Exception as exc:
            self.reload_problem = str(exc)
            self._schedule_retry()
            return False
        self.reload_problem = None
        self._retry_delay = FIRST_RETRY_DELAY
        return reloaded

    async def run_reload_command(self) -> bool:
        """Run the reload command once: True if it succeeded, False if it is
        not installed (logged); raises :class:`NginxReloadError` if it failed."""
        command = self._started_config().command
        executable = shutil.which(command[0])
        if executable is None:
            self.log.error(NOT_FOUND_MESSAGE)
            return False
        kwargs: dict[str, Any] = {"env": dict(os.environ)}
        if self.reactor is not None:
            kwargs["reactor"] = self.reactor
        out, err, code = await getProcessOutputAndValue(
            executable, command[1:], **kwargs
        )
        if code != 0:
            output = (err or out).decode("utf-8", "replace").strip()
            raise NginxReloadError(
                f"{shlex.join(command)} exited with {code}: {output[-2000:]}"
            )
        self.log.info("nginx reloaded")
        return True

    def _schedule_retry(self) -> None:
        clock = self.clock if self.clock is not None else self.reactor
        if self._stopping or clock is None:
            self.log.error(
                "nginx plugin: reloading nginx failed: {problem}",
                problem=self.reload_problem,
            )
            return
        delay = self._retry_delay
        self._retry_delay = min(delay * 2, MAX_RETRY_DELAY)
        self.log.error(
            "nginx plugin: reloading nginx failed: {problem}; retrying in {delay:g}s",
            problem=self.reload_problem,
            delay=delay,
        )
        self._retry = clock.callLater(delay, self._retry_now)

    def _retry_now(self) -> None:
        self._retry = None
        self._retrying = Deferred.fromCoroutine(self.reload())

    async def retrying(self) -> None:
        """Wait until a retried reload under way (if any) has finished."""
        retrying = self._retrying
        if retrying is not None and not retrying.called:
            await retrying

    def _cancel_retry(self) -> None:
        retry, self._retry = self._retry, None
        if retry is not None and retry.active():
            retry.cancel()

    def health_problems(self) -> list[dict[str, str]]:
        """An ``NginxReloadError`` while the last reload failed."""
        if self.reload_problem is None:
            return []
        return [
            {
                "type": "NginxReloadError",
                "message": f"nginx plugin: reload failed: {self.reload_problem}",
            }
        ]
