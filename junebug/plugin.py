"""The original's import path for the plugin base class.

Plugins written for Praekelt's Junebug subclass ``junebug.plugin.JunebugPlugin``;
the class lives in :mod:`junebug.plugins.interface`.
"""

from junebug.plugins.interface import JunebugPlugin

__all__ = ["JunebugPlugin"]
