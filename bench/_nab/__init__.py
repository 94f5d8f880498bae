"""The Numenta Anomaly Benchmark (NAB) for ``bench/nab.py``: corpus loading and NAB's scoring."""
