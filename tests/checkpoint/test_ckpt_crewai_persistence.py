"""AgentMeshFlowPersistence: real CrewAI flows with @persist on memory, DuckDB and Redis stores.

A flow whose state holds a datetime, a UUID and a nested pydantic model runs ``@start`` then
``@listen``; a new flow (and a new persistence on the same storage, as another process would
open it) reloads it by id. Also: a state model that gained fields loads old saves, failed writes
raise (or only log), pending human feedback round-trips, and CrewAI can rebuild the persistence
from its serialised form.
"""

from __future__ import annotations

import os

for _name in ("CREWAI_DISABLE_TELEMETRY", "CREWAI_DISABLE_TRACKING"):
    os.environ.setdefault(_name, "true")
os.environ.setdefault("CREWAI_TRACING_ENABLED", "false")

import uuid  # noqa: E402
from collections.abc import Callable, Iterator, Mapping  # noqa: E402
from datetime import UTC, datetime  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402
from uuid import UUID  # noqa: E402

import pytest  # noqa: E402
from crewai.flow.async_feedback.types import PendingFeedbackContext  # noqa: E402
from crewai.flow.flow import Flow, FlowState, listen, start  # noqa: E402
from crewai.flow.persistence import persist  # noqa: E402
from pydantic import BaseModel, ConfigDict, Field  # noqa: E402
from structlog.testing import capture_logs  # noqa: E402

from agentmesh.checkpoint.crewai import FLOW_NAMESPACE, AgentMeshFlowPersistence  # noqa: E402
from agentmesh.checkpoint.store import Blob, CheckpointRecord, MemoryCheckpointStore  # noqa: E402
from agentmesh.core.errors import CheckpointError, CheckpointSerdeError, ConfigError  # noqa: E402

pytestmark = pytest.mark.filterwarnings(r"ignore::DeprecationWarning:crewai\.")

WHEN = datetime(2026, 1, 2, 3, 4, 5, 678000, tzinfo=UTC)
SINCE = datetime(2020, 5, 6, tzinfo=UTC)
REF = UUID("12345678-1234-5678-1234-567812345678")


