"""`agentmesh check`: a collector's configuration and what it reaches, checked before it starts.

Real parts throughout: ports bound by this test, a DuckDB file held by another process, the
machine's Redis and Postgres, certificates made by ``trustme`` with chosen expiry dates, a
forwarding endpoint that listens or does not.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import trustme

from agentmesh.collector import DuckDBStore
from agentmesh.collector.cli import main
from agentmesh.collector.store import PostgresStore
from agentmesh.collector.store.scratch import scratch_schema
from agentmesh.collector.testing import SpanFactory, graph_of

Found = dict[str, tuple[str, str]]
"""Each check's verdict and detail."""


def _check(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, Found]:
    code = main(["check", "--json", *args])
    findings = json.loads(capsys.readouterr().out)
    return code, {f["check"]: (f["verdict"], f["detail"]) for f in findings}


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture
def listening() -> Iterator[int]:
    """A port something listens on."""
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen(8)
        yield int(server.getsockname()[1])


def _ports() -> list[str]:
    return ["--grpc-port", str(_free_port()), "--http-port", str(_free_port())]


async def _store_with_runs(path: Path, runs: int) -> None:
    async with DuckDBStore(path) as store:
        for i in range(runs):
            f = SpanFactory()
            await store.write_graph(graph_of([f.workflow("w", run_id=f"run-{i}")]))


