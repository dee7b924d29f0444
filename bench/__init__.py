"""Benchmarks: ``python -m bench`` (see ``docs/performance.md``) and the
single-purpose ``python -m bench.smpp_bench`` and ``bench.amqp_publish``."""
