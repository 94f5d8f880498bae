"""The statements of the PostgreSQL checkpoint store, for one schema.

Every statement names its tables with the schema (quoted), so the pool needs no
``search_path``. Reads return one row per checkpoint carrying its channel values and its
pending writes as parallel arrays (two lateral aggregates), so a ``get`` is one statement and
one round trip; a ``put`` is one call of the ``checkpoint_put`` function the first migration
creates. Listing statements are built for the filters a query uses (a finite set, each
prepared once per connection) rather than one statement with ``$n IS NULL OR …`` conditions,
whose generic plan could not use the primary key.

Example:
    >>> sql = Statements.for_schema("agentmesh")
    >>> sql.put.split("(")[0]
    'SELECT ok, newest FROM "agentmesh".checkpoint_put'
    >>> text, args = list_statement("agentmesh", ListQuery(thread_id="t", namespace=""), None, 10)
    >>> args
    ['t', '', 10]
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Final

from agentmesh.checkpoint.store.base import ListQuery

__all__ = ["READ_COLUMNS", "ListCursor", "Statements", "list_statement"]

_S: Final = "__SCHEMA__"

READ_COLUMNS: Final = (
    "thread_id",
    "ns",
    "checkpoint_id",
    "parent_id",
    "type",
    "checkpoint",
    "metadata",
    "channels",
    "versions",
    "run_id",
    "value_channels",
    "value_types",
    "value_data",
    "write_task_ids",
    "write_task_paths",
    "write_idxs",
    "write_channels",
    "write_types",
    "write_data",
)
"""The columns of every read, in order (``value_*`` and ``write_*`` are arrays)."""

_CHECKPOINT_COLUMNS: Final = (
    "c.thread_id, c.ns, c.checkpoint_id, c.parent_id, c.type, c.checkpoint, c.metadata, "
    "c.channels, c.versions, c.run_id"
)
_READ_TAIL: Final = """
CROSS JOIN LATERAL (
    SELECT array_agg(b.channel) AS channels, array_agg(b.type) AS types,
        array_agg(b.data) AS data
    FROM unnest(c.channels, c.versions) AS v(channel, version)
    CROSS JOIN LATERAL (
        -- LIMIT 1 (the key is unique) keeps this a primary-key probe per channel, never a
        -- scan of every blob of the thread
        SELECT x.channel, x.type, x.data FROM __SCHEMA__.blobs x
        WHERE x.thread_id = c.thread_id AND x.ns = c.ns AND x.channel = v.channel
            AND x.version = v.version
        LIMIT 1
    ) b__SKIP__
) b
__WRITES__"""
_WRITES: Final = """CROSS JOIN LATERAL (
    SELECT array_agg(w.task_id) AS task_ids, array_agg(w.task_path) AS task_paths,
        array_agg(w.idx) AS idxs, array_agg(w.channel) AS channels,
        array_agg(w.type) AS types, array_agg(w.data) AS data
    FROM __SCHEMA__.writes w
    WHERE w.thread_id = c.thread_id AND w.ns = c.ns AND w.checkpoint_id = c.checkpoint_id
) w
"""
_LIST_VALUES: Final = """
), refs AS (
    SELECT p.pos, p.thread_id, p.ns, v.channel, v.version, v.ord
    FROM page p, unnest(p.channels, p.versions) WITH ORDINALITY AS v(channel, version, ord)
), firsts AS (
    SELECT r.thread_id, r.ns, r.channel, r.version, min(r.pos) AS pos
    FROM refs r GROUP BY r.thread_id, r.ns, r.channel, r.version
), found AS MATERIALIZED (
    -- each value the page refers to is looked up once, however many checkpoints share it
    SELECT f.thread_id, f.ns, f.channel, f.version, f.pos, b.type, b.data
    FROM firsts f
    CROSS JOIN LATERAL (
        SELECT x.type, x.data FROM __SCHEMA__.blobs x
        WHERE x.thread_id = f.thread_id AND x.ns = f.ns AND x.channel = f.channel
            AND x.version = f.version
        LIMIT 1
    ) b
), vals AS (
    -- ...and sent with the first checkpoint of the page that refers to it (a chunk of a long
    -- history, a list that did not change): the others get its type and a NULL
    SELECT r.pos, array_agg(r.channel ORDER BY r.ord) AS channels,
        array_agg(f.type ORDER BY r.ord) AS types,
        array_agg(CASE WHEN f.pos = r.pos THEN f.data END ORDER BY r.ord) AS data
    FROM refs r
    JOIN found f ON f.thread_id = r.thread_id AND f.ns = r.ns AND f.channel = r.channel
        AND f.version = r.version
    GROUP BY r.pos
)
"""


_STORED_COLUMNS: Final = (
    "thread_id, ns, checkpoint_id, parent_id, type, checkpoint, metadata, channels, versions, "
    "run_id"
)
"""The ``checkpoints`` columns reads select (by name: a later column changes no statement)."""


def _read(inner: str, order: str = "", skip: str | None = None) -> str:
    """A read: the checkpoints ``inner`` selects (aliased ``c``), with values and writes.

    ``skip`` names the parameter (``$3``…) of a ``text[]`` of channels whose values are left
    out.
    """
    tail = _READ_TAIL.replace(
        "__SKIP__", f"\n    WHERE v.channel <> ALL({skip}::text[])" if skip else ""
    ).replace("__WRITES__", _WRITES)
    return (
        f"SELECT {_CHECKPOINT_COLUMNS}, b.channels, b.types, b.data, w.task_ids, "
        f"w.task_paths, w.idxs, w.channels, w.types, w.data\nFROM ({inner}) c{tail}{order}"
    )


def _read_page(inner: str, order: str) -> str:
    """A listing's page: the checkpoints ``inner`` selects, in ``order``, with values and writes.

    Rows have the columns of :func:`_read`, but a value several checkpoints of the page refer
    to has its data in the first of them only (by ``order``); the later ones carry its type and
    a NULL, for the reader to fill from the earlier row.
    """
    return (
        # only constants and placeholders are joined here: every value is a bound parameter
        f"WITH page AS MATERIALIZED (\n    SELECT c.*, row_number() OVER ({order.strip()}) AS pos"  # noqa: S608
        f"\n    FROM ({inner}) c{_LIST_VALUES}"
        f"SELECT {_CHECKPOINT_COLUMNS}, v.channels, v.types, v.data, w.task_ids, "
        f"w.task_paths, w.idxs, w.channels, w.types, w.data\nFROM page c\n"
        f"LEFT JOIN vals v ON v.pos = c.pos\n{_WRITES}ORDER BY c.pos"
    )


def _quoted(schema: str) -> str:
    return '"' + schema.replace('"', '""') + '"'


def _in_schema(text: str, schema: str) -> str:
    return text.replace(_S, _quoted(schema)).replace("__COLUMNS__", _STORED_COLUMNS)


_PUT: Final = (
    "SELECT ok, newest FROM __SCHEMA__.checkpoint_put($1, $2, $3, $4, $5, $6, $7::jsonb, "
    "$8, $9, $10, $11, $12, $13, $14, $15, $16)"
)
_PUT_WRITES: Final = """
INSERT INTO __SCHEMA__.writes AS w (thread_id, ns, checkpoint_id, task_id, idx, task_path,
    channel, type, data)
