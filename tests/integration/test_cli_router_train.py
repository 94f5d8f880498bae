"""``agentmesh router train``: examples or exported decisions in, a predictor file out."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from agentmesh.collector.cli.main import main
from agentmesh.collector.routing.trainer import load_predictor
from agentmesh.core.errors import ConfigError

EASY = ["add the numbers 2 and 3", "add the numbers 5 and 8", "add the numbers 1 and 9"]
HARD = ["write a poem about rain", "write a poem about the sea", "write a poem on autumn"]


def _examples(path: Path) -> Path:
    lines: list[dict[str, object]] = []
    for text in EASY * 4:
        lines.append({"prompt": text, "task_class": "qa", "outcomes": {"small": 1, "big": 1.0}})
    for text in HARD * 4:
        lines.append(
            {
                "prompt": text,
                "task_class": "qa",
                "outcomes": {"small": {"quality": 0.0, "cost_usd": 0.001}, "big": 1},
            }
        )
    path.write_text("\n".join(json.dumps(x) for x in lines) + "\n")
    return path


def test_train_from_examples_writes_a_predictor_the_collector_loads(tmp_path: Path) -> None:
    out = tmp_path / "predictor.json"
    code = main(["router", "train", "--examples", str(_examples(tmp_path / "ex.jsonl")),
                 "-o", str(out), "--clusters", "2", "--seed", "1"])  # fmt: skip
    assert code == 0
    predictor = load_predictor(out)
    easy, hard = predictor.cluster_of(EASY[0]), predictor.cluster_of(HARD[0])
    assert easy != hard
    (small_easy,) = predictor.quality.predict("qa", easy, ("small",))
    (small_hard,) = predictor.quality.predict("qa", hard, ("small",))
    assert small_easy.quality > small_hard.quality


def test_train_records_the_prompt_tail_it_reads(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    examples = _examples(tmp_path / "ex.jsonl")
    out = tmp_path / "predictor.json"
    assert main(["router", "train", "--examples", str(examples), "-o", str(out),
                 "--clusters", "2", "--tail-chars", "64"]) == 0  # fmt: skip
    assert load_predictor(out).text_chars == 64
    assert json.loads(out.read_text())["hasher"]["tail_chars"] == 64
    assert main(["router", "train", "--examples", str(examples), "-o", str(out),
                 "--tail-chars", "0"]) != 0  # fmt: skip
    assert "--tail-chars must be positive" in capsys.readouterr().err


def test_train_from_wide_csvs(tmp_path: Path) -> None:
    folder = tmp_path / "csv"
    folder.mkdir()
    rows = ["prompt,eval_name,a,b,a|total_cost,b|total_cost"]
    rows += [f'"{t}",math,1,1,0.001,0.01' for t in EASY]
    rows += ["broken,math,,1,0.001,0.01"]
    (folder / "part.csv").write_text("\n".join(rows) + "\n")
    out = tmp_path / "p.json"
    assert main(["router", "train", "--examples", str(folder), "-o", str(out)]) == 0
    assert load_predictor(out).quality.models() == ["a", "b"]


def test_train_from_exported_decisions_on_a_base_predictor(tmp_path: Path) -> None:
    base = tmp_path / "base.json"
    assert main(["router", "train", "--examples", str(_examples(tmp_path / "e.jsonl")),
                 "-o", str(base), "--clusters", "2"]) == 0  # fmt: skip
    decisions = tmp_path / "decisions.jsonl"
    rows = [
        {"task_class": "chat", "features": {"cluster": 1}, "mode": "enforce",
         "requested_model": "big", "chosen": "small", "quality": 0.0, "cost_usd": 0.001,
         "latency_s": 0.2, "error": True},
        {"task_class": "chat", "features": {"cluster": 1}, "mode": "shadow",
         "requested_model": "big", "chosen": "small", "quality": 1.0, "cost_usd": 0.01,
         "latency_s": 1.5, "error": False},
    ]  # fmt: skip
    decisions.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    out = tmp_path / "p.json"
    code = main(["router", "train", "--decisions", str(decisions), "--base", str(base),
                 "-o", str(out)])  # fmt: skip
    assert code == 0
    trained = load_predictor(out)
    assert trained.reads_text  # the base's clusters are kept
    small, big = trained.quality.predict("chat", 1, ("small", "big"))
    assert (small.evidence, big.evidence) == (1, 1)  # enforced: small answered; shadow: big
    assert small.quality < big.quality


@pytest.mark.parametrize("suffix", [".jsonl", ".parquet", ".csv"])
def test_train_credits_a_fallbacks_answer_to_the_model_that_gave_it(
    tmp_path: Path, suffix: str
) -> None:
    # enforce chose big, big failed (503), small answered: as `agentmesh export decisions` says
    rows = [
        {"task_class": "chat", "features": {"cluster": 1}, "mode": "enforce",
         "requested_model": "big", "chosen": "big", "sent_model": "small",
         "fallbacks": ["big"], "quality": 1.0, "cost_usd": 0.001, "latency_s": 0.9,
         "error": False}
    ] * 4  # fmt: skip
    staged = tmp_path / "rows.jsonl"
    staged.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    decisions = tmp_path / f"decisions{suffix}"
    if suffix == ".jsonl":
        decisions = staged
    else:
        import duckdb

        kind = "FORMAT parquet" if suffix == ".parquet" else "FORMAT csv, HEADER"
        lists = "" if suffix == ".parquet" else " REPLACE (to_json(fallbacks) AS fallbacks)"
        duckdb.execute(
            f"COPY (SELECT *{lists} FROM read_json_auto('{staged}')) TO '{decisions}' ({kind})"
        )
    out = tmp_path / "p.json"
    assert main(["router", "train", "--decisions", str(decisions), "-o", str(out)]) == 0
    small, big = load_predictor(out).quality.predict("chat", 1, ("small", "big"))
    assert (small.evidence, big.evidence) == (4, 4)
    assert small.quality > 0.5 > big.quality


def test_train_reads_the_cluster_of_older_decision_logs_at_the_top_level(tmp_path: Path) -> None:
    # Decision log lines used to carry the cluster at the top level; it is now in features.
    rows = [
        {"task_class": "chat", "features": {"total_chars": 80}, "cluster": cluster,
         "mode": "enforce", "requested_model": "big", "chosen": "small", "quality": quality,
         "cost_usd": 0.001, "latency_s": 0.2, "error": False}
        for cluster, quality in [(1, 0.0)] * 20 + [(0, 1.0)] * 20
    ]  # fmt: skip
    decisions = tmp_path / "old.jsonl"
    decisions.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    out = tmp_path / "p.json"
    assert main(["router", "train", "--decisions", str(decisions), "-o", str(out)]) == 0
    quality = load_predictor(out).quality
    (in_one,) = quality.predict("chat", 1, ("small",))
    (in_zero,) = quality.predict("chat", 0, ("small",))
    assert in_one.quality < 0.5 < in_zero.quality


def test_bad_inputs_are_named(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"prompt": "x", "outcomes": {}}\n')
    assert main(["router", "train", "--examples", str(bad), "-o", str(tmp_path / "o")]) != 0
    assert "bad.jsonl:1" in capsys.readouterr().err
    assert main(["router", "train", "--decisions", str(tmp_path / "none.parquet"),
                 "-o", str(tmp_path / "o")]) != 0  # fmt: skip
    assert "no such file" in capsys.readouterr().err
    (tmp_path / "junk.json").write_text("[1]")
    with pytest.raises(ConfigError, match="PREDICTOR_PATH"):
        load_predictor(tmp_path / "junk.json")


def test_what_train_prints_and_refuses_says_what_it_did(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    examples = _examples(tmp_path / "ex.jsonl")
    out = tmp_path / "p.json"
    assert main(["router", "train", "--examples", str(examples), "-o", str(out)]) == 0
    fitted = load_predictor(out).clusters
    assert fitted is not None
    # 32 asked, fewer distinct prompts: the count printed is the fitted one, not the flag
    assert f"2 models, {fitted.k} clusters" in capsys.readouterr().err
    assert fitted.k < 32
    common = ["router", "train", "-o", str(tmp_path / "o.json")]
    assert main([*common, "--examples", str(examples), "--clusters", "-1"]) == 2
    assert "--clusters must be 0 (none) or more, not -1" in capsys.readouterr().err
    assert main([*common, "--examples", str(examples), "--base", str(out)]) == 2
    assert "--base goes with --decisions" in capsys.readouterr().err
    over = tmp_path / "over.jsonl"
    over.write_text('{"prompt": "x", "outcomes": {"m": 2}}\n')
    assert main([*common, "--examples", str(over)]) == 2
    assert "over.jsonl:1: outcomes.m: a quality is from 0 to 1, not 2" in capsys.readouterr().err
    assert main([*common, "--decisions", str(examples)]) == 2  # examples are no decisions
    err = capsys.readouterr().err
    assert "not a decisions export (no features, mode, requested_model" in err
    assert main([*common, "--decisions", str(examples), "--base", str(examples)]) == 2
    err = capsys.readouterr().err
    assert f"--base {examples}: cannot load a predictor" in err
    assert "PREDICTOR_PATH" not in err