def test_a_ready_configuration_passes_every_check(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    redis_address: tuple[str, int],
    listening: int,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    db = tmp_path / "agentmesh.duckdb"
    asyncio.run(_store_with_runs(db, 3))
    ca = trustme.CA()
    cert = ca.issue_cert("collector.internal", common_name="collector.internal")
    cert.cert_chain_pems[0].write_to_path(str(tmp_path / "cert.pem"))
    cert.private_key_pem.write_to_path(str(tmp_path / "key.pem"))
    monkeypatch.setenv("AGENTMESH_COLLECTOR_REDIS_URL", "redis://{}:{}/0".format(*redis_address))
    monkeypatch.setenv(
        "AGENTMESH_COLLECTOR_FORWARD_OTLP_ENDPOINTS", f"http://127.0.0.1:{listening}/v1/traces"
    )
    code, found = _check(
        capsys,
        *_ports(),
        *("--db", str(db)),
        *("--tls-cert-file", str(tmp_path / "cert.pem")),
        *("--tls-key-file", str(tmp_path / "key.pem")),
    )
    assert code == 0, found
    assert {check: verdict for check, (verdict, _) in found.items()} == {
        "grpc port": "ok",
        "http port": "ok",
        "tls": "ok",
        "router": "ok",
        "model catalog": "ok",
        "store": "ok",
        "redis": "ok",
        "forward otlp-1": "ok",
    }
    assert "CN=collector.internal" in found["tls"][1]
    assert "expires in" in found["tls"][1]
    assert found["store"][1].endswith("3 runs, schema 8")
    assert found["redis"][1].startswith("Redis ")


def test_each_problem_is_named_and_the_exit_code_says_so(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    listening: int,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    db = tmp_path / "held.duckdb"
    asyncio.run(_store_with_runs(db, 1))
    holder = subprocess.Popen(  # another collector holds the file
        [sys.executable, "-c", f"import duckdb, sys; c = duckdb.connect({str(db)!r}); "
         "print('ready', flush=True); sys.stdin.read()"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )  # fmt: skip
    try:
        assert holder.stdout is not None
        assert holder.stdout.readline().strip() == "ready"
        monkeypatch.setenv("AGENTMESH_COLLECTOR_REDIS_URL", f"redis://127.0.0.1:{_free_port()}/0")
        code, found = _check(
            capsys,
            *("--grpc-port", str(listening), "--http-port", str(_free_port())),
            *("--db", str(db)),
            "--forward-otlp-endpoints",
            json.dumps([f"http://127.0.0.1:{_free_port()}/v1/traces"]),
        )
    finally:
        holder.communicate("", timeout=30)
    assert code == 1
    assert found["grpc port"][0] == "fail"
    assert "address already in use (a collector already running?)" in found["grpc port"][1]
    assert found["http port"][0] == "ok"
    assert found["store"][0] == "fail"
    assert "held by another process" in found["store"][1]
    assert found["redis"][0] == "fail"
    assert found["forward otlp-1"] == (
        "fail",
        found["forward otlp-1"][1].split(": ")[0] + ": connection refused",
    )


@pytest.mark.parametrize(("days", "verdict"), [(5, "warn"), (-2, "fail")])
def test_a_certificate_near_or_past_its_end_is_reported(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], days: int, verdict: str
) -> None:
    now = dt.datetime.now(dt.UTC)
    cert = trustme.CA().issue_cert(
        "collector.internal",
        not_before=now - dt.timedelta(days=30),
        not_after=now + dt.timedelta(days=days),
    )
    cert.cert_chain_pems[0].write_to_path(str(tmp_path / "cert.pem"))
    cert.private_key_pem.write_to_path(str(tmp_path / "key.pem"))
    code, found = _check(
        capsys,
        *_ports(),
        *("--store", "memory"),
        *("--tls-cert-file", str(tmp_path / "cert.pem")),
        *("--tls-key-file", str(tmp_path / "key.pem")),
    )
    assert found["tls"][0] == verdict, found["tls"]
    assert code == (1 if verdict == "fail" else 0)
    assert found["store"][0] == "warn"  # memory: nothing kept


def test_the_router_predictor_and_trade_offs_are_checked(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = tmp_path / "csv"
    folder.mkdir()
    rows = ["prompt,eval_name,a,b,a|total_cost,b|total_cost"]
    rows += [f'"question {i}",math,1,{i % 2},0.001,0.01' for i in range(8)]
    (folder / "part.csv").write_text("\n".join(rows) + "\n")
    predictor = tmp_path / "predictor.json"
    assert main(["router", "train", "--examples", str(folder), "-o", str(predictor)]) == 0
    capsys.readouterr()
    common = [*_ports(), "--store", "memory", "--router-training"]
    code, found = _check(capsys, *common, "--router-predictor-path", str(predictor))
    assert code == 0
    assert found["router"][0] == "ok"
    assert found["router"][1].startswith(f"predictor {predictor} loads")
    broken = tmp_path / "broken.json"
    broken.write_text("[1, 2]")
    code, found = _check(capsys, *common, "--router-predictor-path", str(broken))
    assert code == 1
    assert found["router"][0] == "fail"
    assert "cannot load a predictor" in found["router"][1]
    weights = json.dumps({"qa": {"cost_weight": -1}})
    code, found = _check(capsys, *common, "--router-tradeoffs", weights)
    assert code == 1
    assert "expected non-negative, finite cost_weight" in found["router"][1]


def test_router_modes_and_trade_offs_without_training_are_checked_and_named(
    capsys: pytest.CaptureFixture[str],
) -> None:
    # Training off still publishes the modes and trade-offs: check says so, and checks them.
    common = [*_ports(), "--store", "memory", "--no-router-training"]
    code, found = _check(capsys, *common)
    assert code == 0
    assert found["router"] == ("ok", "route table training off")
    modes = json.dumps({"*": "shadow", "triage": "enforce"})
    weights = json.dumps({"*": {"cost_weight": 50}})
    code, found = _check(capsys, *common, "--router-modes", modes, "--router-tradeoffs", weights)
    assert code == 0
    assert found["router"] == (
        "ok",
        "route table training off; publishes the modes for 2 task class(es) and trade-offs for "
        "1 task class(es) (no learning)",
    )
    bad = json.dumps({"qa": {"cost_weight": -1}})
    code, found = _check(capsys, *common, "--router-modes", modes, "--router-tradeoffs", bad)
    assert code == 1
    assert found["router"][0] == "fail"
    assert "AGENTMESH_COLLECTOR_ROUTER_TRADEOFFS['qa']: expected non-negative" in found["router"][1]


def test_the_model_catalog_override_is_checked(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    common = [*_ports(), "--store", "memory"]
    code, found = _check(capsys, *common)
    assert found["model catalog"][0] == "ok"
    assert found["model catalog"][1].endswith("models (bundled)")
    house = tmp_path / "house.json"
    house.write_text('{"models": [{"name": "m", "provider": "openai", "input": 1, "output": -3}]}')
    monkeypatch.setenv("AGENTMESH_ROUTER_CATALOG_PATH", str(house))
    try:
        code, found = _check(capsys, *common)
    finally:
        monkeypatch.delenv("AGENTMESH_ROUTER_CATALOG_PATH")
        main(["check", "--json", *common])  # the catalog read again without the override
        capsys.readouterr()
    assert code == 1
    verdict, detail = found["model catalog"]
    assert verdict == "fail"
    assert "model 'm': output: Input should be greater than or equal to 0" in detail


def test_plaintext_tokens_on_an_open_address_are_a_warning(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AGENTMESH_COLLECTOR_AUTH_BEARER_TOKENS", "s3cret")
    code, found = _check(capsys, *_ports(), "--grpc-host", "0.0.0.0", "--store", "memory")
    assert code == 0
    assert found["tls"][0] == "warn"
    assert "travel in clear" in found["tls"][1]


@pytest.mark.postgres
def test_postgres_migrations_to_apply_are_counted_and_a_dead_server_named(
    capsys: pytest.CaptureFixture[str], postgres_address: tuple[str, int]
) -> None:
    host, port = postgres_address
    dsn = os.environ.get("AGENTMESH_TEST_POSTGRES_DSN", f"postgresql://postgres@{host}:{port}/test")

    async def scenario() -> list[tuple[int, Found]]:
        results = []
        async with scratch_schema(dsn) as schema:
            env = {"AGENTMESH_COLLECTOR_POSTGRES_DSN": dsn}
            args = [*_ports(), "--store", "postgres", "--postgres-schema", schema]
            results.append(await asyncio.to_thread(_in_env, capsys, env, args))
            async with PostgresStore(dsn, schema=schema):  # the collector's first start
                pass
            results.append(await asyncio.to_thread(_in_env, capsys, env, args))
            nowhere = f"postgresql://postgres@127.0.0.1:{_free_port()}/test"
            dead = {"AGENTMESH_COLLECTOR_POSTGRES_DSN": nowhere}
            results.append(await asyncio.to_thread(_in_env, capsys, dead, args))
        return results

    fresh, migrated, dead = asyncio.run(scenario())
    assert fresh[0] == 0
    assert fresh[1]["store"][0] == "ok"
    assert "migration(s) applied at start" in fresh[1]["store"][1]
    assert migrated[1]["store"] == ("ok", migrated[1]["store"][1].split(": ")[0] + ": up to date")
    assert dead[0] == 1
    assert dead[1]["store"][0] == "fail"
    assert "cannot reach PostgreSQL" in dead[1]["store"][1]
    assert "connection refused" in dead[1]["store"][1]


def _in_env(
    capsys: pytest.CaptureFixture[str], env: dict[str, str], args: list[str]
) -> tuple[int, Found]:
    saved = {key: os.environ.get(key) for key in env}
    os.environ.update(env)
    try:
        return _check(capsys, *args)
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def test_a_wrong_flag_is_named_as_the_flag(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["check", *_ports(), "--store", "memory", "--router-modes", '{"*": "turbo"}']) == 2
    err = capsys.readouterr().err
    assert "invalid configuration: --router-modes='turbo': Input should be 'off'" in err