SELECT $1, $2, $3, u.task_id, u.idx, u.task_path, u.channel, u.type, u.data
FROM unnest($4::text[], $5::integer[], $6::text[], $7::text[], $8::text[], $9::bytea[])
    AS u(task_id, idx, task_path, channel, type, data)
ON CONFLICT (thread_id, ns, checkpoint_id, task_id, idx) DO UPDATE SET
    task_path = EXCLUDED.task_path, channel = EXCLUDED.channel, type = EXCLUDED.type,
    data = EXCLUDED.data
WHERE EXCLUDED.idx < 0
"""
_GET_NEWEST: Final = _read(
    "SELECT __COLUMNS__ FROM __SCHEMA__.checkpoints WHERE thread_id = $1 AND ns = $2 "
    "ORDER BY checkpoint_id DESC LIMIT 1",
    skip="$3",
)
_GET_ONE: Final = _read(
    "SELECT __COLUMNS__ FROM __SCHEMA__.checkpoints WHERE thread_id = $1 AND ns = $2 "
    "AND checkpoint_id = $3",
    skip="$4",
)
_DELETE_THREADS: Final = """
WITH c AS (DELETE FROM __SCHEMA__.checkpoints WHERE thread_id = ANY($1::text[]) RETURNING 1),
     b AS (DELETE FROM __SCHEMA__.blobs WHERE thread_id = ANY($1::text[])),
     w AS (DELETE FROM __SCHEMA__.writes WHERE thread_id = ANY($1::text[]))
