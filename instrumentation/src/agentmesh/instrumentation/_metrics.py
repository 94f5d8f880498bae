"""The two GenAI client metrics: tokens per call and call duration, with the advised buckets.

``gen_ai.client.token.usage`` (``{token}``, one point per token type) and
``gen_ai.client.operation.duration`` (``s``) are histograms whose bucket boundaries the GenAI
conventions advise (:data:`~agentmesh.core.semconv.TOKEN_USAGE_BUCKETS`,
:data:`~agentmesh.core.semconv.OPERATION_DURATION_BUCKETS`); they are passed as
``explicit_bucket_boundaries_advisory`` when the installed OpenTelemetry API knows the argument.

Example:
    >>> from opentelemetry.sdk.metrics import MeterProvider
    >>> from opentelemetry.sdk.metrics.export import InMemoryMetricReader
    >>> reader = InMemoryMetricReader()
    >>> metrics = GenAIMetrics.create(MeterProvider(metric_readers=[reader]), "demo")
    >>> metrics.record({"gen_ai.operation.name": "chat"}, 0.25, 12, 3)
    >>> data = reader.get_metrics_data()
    >>> sorted(m.name for m in data.resource_metrics[0].scope_metrics[0].metrics)
    ['gen_ai.client.operation.duration', 'gen_ai.client.token.usage']
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from opentelemetry import metrics
from opentelemetry.metrics import Histogram, Meter, MeterProvider
from opentelemetry.util.types import AttributeValue

from agentmesh.core.semconv import (
    ERROR_TYPE,
    GEN_AI_OPERATION_NAME,
    GEN_AI_PROVIDER_NAME,
    GEN_AI_REQUEST_MODEL,
    GEN_AI_RESPONSE_MODEL,
    GEN_AI_TOKEN_TYPE,
    METRIC_CLIENT_OPERATION_DURATION,
    METRIC_CLIENT_TOKEN_USAGE,
    OPERATION_DURATION_BUCKETS,
    SERVER_ADDRESS,
    TOKEN_USAGE_BUCKETS,
)
from agentmesh.instrumentation._failopen import report

__all__ = ["GenAIMetrics", "MetricKey", "meter_provider_from"]

_USAGE_DESCRIPTION = "Number of input and output tokens used per GenAI call."
_DURATION_DESCRIPTION = "Duration of a GenAI client operation."


def meter_provider_from(kwargs: Mapping[str, object]) -> MeterProvider | None:
    """Return the ``meter_provider`` an instrumentor was given, if it is one.

    Args:
        kwargs: The keyword arguments of ``_instrument``.

    Returns:
        The meter provider, or ``None`` (use the global one).
    """
    provider = kwargs.get("meter_provider")
    return provider if isinstance(provider, MeterProvider) else None


def _histogram(
    meter: Meter, name: str, unit: str, description: str, buckets: Sequence[float]
) -> Histogram:
    try:
        return meter.create_histogram(
            name, unit=unit, description=description, explicit_bucket_boundaries_advisory=buckets
        )
    except TypeError:  # an OpenTelemetry API older than 1.23 lacks the advisory argument
        return meter.create_histogram(name, unit=unit, description=description)


MetricKey = tuple[AttributeValue, AttributeValue, str, str | None, AttributeValue | None]
"""``(operation, provider, request model, response model, server address)`` of a call."""

_MAX_KEYS = 1024


def _attributes_of(key: MetricKey) -> dict[str, AttributeValue]:
    operation, provider, request_model, response_model, server = key
    attributes: dict[str, AttributeValue] = {
        GEN_AI_OPERATION_NAME: operation,
        GEN_AI_PROVIDER_NAME: provider,
        GEN_AI_REQUEST_MODEL: request_model,
    }
    if response_model:
        attributes[GEN_AI_RESPONSE_MODEL] = response_model
    if server is not None:
        attributes[SERVER_ADDRESS] = server
    return attributes


class GenAIMetrics:
    """The instruments of one instrumentor, and the recording of one call.

    The attribute sets of :meth:`record_call` (one per key and token type) are built once per
    key and reused: the instruments never modify the attributes they are given.

    Args:
        token_usage: The ``gen_ai.client.token.usage`` histogram.
        duration: The ``gen_ai.client.operation.duration`` histogram.
    """

    __slots__ = ("_duration", "_sets", "_token_usage")

    def __init__(self, token_usage: Histogram, duration: Histogram) -> None:
        self._token_usage = token_usage
        self._duration = duration
        self._sets: dict[MetricKey, tuple[dict[str, AttributeValue], ...]] = {}

    @classmethod
    def create(cls, meter_provider: MeterProvider | None, scope: str) -> GenAIMetrics:
        """Create the instruments from a meter provider (the global one when ``None``).

        Args:
            meter_provider: The meter provider.
            scope: Instrumentation scope of the meter.

        Returns:
            The instruments.
        """
        meter = metrics.get_meter(scope, meter_provider=meter_provider)
        return cls(
            _histogram(
                meter, METRIC_CLIENT_TOKEN_USAGE, "{token}", _USAGE_DESCRIPTION, TOKEN_USAGE_BUCKETS
            ),
            _histogram(
                meter,
                METRIC_CLIENT_OPERATION_DURATION,
                "s",
                _DURATION_DESCRIPTION,
                OPERATION_DURATION_BUCKETS,
            ),
        )

    def record(
        self,
        attributes: dict[str, AttributeValue],
        duration_s: float,
        input_tokens: int | None,
        output_tokens: int | None,
        error_type: str | None = None,
    ) -> None:
        """Record one call (never raises).

        Args:
            attributes: Operation, provider, request and response model (not modified).
            duration_s: Seconds the call took.
            input_tokens: Input tokens, when known.
            output_tokens: Output tokens, when known.
            error_type: Class of the error that ended the call, if any.
        """
        try:
            if error_type is not None:
                attributes = {**attributes, ERROR_TYPE: error_type}
            self._duration.record(duration_s, attributes)
            if input_tokens is not None:
                self._token_usage.record(input_tokens, {**attributes, GEN_AI_TOKEN_TYPE: "input"})
            if output_tokens is not None:
                self._token_usage.record(output_tokens, {**attributes, GEN_AI_TOKEN_TYPE: "output"})
        except Exception as exc:  # noqa: BLE001 - fail-open
            report("metrics.record", exc)

    def record_call(
        self,
        key: MetricKey,
        duration_s: float,
        input_tokens: int | None,
        output_tokens: int | None,
        error_type: str | None = None,
    ) -> None:
        """Record one call described by its key (never raises).

        Same points as :meth:`record` with the attributes the key stands for; a response model
        that is ``None`` or empty is left out, and so is a ``None`` server address.

        Args:
            key: ``(operation, provider, request model, response model, server address)``.
            duration_s: Seconds the call took.
            input_tokens: Input tokens, when known.
            output_tokens: Output tokens, when known.
            error_type: Class of the error that ended the call, if any.
        """
        if error_type is not None:
            self.record(_attributes_of(key), duration_s, input_tokens, output_tokens, error_type)
            return
        try:
            sets = self._sets.get(key)
            if sets is None:
                base = _attributes_of(key)
                sets = (
                    base,
                    {**base, GEN_AI_TOKEN_TYPE: "input"},
                    {**base, GEN_AI_TOKEN_TYPE: "output"},
                )
                if len(self._sets) >= _MAX_KEYS:
                    self._sets.clear()
                self._sets[key] = sets
            self._duration.record(duration_s, sets[0])
            if input_tokens is not None:
                self._token_usage.record(input_tokens, sets[1])
            if output_tokens is not None:
                self._token_usage.record(output_tokens, sets[2])
        except Exception as exc:  # noqa: BLE001 - fail-open
            report("metrics.record", exc)
