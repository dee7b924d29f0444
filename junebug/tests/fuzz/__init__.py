"""Fuzz tests: bounded in time, run in CI."""
