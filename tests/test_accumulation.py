"""Gradient accumulation: steps are optimizer steps everywhere (training stream, checkpoint schedule, LR
schedule, resume). 4 groups x 1 micro-batch and 2 groups x 2 micro-batches are the same optimizer steps over the
same groups; a job with accumulation killed between checkpoints resumes to the uninterrupted run's results."""

import pytest
import torch
from safetensors.torch import load_file

from conftest import TINY, kill_after_checkpoint, model_metrics, run_module

NO_DROPOUT = [a for a in TINY if not a.startswith(("trainer.max_steps", "schedule"))] + ["lora.dropout=0.0"]


def adapter(job, step: int) -> dict[str, torch.Tensor]:
    """LoRA and head weights at `step`."""
    folder = job / "checkpoints" / f"step-{step}"
    return load_file(folder / "adapter_model.safetensors") | {"head.weight": load_file(folder / "head.safetensors")["weight"]}


def test_two_micro_batches_of_two_groups_equal_one_batch_of_four(tmp_path):
    common = [*NO_DROPOUT, "trainer.max_steps=4", "schedule=steps", "schedule.steps=[2]", "schedule.final=true"]
    whole = run_module("rerank_lora.run", [*common, "data.queries_per_batch=4", "hydra.run.dir=whole"], tmp_path)
    split = run_module(
        "rerank_lora.run",
        [*common, "data.queries_per_batch=2", "trainer.accumulate_grad_batches=2", "hydra.run.dir=split"],
        tmp_path,
    )
    assert whole.returncode == 0 and split.returncode == 0, (whole.stderr + split.stderr)[-3000:]
    for step in (2, 4):
        a, b = adapter(tmp_path / "whole", step), adapter(tmp_path / "split", step)
        assert a.keys() == b.keys()
        for name in a:
            assert torch.allclose(a[name], b[name], atol=1e-6, rtol=1e-4), (step, name)
    assert adapter(tmp_path / "whole", 4)["head.weight"].ne(adapter(tmp_path / "whole", 0)["head.weight"]).any()
    expected, got = model_metrics(tmp_path / "whole"), model_metrics(tmp_path / "split")
    for key, row in expected.items():
        assert got[key]["nDCG@10"] == pytest.approx(row["nDCG@10"], abs=1e-4), key


def test_job_with_accumulation_killed_between_checkpoints_resumes_exactly(tmp_path):
    args = [*NO_DROPOUT, "lora.dropout=0.1", "trainer.max_steps=30", "schedule=paper", "schedule.every=10",
            "trainer.accumulate_grad_batches=3"]
    full = run_module("rerank_lora.run", [*args, "hydra.run.dir=full"], tmp_path)
    assert full.returncode == 0, full.stderr[-3000:]
    job = tmp_path / "cut"
    kill_after_checkpoint(tmp_path, [*args, "hydra.run.dir=cut"], job / "checkpoints" / "step-10" / "trainer.ckpt")
    assert not (job / "checkpoints" / "step-30" / "trainer.ckpt").exists()
    resumed = run_module("rerank_lora.run", [*args, "hydra.run.dir=cut"], tmp_path)
    assert resumed.returncode == 0 and "resuming from" in resumed.stderr + resumed.stdout, resumed.stderr[-3000:]
    for step in (10, 20, 30):
        a, b = adapter(tmp_path / "full", step), adapter(job, step)
        for name in a:
            assert torch.allclose(a[name], b[name], atol=1e-6), (step, name)
    expected, got = model_metrics(tmp_path / "full"), model_metrics(job)
    assert set(got) == set(expected)
    for key, row in expected.items():
        assert got[key]["nDCG@10"] == pytest.approx(row["nDCG@10"], abs=1e-4), key
