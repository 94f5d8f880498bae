"""Versions of ``langgraph`` the instrumentation supports."""

_instruments = ("langgraph >= 0.5, < 2",)
