"""Time-ordered checkpoint ids for CrewAI checkpoints: :func:`new_checkpoint_id`.

Stores call the greatest id of a namespace its newest checkpoint, and list a store (every
thread, every writer) newest first by id, so ids must grow with time *and* compare with the
ids of the other writers of a shared store: LangGraph's savers and the handoff checkpoints use
LangGraph's UUID version 6 layout (100 ns ticks since 1582 first). CrewAI checkpoints use the
same layout, from the handoff writer's clock, so they are strictly increasing within the
process and interleave by time with everything else in the store.

Earlier versions wrote UUID version 7 ids (``01…``), which sort below every version 6 id
(``1f…``): within a thread such an id still sorts below every id written after it, so a
store that holds them stays coherent, but a listing of the whole store puts them last.
"""

from __future__ import annotations

from agentmesh.checkpoint.handoff_writer import new_checkpoint_id

__all__ = ["new_checkpoint_id"]
