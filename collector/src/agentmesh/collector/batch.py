"""A batch of decoded spans in the forms the pipeline's stages want.

Decoding a request yields three views of its spans: the graph nodes the builder needs
(:class:`~agentmesh.collector.graph.node.GraphNode`), the store's columns as an Arrow table
(appended to DuckDB without touching Python objects again), and the full
:class:`~agentmesh.collector.model.SpanRecord` objects other stores and tests use. A decode
worker process computes the first two and ships them; the records then travel as pickled bytes
and are only unpickled if something asks for them. A batch made in-process from records
derives the other views on first use.
"""

from __future__ import annotations

import pickle
from collections.abc import Sequence
from typing import Any, TypeAlias

from agentmesh.collector.graph.node import GraphNode, graph_node
from agentmesh.collector.model import SpanRecord
from agentmesh.core.errors import CollectorError

__all__ = ["ArrowTable", "SpanBatch", "batch_of"]

ArrowTable: TypeAlias = Any
"""A ``pyarrow.Table`` (pyarrow ships no type information)."""


class SpanBatch:
    """The decoded spans of one request.

    Build one with :meth:`of_records` (in-process) or :meth:`of_parts` (from a decode
    worker). Views not given are computed on first use and kept.

    Example:
        >>> batch = SpanBatch.of_records([])
        >>> len(batch), batch.nodes
        (0, [])
    """

    __slots__ = ("_blob", "_count", "_nodes", "_records", "_table")

    def __init__(
        self,
        count: int,
        *,
        nodes: list[GraphNode] | None = None,
        table: ArrowTable | None = None,
        records: list[SpanRecord] | None = None,
        records_blob: bytes | None = None,
    ) -> None:
        self._count = count
        self._nodes = nodes
        self._table = table
        self._records = records
        self._blob = records_blob

    @classmethod
    def of_records(cls, records: list[SpanRecord]) -> SpanBatch:
        """Wrap spans decoded in this process.

        Args:
            records: The spans.

        Returns:
            The batch.
        """
        return cls(len(records), records=records)

    @classmethod
    def of_parts(
        cls,
        nodes: list[GraphNode],
        table: ArrowTable | None,
        records_blob: bytes | None,
    ) -> SpanBatch:
        """Assemble a batch from what a decode worker computed.

        Args:
            nodes: One graph node per span.
            table: The store columns, when the worker built them.
            records_blob: The pickled span records, when the worker shipped them.

        Returns:
            The batch.
        """
        return cls(len(nodes), nodes=nodes, table=table, records_blob=records_blob)

    def __len__(self) -> int:
        return self._count

    @property
    def nodes(self) -> list[GraphNode]:
        """One graph node per span, in request order."""
        if self._nodes is None:
            self._nodes = [graph_node(span) for span in self.records()]
        return self._nodes

    @property
    def table(self) -> ArrowTable:
        """The spans as the store's Arrow columns (see ``store.span_table``)."""
        if self._table is None:
            from agentmesh.collector.store.span_table import span_table

            self._table = span_table(self.records())
        return self._table

    @property
    def has_table(self) -> bool:
        """Whether the Arrow columns are already built (no work to ask for them)."""
        return self._table is not None

    def records(self) -> list[SpanRecord]:
        """The full span records, in request order.

        Returns:
            The records.

        Raises:
            CollectorError: The batch was shipped without its records.
        """
        if self._records is None:
            if self._blob is None:
                raise CollectorError("this span batch was decoded without its span records")
            records: list[SpanRecord] = pickle.loads(self._blob)  # noqa: S301 - our own worker's bytes
            self._records = records
            self._blob = None
        return self._records


def batch_of(spans: Sequence[SpanRecord] | SpanBatch) -> SpanBatch:
    """Return ``spans`` as a :class:`SpanBatch` (a list of records is wrapped).

    Args:
        spans: A batch, or decoded span records.

    Returns:
        The batch.
    """
    if isinstance(spans, SpanBatch):
        return spans
    return SpanBatch.of_records(list(spans))