SELECT count(*) FROM c
"""
_DELETE_FOR_RUNS: Final = """
WITH d AS (
    DELETE FROM __SCHEMA__.checkpoints WHERE run_id = ANY($1::text[])
    RETURNING thread_id, ns, checkpoint_id
)
DELETE FROM __SCHEMA__.writes w USING d
WHERE w.thread_id = d.thread_id AND w.ns = d.ns AND w.checkpoint_id = d.checkpoint_id
"""
_COPY_THREAD: Final = """
WITH c AS (
    INSERT INTO __SCHEMA__.checkpoints (thread_id, ns, checkpoint_id, parent_id, type,
        checkpoint, metadata, channels, versions, run_id, written_at)
    SELECT $2, ns, checkpoint_id, parent_id, type, checkpoint, metadata, channels, versions,
        run_id, written_at
    FROM __SCHEMA__.checkpoints WHERE thread_id = $1
    ON CONFLICT DO NOTHING
), b AS (
    INSERT INTO __SCHEMA__.blobs (thread_id, ns, channel, version, type, data)
    SELECT $2, ns, channel, version, type, data FROM __SCHEMA__.blobs WHERE thread_id = $1
    ON CONFLICT DO NOTHING
)
INSERT INTO __SCHEMA__.writes (thread_id, ns, checkpoint_id, task_id, idx, task_path, channel,
    type, data)
SELECT $2, ns, checkpoint_id, task_id, idx, task_path, channel, type, data
FROM __SCHEMA__.writes WHERE thread_id = $1
ON CONFLICT DO NOTHING
"""
_PRUNE: Final = """
WITH keep AS (
    SELECT DISTINCT ON (thread_id, ns) thread_id, ns, checkpoint_id, channels, versions
    FROM __SCHEMA__.checkpoints WHERE thread_id = ANY($1::text[])
    ORDER BY thread_id, ns, checkpoint_id DESC
), kept_blobs AS (
    SELECT k.thread_id, k.ns, v.channel, v.version
    FROM keep k, unnest(k.channels, k.versions) AS v(channel, version)
), c AS (
    DELETE FROM __SCHEMA__.checkpoints x WHERE x.thread_id = ANY($1::text[])
    AND NOT EXISTS (SELECT 1 FROM keep k WHERE k.thread_id = x.thread_id AND k.ns = x.ns
        AND k.checkpoint_id = x.checkpoint_id)
    RETURNING 1
), w AS (
    DELETE FROM __SCHEMA__.writes x WHERE x.thread_id = ANY($1::text[])
    AND NOT EXISTS (SELECT 1 FROM keep k WHERE k.thread_id = x.thread_id AND k.ns = x.ns
        AND k.checkpoint_id = x.checkpoint_id)
), b AS (
    DELETE FROM __SCHEMA__.blobs x WHERE x.thread_id = ANY($1::text[])
    AND NOT EXISTS (SELECT 1 FROM kept_blobs k WHERE k.thread_id = x.thread_id AND k.ns = x.ns
        AND k.channel = x.channel AND k.version = x.version)
)
SELECT count(*) FROM c
"""
_EXPIRE: Final = """
WITH old AS (
    SELECT DISTINCT o.thread_id FROM __SCHEMA__.checkpoints o
    WHERE o.written_at < to_timestamp($1)
    AND NOT EXISTS (SELECT 1 FROM __SCHEMA__.checkpoints n
        WHERE n.thread_id = o.thread_id AND n.written_at >= to_timestamp($1))
), c AS (
    DELETE FROM __SCHEMA__.checkpoints x USING old WHERE x.thread_id = old.thread_id
), b AS (
    DELETE FROM __SCHEMA__.blobs x USING old WHERE x.thread_id = old.thread_id
), w AS (
    DELETE FROM __SCHEMA__.writes x USING old WHERE x.thread_id = old.thread_id
)
SELECT count(*) FROM old
"""
_SIZE: Final = """
SELECT coalesce(sum(pg_total_relation_size(c.oid)), 0)::bigint
FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE n.nspname = $1 AND c.relkind = 'r'
    AND c.relname IN ('checkpoints', 'blobs', 'writes', 'checkpoint_migrations')
