"""Channel type names -> transport classes, from defaults and configuration."""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from typing import Any, cast

from junebug.converter import structure
from junebug.errors import ConfigError, InvalidChannelConfig, InvalidChannelType
from junebug.transports.interface import TransportClass

DEFAULT_TRANSPORTS: Mapping[str, str] = {
    "telnet": "junebug.transports.telnet.transport.TelnetTransport",
    "telnet_addr": "junebug.transports.telnet.transport.AddressedTelnetTransport",
    "smpp": "junebug.transports.smpp.transport.SmppTransport",
    "dmark": "junebug.transports.dmark.transport.DmarkTransport",
    "http": "junebug.transports.http.transport.HttpTransport",
    "xmpp": "junebug.transports.xmpp.transport.XmppTransport",
}


def load_dotted(path: str) -> Any:
    """Import ``package.module.Name`` and return ``Name``."""
    module_name, _, attr = path.rpartition(".")
    if not module_name:
        raise ConfigError(f"{path!r} is not a dotted path to a class")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise ConfigError(f"cannot import {module_name}: {exc}") from exc
    try:
        return getattr(module, attr)
    except AttributeError:
        raise ConfigError(f"{module_name} has no attribute {attr!r}") from None


class TransportRegistry:
    """Knows every channel type; resolves and validates channel configs."""

    def __init__(
        self, extra: Mapping[str, str] | None = None, replace: bool = False
    ) -> None:
        types = {} if replace else dict(DEFAULT_TRANSPORTS)
        types.update(extra or {})
        self._paths = types
        self._classes: dict[str, TransportClass] = {}

    def types(self) -> list[str]:
        return sorted(self._paths)

    def resolve(self, channel_type: Any) -> TransportClass:
        """The transport class of a type, or InvalidChannelType."""
        if not isinstance(channel_type, str) or channel_type not in self._paths:
            raise InvalidChannelType(
                f"Invalid channel type {channel_type!r}, must be one of: "
                + ", ".join(self.types())
            )
        if channel_type not in self._classes:
            try:
                cls = load_dotted(self._paths[channel_type])
            except ConfigError as exc:
                raise InvalidChannelType(
                    f"Channel type {channel_type!r} cannot be loaded: {exc}"
                ) from exc
            self._classes[channel_type] = cast(TransportClass, cls)
        return self._classes[channel_type]

    def check(self) -> None:
        """Load every configured type now (start-up), raising ConfigError."""
        for channel_type, path in self._paths.items():
            try:
                self._classes[channel_type] = cast(TransportClass, load_dotted(path))
            except ConfigError as exc:
                raise ConfigError(f"channels.{channel_type}: {exc}") from exc

    def validate(self, channel_type: Any, config: Any) -> Any:
        """Structure a channel's ``config`` for its type, or InvalidChannelConfig."""
        cls = self.resolve(channel_type)
        try:
            return structure(config, cls.CONFIG_CLASS, path="config")
        except ConfigError as exc:
            raise InvalidChannelConfig(str(exc)) from exc
