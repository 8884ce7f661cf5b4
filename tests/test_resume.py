"""Re-running a job in the same folder: a killed job resumes to the metrics of an uninterrupted one; a
finished job is skipped."""

import json

import pytest

from conftest import kill_after_checkpoint, metrics_rows, model_metrics, run_module
from rerank_lora.job_folder import JobFolder

ARGS = ["model=tiny_llama", "trainer.max_steps=60", "schedule=paper", "schedule.every=20", "data.eval_depth=20", "logger=csv"]


def test_killed_job_resumes_to_the_same_metrics(tmp_path):
    full = run_module("rerank_lora.run", [*ARGS, "hydra.run.dir=full"], tmp_path)
    assert full.returncode == 0, full.stderr[-2000:]
    job = tmp_path / "cut"
    kill_after_checkpoint(tmp_path, [*ARGS, "hydra.run.dir=cut"], job / "checkpoints" / "step-20" / "trainer.ckpt")
    assert not (job / "status.json").exists(), "the job finished before it could be killed"
    assert not (job / "checkpoints" / "step-60" / "trainer.ckpt").exists()

    resumed = run_module("rerank_lora.run", [*ARGS, "hydra.run.dir=cut"], tmp_path)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert "resuming from" in resumed.stderr + resumed.stdout
    expected, got = model_metrics(tmp_path / "full"), model_metrics(job)
    assert set(got) == set(expected) == {(s, n) for s in ("dev", "test") for n in (0, 20, 40, 60)}
    for key, row in expected.items():
        assert got[key]["nDCG@10"] == pytest.approx(row["nDCG@10"], abs=1e-4), key
        assert got[key]["RR(rel=2)@10"] == pytest.approx(row["RR(rel=2)@10"], abs=1e-4), key
    assert sum(r["ranker"] == "first-stage" for r in metrics_rows(job)) == 2  # the baseline once, not twice
    # the trained model moved: a resume that restarted from scratch would not match step 60
    assert expected[("dev", 60)]["nDCG@10"] != expected[("dev", 0)]["nDCG@10"]


def test_finished_job_is_skipped(tmp_path):
    args = [*ARGS, "trainer.max_steps=4", "schedule.every=2", "hydra.run.dir=done"]
    assert run_module("rerank_lora.run", args, tmp_path).returncode == 0
    before = (tmp_path / "done" / "metrics.jsonl").read_text()
    again = run_module("rerank_lora.run", args, tmp_path)
    assert again.returncode == 0 and "skipping" in again.stderr + again.stdout
    assert (tmp_path / "done" / "metrics.jsonl").read_text() == before


def test_rerun_before_first_checkpoint_keeps_no_stale_rows(tmp_path):
    """A job killed after its baseline but before step 0's trainer.ckpt writes the baseline once on re-run."""
    rows = [{"step": None, "split": "dev", "ranker": "first-stage"}, {"step": 0, "split": "dev", "ranker": "model"},
            {"step": 20, "split": "dev", "ranker": "model"}]
    (tmp_path / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    JobFolder(tmp_path).keep_metrics_until(-1)
    assert metrics_rows(tmp_path) == []
    (tmp_path / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    JobFolder(tmp_path).keep_metrics_until(0)
    assert metrics_rows(tmp_path) == rows[1:2]
    JobFolder(tmp_path / "missing").keep_metrics_until(-1)  # nothing to trim, nothing created
    assert not (tmp_path / "missing").exists()


def test_job_killed_while_scoring_a_held_out_split_finishes_it_without_training_again(tmp_path):
    """Killed at its 4th evaluation pass (dev at 0, 2, 4, then test held out at step 0): the re-run scores only
    the held-out rows still missing, once each, and the finished job is then skipped."""
    args = [*ARGS, "trainer.max_steps=4", "schedule.every=2", "data.eval_splits=[dev]", "data.held_out_splits=[test]",
            "data.eval_depth=10", "hydra.run.dir=held"]
    killed = run_module("rerank_lora.run", args, tmp_path, env={"RERANK_LORA_FAULT": "evaluation@4"})
    assert killed.returncode != 0
    job = tmp_path / "held"
    assert set(model_metrics(job)) == {("dev", 0), ("dev", 2), ("dev", 4), ("test", 0)}  # killed just after test@0
    resumed = run_module("rerank_lora.run", args, tmp_path)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    rows = [(r["split"], r["step"]) for r in metrics_rows(job) if r["ranker"] == "model"]
    dev = {step: row["nDCG@10"] for (split, step), row in model_metrics(job).items() if split == "dev"}
    best = max(sorted(dev), key=lambda step: dev[step])
    assert sorted(rows) == sorted({("dev", 0), ("dev", 2), ("dev", 4), ("test", 0), ("test", best)})  # none twice
    assert "scoring dev" not in resumed.stderr  # nothing trained or scored on dev again
    again = run_module("rerank_lora.run", args, tmp_path)
    assert again.returncode == 0 and "skipping" in again.stderr + again.stdout
