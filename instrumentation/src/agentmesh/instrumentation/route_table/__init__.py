"""The collector's route table, followed in-process (fail-open).

The collector publishes a route table (routing modes and trade-offs by task class, observed
model statistics, open circuit breakers, the learned predictor) at ``GET /v1/route-table``. A
background thread keeps the latest one in memory (:class:`RouteTableClient`, long polling with
ETags) and in a cache file; the router reads it with :func:`current_route_table`, which never
blocks and never raises.

With the collector unreachable the last good table is kept (across restarts, through the cache
file, ``AGENTMESH_ROUTE_TABLE_CACHE``); with following off (``AGENTMESH_ROUTE_TABLE_SYNC=false``,
or no collector named) the table is :data:`~agentmesh.router.table.BUNDLED_TABLE`.

Example:
    >>> from agentmesh.instrumentation import route_table
    >>> from agentmesh.instrumentation.settings import InstrumentationSettings
    >>> off = InstrumentationSettings.load(route_table_sync=False)
    >>> route_table.configure_route_table(settings=off) is None  # not followed
    True
    >>> route_table.current_route_table().version
    0
    >>> route_table.shutdown_route_table()
"""

from agentmesh.instrumentation.route_table._cache import (
    default_cache_path,
    load_table,
    save_table,
)
from agentmesh.instrumentation.route_table._client import (
    ROUTE_TABLE_PATH,
    RouteTableClient,
    RouteTableStats,
    route_table_url,
)
from agentmesh.instrumentation.route_table._runtime import (
    cache_path,
    configure_route_table,
    current_route_table,
    route_table_client,
    route_table_target,
    shutdown_route_table,
)

__all__ = [
    "ROUTE_TABLE_PATH",
    "RouteTableClient",
    "RouteTableStats",
    "cache_path",
    "configure_route_table",
    "current_route_table",
    "default_cache_path",
    "load_table",
    "route_table_client",
    "route_table_target",
    "route_table_url",
    "save_table",
    "shutdown_route_table",
]