@pytest.fixture(scope="module", autouse=True)
def crewai_storage(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    path = tmp_path_factory.mktemp("crewai-storage")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("CREWAI_STORAGE_DIR", str(path))
        yield path


class Address(BaseModel):
    city: str
    since: datetime


class ReportState(FlowState):
    started_at: datetime | None = None
    ref: UUID | None = None
    address: Address | None = None
    steps: list[str] = Field(default_factory=lambda: [])


class Address2(Address):
    postcode: str = "0000"


class ReportStateV2(FlowState):
    """ReportState after a release: fields added, with defaults (nested ones too)."""

    started_at: datetime | None = None
    ref: UUID | None = None
    address: Address2 | None = None
    steps: list[str] = Field(default_factory=lambda: [])
    priority: int = 3
    tags: list[str] = Field(default_factory=lambda: ["new"])


def report_flow(persistence: AgentMeshFlowPersistence) -> type[Flow[ReportState]]:
    class ReportFlow(Flow[ReportState]):
        @start()
        def gather(self) -> None:
            self.state.steps.append("gather")
            if self.state.started_at is None:
                self.state.started_at = WHEN
                self.state.ref = REF
                self.state.address = Address(city="Oslo", since=SINCE)

        @listen(gather)
        def publish(self) -> str:
            self.state.steps.append("publish")
            return "published"

    persist(persistence)(ReportFlow)  # class-level @persist (stamps the class in place)
    return ReportFlow


PersistenceFactory = Callable[[], AgentMeshFlowPersistence]


@pytest.fixture(params=["memory", "duckdb", "redis", "redis_sync"])
def make_persistence(
    request: pytest.FixtureRequest, tmp_path: Path
) -> Iterator[PersistenceFactory]:
    """A factory of persistences over the same storage (as successive processes would open)."""
    made: list[AgentMeshFlowPersistence] = []
    cleanup: Callable[[], None] | None = None
    if request.param == "memory":
        store = MemoryCheckpointStore()

        def new_store() -> object:
            return store
    elif request.param == "duckdb":
        from agentmesh.checkpoint.store.duckdb import DuckDBCheckpointStore

        path = tmp_path / "flows.duckdb"

        def new_store() -> object:
            return DuckDBCheckpointStore(path)
    else:
        host, port = request.getfixturevalue("redis_address")
        from agentmesh.checkpoint.store.redis import (
            RedisCheckpointStore,
            SyncRedisCheckpointStore,
        )

        url = f"redis://{host}:{port}/0"
        prefix = f"test:ckpt-crewai:{uuid.uuid4().hex}"
        sync = request.param == "redis_sync"

        def new_store() -> object:
            if sync:
                return SyncRedisCheckpointStore(url, prefix=prefix)
            return RedisCheckpointStore(url, prefix=prefix)

        def remove_keys() -> None:
            import redis

            client = redis.Redis(host=host, port=port, db=0)
            try:
                keys = list(client.scan_iter(match=f"{prefix}*"))  # pyright: ignore[reportUnknownMemberType, reportUnknownArgumentType, reportUnknownVariableType]
                if keys:
                    client.delete(*keys)  # pyright: ignore[reportUnknownArgumentType]
            finally:
                client.close()

        cleanup = remove_keys

    def factory() -> AgentMeshFlowPersistence:
        persistence = AgentMeshFlowPersistence(new_store())
        made.append(persistence)
        return persistence

    yield factory
    for persistence in made:
        persistence.close()
    if cleanup is not None:
        cleanup()


def test_flow_state_with_datetime_uuid_and_nested_model_saves_and_reloads(
    make_persistence: PersistenceFactory,
) -> None:
    first = make_persistence()
    flow = report_flow(first)()
    assert flow.kickoff() == "published"
    flow_id = flow.state.id

    stored = first.load_state(flow_id)
    assert stored is not None
    assert stored["started_at"] == WHEN
    assert isinstance(stored["ref"], UUID)
    assert stored["ref"] == REF
    assert stored["address"] == {"city": "Oslo", "since": SINCE}
    assert stored["steps"] == ["gather", "publish"]
    first.close()

    # Another process: a new persistence on the same storage, a new flow reloaded by id.
    second = make_persistence()
    again = report_flow(second)()
    again.kickoff(inputs={"id": flow_id})
    assert again.state.id == flow_id
    assert again.state.started_at == WHEN
    assert again.state.ref == REF
    assert again.state.address == Address(city="Oslo", since=SINCE)
    assert again.state.steps == ["gather", "publish", "gather", "publish"]


def test_one_checkpoint_per_save_with_the_method_in_metadata() -> None:
    store = MemoryCheckpointStore()
    with AgentMeshFlowPersistence(store) as persistence:
        flow = report_flow(persistence)()
        flow.kickoff()
        flow_id = flow.state.id

    async def listing() -> list[tuple[str, Mapping[str, Any], str | None]]:
        from agentmesh.checkpoint.store import ListQuery

        return [
            (item.record.namespace, item.record.metadata, item.record.parent_id)
            async for item in store.list(ListQuery(thread_id=flow_id))
        ]

    import asyncio

    saves = asyncio.run(listing())
    assert [(ns, meta["method"]) for ns, meta, _ in saves] == [
        (FLOW_NAMESPACE, "publish"),
        (FLOW_NAMESPACE, "gather"),
    ]
    assert all(meta["source"] == "crewai.flow" for _, meta, _ in saves)
    assert saves[1][2] is None  # the first save has no parent; the second follows it
    assert saves[0][2] is not None


def test_fields_added_to_the_state_model_load_from_old_saves(
    make_persistence: PersistenceFactory,
) -> None:
    persistence = make_persistence()
    flow = report_flow(persistence)()
    flow.kickoff()
    flow_id = flow.state.id

    class ReportFlowV2(Flow[ReportStateV2]):
        @start()
        def gather(self) -> None:
            self.state.steps.append("v2")

    upgraded = ReportFlowV2(persistence=persistence)
    upgraded.kickoff(inputs={"id": flow_id})
    assert upgraded.state.priority == 3
    assert upgraded.state.tags == ["new"]
    assert upgraded.state.address == Address2(city="Oslo", since=SINCE, postcode="0000")
    assert upgraded.state.started_at == WHEN
    assert upgraded.state.steps == ["gather", "publish", "v2"]


def test_dict_state_keeps_datetime_and_uuid_types() -> None:
    with AgentMeshFlowPersistence.from_url("memory://") as persistence:
        persistence.save_state("flow-1", "step", {"id": "flow-1", "at": WHEN, "ref": REF})
        assert persistence.load_state("flow-1") == {"id": "flow-1", "at": WHEN, "ref": REF}
        assert persistence.load_state("unknown-flow") is None


class _FailingStore(MemoryCheckpointStore):
    """A memory store whose writes fail like a backend losing its connection."""

    async def put(
        self,
        record: CheckpointRecord,
        blobs: Mapping[tuple[str, str], Blob],
        *,
        extends: str | None = None,
        check_extends: bool = False,
    ) -> None:
        raise ConnectionResetError("connection reset by peer")


def _chain(error: BaseException) -> list[BaseException]:
    chain: list[BaseException] = []
    current: BaseException | None = error
    while current is not None:
        chain.append(current)
        current = current.__cause__
    return chain


def test_failed_write_raises_checkpoint_error() -> None:
    with AgentMeshFlowPersistence(_FailingStore()) as persistence:
        with pytest.raises(CheckpointError, match="connection reset by peer") as direct:
            persistence.save_state("flow-2", "step", {"id": "flow-2"})
        assert "memory" in str(direct.value)
        assert "flow-2" in str(direct.value)

        flow = report_flow(persistence)()
        with pytest.raises(Exception) as raised:  # noqa: PT011 - CrewAI wraps it, see below
            flow.kickoff()
        # CrewAI 1.15 wraps persistence errors in RuntimeError; ours is its cause.
        assert any(isinstance(item, CheckpointError) for item in _chain(raised.value))
        assert flow.state.steps == ["gather"]  # the listener never ran


def test_failed_write_only_logs_when_configured() -> None:
    with AgentMeshFlowPersistence(_FailingStore(), on_error="log") as persistence:
        flow = report_flow(persistence)()
        with capture_logs() as logs:
            assert flow.kickoff() == "published"
    failures = [entry for entry in logs if entry["event"] == "crewai_checkpoint_write_failed"]
    assert [entry["method"] for entry in failures] == ["gather", "publish"]
    assert all(entry["log_level"] == "error" for entry in failures)


class _Opaque:
    """A value pydantic cannot write as JSON."""


class _Holding(BaseModel):
    model_config = ConfigDict(arbitrary_types_allowed=True)
    note: str = "ok"
    blob: object = None


def test_a_state_field_that_cannot_be_stored_is_named_and_only_logged_when_configured() -> None:
    refused = pytest.raises(CheckpointSerdeError, match="field 'blob' of flow state _Holding")
    with AgentMeshFlowPersistence.from_url("memory://") as persistence, refused:
        persistence.save_state("flow-o", "step", _Holding(blob=_Opaque()))
    logging = AgentMeshFlowPersistence.from_url("memory://", on_error="log")
    with logging as persistence, capture_logs() as logs:
        persistence.save_state("flow-o", "step", _Holding(blob=_Opaque()))  # goes on
    (failure,) = [e for e in logs if e["event"] == "crewai_checkpoint_write_failed"]
    assert "field 'blob'" in failure["error"]


def test_on_error_is_validated_and_a_store_or_url_is_required() -> None:
    with pytest.raises(ValueError, match="on_error"):
        AgentMeshFlowPersistence.from_url("memory://", on_error="ignore")  # pyright: ignore[reportArgumentType]
    with pytest.raises(ConfigError, match="store or a url"):
        AgentMeshFlowPersistence()


def test_pending_feedback_round_trip(make_persistence: PersistenceFactory) -> None:
    persistence = make_persistence()
    flow_id = f"flow-{uuid.uuid4().hex}"
    context = PendingFeedbackContext(
        flow_id=flow_id,
        flow_class="tests.ReviewFlow",
        method_name="review",
        method_output={"draft": "Otters hold hands."},
        message="Approve the draft?",
        emit=["approved", "rejected"],
        requested_at=WHEN,
    )
    assert persistence.load_pending_feedback(flow_id) is None
    state = ReportState(id=flow_id, started_at=WHEN, ref=REF)
    persistence.save_pending_feedback(flow_id, context, state)

    loaded = persistence.load_pending_feedback(flow_id)
    assert loaded is not None
    loaded_state, loaded_context = loaded
    assert loaded_state["ref"] == REF
    assert loaded_state["started_at"] == WHEN
    assert loaded_context.method_name == "review"
    assert loaded_context.method_output == {"draft": "Otters hold hands."}
    assert loaded_context.emit == ["approved", "rejected"]
    assert loaded_context.requested_at == WHEN
    # The paused state is the flow's newest state too.
    assert persistence.load_state(flow_id) == loaded_state

    persistence.clear_pending_feedback(flow_id)
    assert persistence.load_pending_feedback(flow_id) is None
    assert persistence.load_state(flow_id) == loaded_state


def test_crewai_rebuilds_the_persistence_from_its_serialised_form(tmp_path: Path) -> None:
    from crewai.flow.runtime import _resolve_persistence  # pyright: ignore[reportPrivateUsage]

    url = f"duckdb://{tmp_path / 'rebuilt.duckdb'}"
    with AgentMeshFlowPersistence.from_url(url) as persistence:
        persistence.save_state("flow-3", "step", {"id": "flow-3", "ref": REF})
        dumped = persistence.model_dump(mode="json")
    assert dumped["url"] == url
    assert dumped["persistence_type"] == "AgentMeshFlowPersistence"
    rebuilt = _resolve_persistence(dumped)
    # By name: with --doctest-modules the class may be registered from a second import.
    assert type(rebuilt).__name__ == "AgentMeshFlowPersistence"
    with rebuilt:
        assert rebuilt.load_state("flow-3") == {"id": "flow-3", "ref": REF}


def test_persist_decorator_with_a_redis_url(redis_address: tuple[str, int]) -> None:
    host, port = redis_address
    persistence = AgentMeshFlowPersistence.from_url(f"redis://{host}:{port}/0")

    @persist(persistence)
    class StampFlow(Flow[ReportState]):
        @start()
        def stamp(self) -> None:
            self.state.started_at = WHEN
            self.state.ref = REF

    flow = StampFlow()
    flow.kickoff()
    flow_id = flow.state.id
    try:
        stored = persistence.load_state(flow_id)
        assert stored is not None
        assert stored["ref"] == REF
        assert stored["started_at"] == WHEN
    finally:
        persistence.delete(flow_id)
    assert persistence.load_state(flow_id) is None
    persistence.close()
