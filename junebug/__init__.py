"""Junebug: an HTTP API in front of many messaging channels."""

__version__ = "0.3.0.dev0"

__all__ = ["__version__"]
