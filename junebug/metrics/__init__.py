"""Prometheus metrics: the families one Junebug counts and what it reads at
scrape time.  See docs/metrics.rst for every family."""
