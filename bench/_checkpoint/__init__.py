"""Helpers of ``bench/checkpoint.py``: peers, workload, savers, runner, statistics, report."""
