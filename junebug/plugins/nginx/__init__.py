"""The bundled nginx plugin: exposes HTTP channels through an nginx vhost."""

from junebug.plugins.nginx.plugin import NginxPlugin, NginxPluginConfig

__all__ = ["NginxPlugin", "NginxPluginConfig"]
