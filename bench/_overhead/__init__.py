"""Helpers of ``bench/instrumentation_overhead.py``: peers, venvs, the worker, statistics."""
