"""Versions of the ``anthropic`` SDK the instrumentation supports."""

_instruments = ("anthropic >= 0.40",)
