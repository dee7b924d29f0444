"""Routers: share one channel between several applications (destinations)."""
