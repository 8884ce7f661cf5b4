"""Grids from sweeps/: the paper grid is RankLLaMA's recipe, value by value; a cell of it runs end to end on the
CPU on local files in the upstream layouts, with BM25's published first-stage figures; axes are overridable, a
failed cell is counted and recorded, a re-run skips finished cells."""

import math

import pytest
from upstream_rows import offline_cell, write_rows

from conftest import ROOT, TINY, metrics_rows, summary_rows
from rerank_lora.configs import SHIPPED_DATA, SWEEPS_DIR, compose_job

PAPER = ["-m", "--config-dir", str(ROOT / "sweeps"), "--config-name", "paper"]
# the recipe's batch shrunk to what a CPU test affords
SMALL = ["trainer=cpu", "data.queries_per_batch=2", "data.group_size=4", "trainer.accumulate_grad_batches=1"]


@pytest.fixture(scope="module")
def tevatron(tmp_path_factory):
    """A small training file in msmarco-passage-aug's schema and an Arrow cache folder, shared by the module."""
    folder = tmp_path_factory.mktemp("tevatron")
    return write_rows(folder / "train.jsonl", 40, negatives=8, no_positive_every=10), folder / "cache"


def test_paper_grid_is_rankllamas_recipe():
    cfg = compose_job(["model=llama", "lora.rank=1", "targets=mlp"], "paper", SWEEPS_DIR)
    data = cfg.data
    assert (data.loader, data.train_source, data.train_queries) == ("msmarco", "Tevatron/msmarco-passage-aug", None)
    assert not data.titles  # the evaluation passages have none (rerank_lora/data/datamodule.py)
    inputs = (data.template, data.query_prefix, data.passage_prefix, data.append_eos)
    assert inputs == ("tevatron", "query: ", "document: ", False)
    assert (data.group_size, data.queries_per_batch, data.max_length, data.eval_depth) == (16, 16, 196, 100)
    assert list(data.eval_splits) == ["dl19", "dl20", "dev_small"]
    shipped = str(SHIPPED_DATA / "msmarco-mini")
    assert (data.splits.dl19.files, data.splits.dl19.label, data.splits.dl19.ir_dataset) == (shipped, "dev", None)
    assert (data.splits.dl20.files, data.splits.dl20.label) == (shipped, "test")
    assert (data.splits.dev_small.ir_dataset, data.splits.dev_small.depth) == ("msmarco-passage/dev/small", 1000)
    assert (cfg.lora.rank, cfg.lora.alpha, cfg.lora.dropout) == (1, 64, 0.1)
    assert (cfg.optim.lr, cfg.optim.head_lr, cfg.optim.warmup_steps, cfg.optim.weight_decay) == (1e-4, None, 0, 0.0)
    assert (cfg.trainer.accelerator, cfg.trainer.precision, cfg.trainer.accumulate_grad_batches) == ("gpu", "bf16-mixed", 4)
    # one epoch of the 400,782 rows at 16 queries x 4 micro-batches a step, on one GPU
    assert cfg.trainer.max_steps == math.ceil(cfg.recipe.train_rows / (16 * 4)) == 6263
    assert (cfg.schedule.every, cfg.model.name, cfg.targets.modules) == (50, "llama", "mlp")


# TINY's depth 10 with measures cut there (the recipe's nDCG@20 and AP(rel=2)@100 need its depth 100)
AT_DEPTH_10 = [*TINY, "measures=[nDCG@10,'RR(rel=2)@10',RR@10]"]


def test_a_paper_cell_runs_on_the_cpu_with_bm25s_published_first_stage(run, tevatron, tmp_path):
    """What CI runs through `make ablation-grid MODELS=tiny_llama RANKS=8 TARGETS=attn ARGS=...`."""
    train, cache = tevatron
    cell = ["model=tiny_llama", "lora.rank=8", "targets=attn", "trainer.max_steps=2", "schedule.final=true", "logger=csv"]
    result = run("rerank_lora.run", [*PAPER, *cell, *SMALL, *offline_cell(train, cache), "hydra.sweep.dir=grid"])
    assert result.returncode == 0, result.stderr[-3000:]
    (job,) = [p for p in (tmp_path / "grid").iterdir() if p.is_dir()]
    rows = metrics_rows(job)
    first = {r["split"]: r for r in rows if r["ranker"] == "first-stage"}
    assert first["dl19"]["nDCG@10"] == pytest.approx(0.5058, abs=5e-5)  # Pyserini BM25's published figures
    assert first["dl20"]["nDCG@10"] == pytest.approx(0.4796, abs=5e-5)
    assert first["dl19"]["RR(rel=2)@10"] == pytest.approx(0.7024, abs=5e-5)
    assert {(r["split"], r["step"]) for r in rows if r["ranker"] == "model"} == {(s, n) for s in ("dl19", "dl20") for n in (0, 2)}
    assert (job / "runs" / "dl19-step2.trec").read_text().count("\n") == 43 * 100  # BM25's top 100 reranked
    assert "training: 36 queries" in (job / "run.log").read_text()  # 40 rows, every 10th without a positive


def test_paper_grid_axes_are_overridable_and_a_failed_cell_is_counted(run, tevatron, tmp_path):
    args = [*PAPER, *SMALL, *AT_DEPTH_10, *offline_cell(*tevatron), "model=tiny_llama", "lora.rank=1,0", "targets=attn",
            "hydra.sweep.dir=grid"]
    result = run("rerank_lora.run", args)
    assert result.returncode != 0
    assert "error: 1 of 2 cells failed" in result.stderr
    rows = summary_rows(tmp_path / "grid")
    failed = [r for r in rows if r["status"] == "failed"]
    assert len(failed) == 1 and "lora.rank=0" in failed[0]["error"] and "lora.rank=0" in failed[0]["overrides"]
    done = [r for r in rows if r["status"] == "completed"]
    assert {r["step"] for r in done if r["ranker"] == "model"} == {"0", "2"}
    assert all("lora.rank=1" in r["overrides"] and "targets=attn" in r["overrides"] for r in done)


def test_rerunning_a_sweep_skips_finished_cells(run, tevatron, tmp_path):
    args = [*PAPER, *SMALL, *AT_DEPTH_10, *offline_cell(*tevatron), "model=tiny_mistral", "lora.rank=2", "targets=mlp,all",
            "hydra.sweep.dir=grid"]
    first = run("rerank_lora.run", args)
    assert first.returncode == 0, first.stderr[-2000:]
    jobs = sorted(p for p in (tmp_path / "grid").iterdir() if p.is_dir())
    assert len(jobs) == 2
    before = [metrics_rows(j) for j in jobs]
    again = run("rerank_lora.run", args)
    assert again.returncode == 0 and (again.stdout + again.stderr).count("skipping") == 2
    assert [metrics_rows(j) for j in jobs] == before
    assert len(summary_rows(tmp_path / "grid")) == len(before[0]) + len(before[1])
