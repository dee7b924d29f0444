"""xmpp package."""
