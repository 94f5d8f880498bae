"""Where forwarded spans go: :class:`ForwardTarget`, and the targets the settings enable.

Example:
    >>> from agentmesh.collector.settings import CollectorSettings
    >>> settings = CollectorSettings.load(
    ...     forward_langsmith_api_key="ls-key", forward_langsmith_project="agents"
    ... )
    >>> [(t.name, t.url, sorted(t.headers)) for t in targets_from_settings(settings)]
    [('langsmith', 'https://api.smith.langchain.com/otel/v1/traces', \
['Langsmith-Project', 'x-api-key'])]
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Final
from urllib.parse import urlsplit, urlunsplit

from pydantic import SecretStr

from agentmesh.collector.settings import CollectorSettings

__all__ = [
    "OTEL_TRACES_PATH",
    "OTLP_TRACES_PATH",
    "ForwardTarget",
    "targets_from_settings",
    "traces_url",
]

OTEL_TRACES_PATH: Final = "/otel/v1/traces"
OTLP_TRACES_PATH: Final = "/v1/traces"
"""The OTLP/HTTP trace path of LangSmith and Braintrust, under their API base URL."""


@dataclass(frozen=True, slots=True)
class ForwardTarget:
    """One OTLP/HTTP trace endpoint and the headers it wants.

    Header values are kept as :class:`~pydantic.SecretStr` (they hold API keys) so that the
    target's ``repr`` and logs never show them.

    Attributes:
        name: Short name for logs and stats (``langsmith``, ``braintrust``, ``otlp-1``…).
        url: The full URL requests are POSTed to.
        headers: Extra request headers.
    """

    name: str
    url: str
    headers: Mapping[str, SecretStr] = field(default_factory=dict[str, SecretStr])

    def header_values(self) -> dict[str, str]:
        """The headers with their secret values revealed, to put on the wire.

        Returns:
            Header name to value.
        """
        return {key: value.get_secret_value() for key, value in self.headers.items()}


def targets_from_settings(settings: CollectorSettings) -> list[ForwardTarget]:
    """The forwarders the settings enable: each one whose key or endpoint is set.

    Args:
        settings: The collector's configuration.

    Returns:
        LangSmith (when ``forward_langsmith_api_key`` is set), Braintrust (when
        ``forward_braintrust_api_key`` is set), then one target per ``forward_otlp_endpoints``
        URL, in that order.
    """
    targets: list[ForwardTarget] = []
    if settings.forward_langsmith_api_key is not None:
        headers = {"x-api-key": settings.forward_langsmith_api_key}
        if settings.forward_langsmith_project:
            headers["Langsmith-Project"] = SecretStr(settings.forward_langsmith_project)
        targets.append(
            ForwardTarget(
                "langsmith", _join(settings.forward_langsmith_endpoint, OTEL_TRACES_PATH), headers
            )
        )
    if settings.forward_braintrust_api_key is not None:
        key = settings.forward_braintrust_api_key.get_secret_value()
        headers = {"Authorization": SecretStr(f"Bearer {key}")}
        if settings.forward_braintrust_parent:
            headers["x-bt-parent"] = SecretStr(settings.forward_braintrust_parent)
        targets.append(
            ForwardTarget(
                "braintrust",
                _join(settings.forward_braintrust_endpoint, OTEL_TRACES_PATH),
                headers,
            )
        )
    for index, url in enumerate(settings.forward_otlp_endpoints, start=1):
        targets.append(
            ForwardTarget(f"otlp-{index}", traces_url(url), dict(settings.forward_otlp_headers))
        )
    return targets


def traces_url(url: str) -> str:
    """An OTLP endpoint given without a path gets the traces path (``/v1/traces``).

    A receiver's root answers 404 to every export, so ``http://host:4318`` can only mean its
    traces endpoint; any other path is kept as given.

    Args:
        url: The endpoint as configured.

    Returns:
        The URL spans are posted to.

    Example:
        >>> traces_url("http://collector:4318"), traces_url("https://x.example/api/traces")
        ('http://collector:4318/v1/traces', 'https://x.example/api/traces')
    """
    parts = urlsplit(url)
    if parts.path not in ("", "/"):
        return url
    return urlunsplit(parts._replace(path=OTLP_TRACES_PATH))


def _join(base: str, path: str) -> str:
    return base.rstrip("/") + path