"""

_LIST_PAGE: Final = "SELECT __COLUMNS__ FROM __SCHEMA__.checkpoints c$where$order LIMIT $limit"
"""One page of a listing: ``$where``, ``$order`` and ``$limit`` are filled in."""
_METADATA_FILTER: Final = (
    "NOT EXISTS (SELECT 1 FROM jsonb_each($m::jsonb) f "
    "WHERE c.metadata -> f.key IS DISTINCT FROM f.value)"
)
"""Each top-level key of the filter ``$m`` is in the metadata with an equal JSON value."""


@dataclass(frozen=True, slots=True)
class Statements:
    """The fixed statements of a store, with the schema filled in.

    Attributes:
        put: Calls ``checkpoint_put``; returns ``(ok, newest)``.
        put_writes: Inserts writes from arrays (``idx < 0`` replaces, others insert-if-absent).
        get_newest: Reads the newest checkpoint of ``($1 thread, $2 namespace)``, without the
            values of the channels in ``$3``.
        get_one: Reads checkpoint ``$3`` of ``($1 thread, $2 namespace)``, without the values
            of the channels in ``$4``.
        delete_threads: Deletes everything of the threads in ``$1``; returns how many
            checkpoints it deleted.
        delete_for_runs: Deletes the checkpoints (and their writes) of the runs in ``$1``.
        copy_thread: Copies thread ``$1`` to thread ``$2`` (keeping what ``$2`` has).
        prune: Keeps only the newest checkpoint per namespace of the threads in ``$1``;
            returns how many checkpoints it deleted.
        expire: Deletes threads whose newest write is before ``$1`` (Unix seconds); returns
            their count.
        size: Sums ``pg_total_relation_size`` of the tables of schema ``$1``.
    """

    put: str
    put_writes: str
    get_newest: str
    get_one: str
    delete_threads: str
    delete_for_runs: str
    copy_thread: str
    prune: str
    expire: str
    size: str

    @classmethod
    def for_schema(cls, schema: str) -> Statements:
        """Fill the schema into every statement.

        Args:
            schema: The store's schema (a plain identifier).

        Returns:
            The statements.
        """
        return cls(
            put=_in_schema(_PUT, schema),
            put_writes=_in_schema(_PUT_WRITES, schema),
            get_newest=_in_schema(_GET_NEWEST, schema),
            get_one=_in_schema(_GET_ONE, schema),
            delete_threads=_in_schema(_DELETE_THREADS, schema),
            delete_for_runs=_in_schema(_DELETE_FOR_RUNS, schema),
            copy_thread=_in_schema(_COPY_THREAD, schema),
            prune=_in_schema(_PRUNE, schema),
            expire=_in_schema(_EXPIRE, schema),
            size=_SIZE,
        )


@dataclass(frozen=True, slots=True)
class ListCursor:
    """Where the previous page of a listing ended (its last checkpoint).

    Attributes:
        checkpoint_id: Its checkpoint id.
        thread_id: Its thread.
        namespace: Its namespace.
    """

    checkpoint_id: str
    thread_id: str
    namespace: str


def list_statement(
    schema: str, query: ListQuery, after: ListCursor | None, page: int
) -> tuple[str, list[Any]]:
    """Build the statement reading one page of a listing, newest first.

    Pages follow each other by keyset (``(checkpoint_id, thread_id, ns) < last row``), so no
    connection or cursor stays open between pages. The columns the query fixes by equality are
    left out of the ordering and of the keyset, so a listing of one thread and namespace walks
    the primary key backwards.

    Args:
        schema: The store's schema.
        query: The filters.
        after: The last checkpoint of the previous page, or None for the first page.
        page: The most rows to read.

    Returns:
        The statement and its arguments.
    """
    where: list[str] = []
    args: list[Any] = []

    def arg(value: Any) -> str:
        args.append(value)
        return f"${len(args)}"

    if query.thread_id is not None:
        where.append(f"c.thread_id = {arg(query.thread_id)}")
    if query.namespace is not None:
        where.append(f"c.ns = {arg(query.namespace)}")
    if query.checkpoint_id is not None:
        where.append(f"c.checkpoint_id = {arg(query.checkpoint_id)}")
    if query.before is not None:
        where.append(f"c.checkpoint_id < {arg(query.before)}")
    if query.metadata:
        wanted = json.dumps(dict(query.metadata), separators=(",", ":"))
        where.append(_METADATA_FILTER.replace("$m", arg(wanted)))
    keys = ["c.checkpoint_id"]
    values: list[Any] = [] if after is None else [after.checkpoint_id]
    if query.thread_id is None:
        keys.append("c.thread_id")
        values.extend([] if after is None else [after.thread_id])
    if query.namespace is None:
        keys.append("c.ns")
        values.extend([] if after is None else [after.namespace])
    if after is not None:
        placeholders = ", ".join(arg(v) for v in values)
        where.append(f"({', '.join(keys)}) < ({placeholders})")
    order = " ORDER BY " + ", ".join(f"{k} DESC" for k in keys)
    condition = " WHERE " + " AND ".join(where) if where else ""
    limit = arg(page)
    inner = _LIST_PAGE.replace("$where", condition).replace("$order", order)
    inner = inner.replace("$limit", limit)
    return _in_schema(_read_page(inner, order), schema), args
