"""The route table the collector publishes to applications (issue 7).

The trainer publishes tables (:meth:`RouteTableState.publish`); the store keeps the last one in
memory or in Redis (:mod:`~agentmesh.collector.routing.redis_table_state`: shared by every
collector, kept across restarts) and serves it, with the recovery engine's open circuit breakers
merged in, at ``GET /v1/route-table`` (:func:`route_table_routes`: ETags, long polls).
Applications follow it in the background
(:mod:`agentmesh.instrumentation.route_table`).
"""

from typing import TYPE_CHECKING

from agentmesh.core.lazy import lazy_exports

if TYPE_CHECKING:
    from agentmesh.collector.routing.endpoint import (
        MAX_WAIT_SECONDS,
        ROUTE_TABLE_PATH,
        route_table_routes,
    )
    from agentmesh.collector.routing.factory import make_route_table_state
    from agentmesh.collector.routing.redis_table_state import RedisRouteTableState
    from agentmesh.collector.routing.table_state import (
        MemoryRouteTableState,
        RouteTableState,
        TableChange,
        checked,
        served_table,
    )

__all__ = [
    "MAX_WAIT_SECONDS",
    "ROUTE_TABLE_PATH",
    "MemoryRouteTableState",
    "RedisRouteTableState",
    "RouteTableState",
    "TableChange",
    "checked",
    "make_route_table_state",
    "route_table_routes",
    "served_table",
]

__getattr__, __dir__ = lazy_exports(
    globals(),
    {
        "MAX_WAIT_SECONDS": "agentmesh.collector.routing.endpoint",
        "MemoryRouteTableState": "agentmesh.collector.routing.table_state",
        "ROUTE_TABLE_PATH": "agentmesh.collector.routing.endpoint",
        "RedisRouteTableState": "agentmesh.collector.routing.redis_table_state",
        "RouteTableState": "agentmesh.collector.routing.table_state",
        "TableChange": "agentmesh.collector.routing.table_state",
        "checked": "agentmesh.collector.routing.table_state",
        "make_route_table_state": "agentmesh.collector.routing.factory",
        "route_table_routes": "agentmesh.collector.routing.endpoint",
        "served_table": "agentmesh.collector.routing.table_state",
    },
)
