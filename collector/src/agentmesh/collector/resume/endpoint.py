"""``GET /v1/runs/{run}/resume``: a run's resume plan over HTTP, and the lookup behind it.

``{run}`` is a run id or a trace id; a unique prefix of either works, as in
``agentmesh graph``. Answers ``200`` with the plan (JSON, see
:meth:`~agentmesh.collector.resume.plan.ResumePlan.to_json`), ``404`` when no stored run
matches, ``409`` when several do; the error body is ``{"error": "…"}`` in plain words.
"""

from __future__ import annotations

import json
from dataclasses import replace
from typing import Final

from aiohttp import web

from agentmesh.collector.recovery.policy import RecoveryPolicy
from agentmesh.collector.resume.plan import ResumePlan, resume_plan
from agentmesh.collector.store.base import SpanStore
from agentmesh.collector.store.lookup import RunNotFoundError, find_run

__all__ = ["RESUME_PATH", "RunNotFoundError", "find_plan", "resume_routes"]

RESUME_PATH: Final = "/v1/runs/{run}/resume"
"""Where a run's resume plan is served."""


async def find_plan(
    store: SpanStore, run: str, *, policy: RecoveryPolicy | None = None
) -> ResumePlan:
    """Find a stored run and work out its resume plan.

    Args:
        store: The open span store.
        run: A run id or trace id, or a unique prefix of one.
        policy: Which detection types stop a run (the defaults when ``None``).

    Returns:
        The plan.

    Raises:
        RunNotFoundError: No run, or several, match ``run``.
    """
    trace_id = (await find_run(store, run)).trace_id
    plan = resume_plan(await store.spans(trace_id), await store.detections(trace_id), policy=policy)
    if plan is None:
        raise RunNotFoundError(run, 0)
    later = await store.resumptions(plan.run_id, limit=1)
    return replace(plan, resumed_by=later[0].run_id) if later else plan


def resume_routes(store: SpanStore, *, policy: RecoveryPolicy | None = None) -> list[web.RouteDef]:
    """Return the route serving resume plans at :data:`RESUME_PATH`.

    Args:
        store: The collector's span store.
        policy: The collector's recovery policy (which detections stop runs).

    Returns:
        The routes to mount on the OTLP/HTTP receiver.
    """

    async def handler(request: web.Request) -> web.Response:
        try:
            plan = await find_plan(store, request.match_info["run"], policy=policy)
        except RunNotFoundError as exc:
            status = 404 if exc.matches == 0 else 409
            return web.json_response({"error": str(exc)}, status=status)
        return web.json_response(plan.to_json(), dumps=json.dumps)

    return [web.route("GET", RESUME_PATH, handler)]
