"""Smoke test of ``bench/checkpoint.py``'s harness: pure functions and an in-memory run.

No peer is installed and no service is used: the runner drives langgraph's ``InMemorySaver``
(twice, as two contenders) through a short thread. Timings are not asserted, only that the
harness measures what it claims (sample counts, checks of the answers, the JSON shape).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import ormsgpack
import pytest

BENCH = Path(__file__).resolve().parents[2] / "bench"
sys.path.insert(0, str(BENCH))

from _checkpoint import floor, peers, report, stats  # noqa: E402
from _checkpoint.run import Cell, Config, rotated, run_config  # noqa: E402
from _checkpoint.savers import BY_NAME, Backends, SaverSpec  # noqa: E402
from _checkpoint.workload import SIZES, TextSource, make_plan  # noqa: E402


def _cell(put_us: float, get_us: float, list_us: float, stored: int | None) -> Cell:
    cell = Cell(threads=1, stored_bytes=stored)
    for k in range(1, 101):  # k/100 spread: p50 is 0.5x and p99 0.99x the base
        cell.put_ns.append(int(put_us * 10 * k))
        cell.writes_ns.append(int(put_us * 10 * k))
        cell.get_ns.append(int(get_us * 10 * k))
        cell.list_ns.append(int(list_us * 10 * k))
    return cell


def _results(ours_pg: float, redis: float, duckdb: float) -> stats.Results:
    results: dict[tuple[str, int], dict[str, Cell]] = {}
    for size in SIZES:
        for steps in (stats.SHORT, stats.LONG):
            results[(size, steps)] = {
                "agentmesh_postgres": _cell(ours_pg, ours_pg, 10_000, 400),
                "official_postgres": _cell(1000, 1000, 20_000, 1000),
                "agentmesh_redis": _cell(redis, redis, 5_000, 300),
                "agentmesh_duckdb": _cell(duckdb, duckdb, 8_000, 500),
                "official_sqlite": _cell(600, 600, 9_000, 2000),
            }
    return results


def test_percentile_is_nearest_rank() -> None:
    assert stats.percentile([], 0.5) is None
    assert stats.percentile([3.0, 1.0, 2.0], 0.5) == 2.0
    assert stats.percentile(list(range(1, 101)), 0.99) == 99
    assert stats.percentile(list(range(1, 101)), 1.0) == 100
    assert stats.percentile([7.0], 0.01) == 7.0


def test_rotation_gives_every_saver_each_position() -> None:
    names = ["a", "b", "c"]
    firsts = {rotated(names, k)[0] for k in range(3)}
    assert firsts == {"a", "b", "c"}
    assert rotated(names, 4) == ["b", "c", "a"]
    assert rotated([], 2) == []


def test_summary_has_the_issue_shape_and_ratios() -> None:
    out = stats.summary(_results(400, 100, 500), {"langgraph-checkpoint": "4.3.2"}, True, {})
    json.dumps(out)  # the last line must serialise
    assert set(out["p50_put_us"]) == {
        "agentmesh_postgres", "official_postgres", "agentmesh_redis", "agentmesh_duckdb",
        "official_sqlite",
    }  # fmt: skip
    assert out["p50_put_us"]["official_postgres"] == {"1KB": 500.0, "100KB": 500.0, "1MB": 500.0}
    assert out["bytes_200_steps"]["agentmesh_postgres"]["1MB"] == 400
    assert out["ratio_vs_official_postgres"] == {"put": 0.4, "get": 0.4, "list": 0.5, "bytes": 0.4}
    assert out["goals"] == {"postgres": True, "duckdb": True, "redis": True}
    assert out["goal_met"] is True
    assert out["quick"] is True
    assert "errors" not in out


def test_goals_fail_when_ratios_are_too_high() -> None:
    out = stats.summary(_results(600, 700, 650), {}, False, {})
    assert out["ratio_vs_official_postgres"]["put"] == 0.6
    assert out["goals"] == {"postgres": False, "duckdb": False, "redis": False}
    assert out["goal_met"] is False
    assert "quick" not in out


def test_a_missing_saver_means_not_measured() -> None:
    results = _results(400, 100, 500)
    for cells in results.values():
        del cells["agentmesh_redis"]  # type: ignore[attr-defined]
    verdicts = {g.name: g.met for g in stats.goals(stats.reduce(results))}
    assert verdicts == {"postgres": True, "duckdb": True, "redis": None}
    assert any(
        "not measured" in line for line in report.goal_lines(stats.goals(stats.reduce(results)))
    )


def test_formatting_and_table() -> None:
    assert report.fmt_us(None) == "-"
    assert report.fmt_us(1234.4) == "1,234"
    assert report.fmt_us(250_000) == "250 ms"
    assert report.fmt_bytes(1_500_000) == "1.50 MB"
    assert report.fmt_bytes(34_900_000) == "34.9 MB"
    assert report.fmt_bytes(512) == "512 B"
    figs = stats.reduce(_results(400, 100, 500))
    table = report.table(figs, list(BY_NAME.values()), "t")
    assert table.row_count == len(figs) * 5


def test_text_is_deterministic_and_compressible() -> None:
    a, b = TextSource(1).text(20_000), TextSource(1).text(20_000)
    assert a == b
    assert TextSource(2).text(20_000) != a  # each thread of a config gets its own seed
    assert 19_000 <= len(a) <= 21_000
    zstandard = pytest.importorskip("zstandard")
    assert len(zstandard.ZstdCompressor().compress(a.encode())) < len(a) / 2


@pytest.mark.parametrize("size", list(SIZES))
def test_state_size_is_close_to_the_label(size: str) -> None:
    plan = make_plan(size, 12, seed=3)
    packed = len(ormsgpack.packb([plan.messages, plan.documents]))
    assert 0.8 * SIZES[size] <= packed <= 1.2 * SIZES[size]
    assert len(plan.steps) == 11
    assert sum(1 for s in plan.steps if s.document is not None) == 1  # step 10


def test_runner_drives_and_checks_two_in_memory_savers(tmp_path: Path) -> None:
    memory = BY_NAME["langgraph_memory"]
    other = SaverSpec("memory_b", "memory b", "reference", memory.module, memory.attr, memory.make)
    backends = Backends("postgresql://unused", "redis://unused", tmp_path, "t")
    config = Config("1KB", steps=12, threads=2, get_every=2, list_reps=2)
    cells = run_config([memory, other], backends, config, seed=1)
    for cell in cells.values():
        assert cell.errors == []
        assert cell.threads == 2
        assert len(cell.put_ns) == 2 * 12
        assert len(cell.writes_ns) == 2 * 11
        assert len(cell.get_ns) == 2 * 5  # steps 2, 4, ..., 10 of 11
        assert len(cell.list_ns) == 2 * 2
        assert cell.stored_bytes is None


def test_a_failing_saver_is_dropped_and_reported(tmp_path: Path) -> None:
    memory = BY_NAME["langgraph_memory"]
    backends = Backends("postgresql://unused", "redis://unused", tmp_path, "t")
    plan = make_plan("1KB", 6, seed=1)
    plan.steps[1].message["content"] = object()  # the serializer refuses it at step 2
    cells = run_config([memory], backends, Config("1KB", 6, 2, 1, 1), seed=1, plan=plan)
    cell = cells["langgraph_memory"]
    assert cell.threads == 0
    assert len(cell.errors) == 1
    assert cell.errors[0].startswith("step 2: ")
    assert len(cell.put_ns) == 2  # the input checkpoint and step 1, then nothing more
    assert cell.list_ns == []


def test_an_unavailable_saver_says_why() -> None:
    memory = BY_NAME["langgraph_memory"]
    spec = SaverSpec("x", "x", "reference", memory.module, "NoSuchSaver", memory.make)
    assert spec.missing() == "langgraph.checkpoint.memory.NoSuchSaver missing"
    assert memory.missing() is None


def test_peer_cache_key_depends_on_the_requirements() -> None:
    assert peers.cache_key() == peers.cache_key()
    assert peers.cache_key(("a==1",)) != peers.cache_key(("a==2",))
    assert any(r.startswith("langgraph-checkpoint-postgres==") for r in peers.REQUIREMENTS)


def test_the_commit_floor_line_compares_half_the_official_put_with_one_commit() -> None:
    out = {"p50_put_us": {"official_postgres": {"1KB": 600.0}}}
    assert floor.commit_floor_line(out, {"postgres_commit": 237.0}) == (
        "commit floor: half the official Postgres saver's 1KB put (300 µs) is above one "
        "durable one-row INSERT on this server (237 µs)"
    )
    assert "(300 µs) is below" in (floor.commit_floor_line(out, {"postgres_commit": 350.0}) or "")
    assert floor.commit_floor_line(out, {"postgres_commit": None}) is None
    assert floor.commit_floor_line({"p50_put_us": {}}, {"postgres_commit": 237.0}) is None


def test_unreachable_servers_have_no_floor() -> None:
    measured = floor.measure("postgresql://nobody@127.0.0.1:1/none", "redis://127.0.0.1:1/0", 3)
    assert measured == {"postgres_select_1": None, "postgres_commit": None, "redis_ping": None}
