"""telnet package."""
