"""Helpers of ``bench/collector_throughput.py``: the stream, the client and server processes."""
