"""Versions of the ``openai`` SDK the instrumentation supports."""

_instruments = ("openai >= 1.40, < 4",)
