"""Versions of ``crewai`` the instrumentation supports."""

_instruments = ("crewai >= 1.0",)
