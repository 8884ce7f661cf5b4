"""The GPU path for real: trainer=gpu (bf16-mixed, SDPA, gradient checkpointing) on a CUDA device, a tiny
model trained, checkpointed, evaluated, killed and resumed, and SmolLM2 for a few steps. Marked `gpu`; they
skip where torch sees no CUDA device (`make test-gpu` runs them on a GPU machine)."""

import json

import pytest
import torch

from conftest import TINY, job_dirs, kill_after_checkpoint, metrics_rows, model_metrics, run_module

pytestmark = [pytest.mark.gpu, pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")]
ON_GPU = ["trainer=gpu", "logger=csv"]
AS_TINY = [a for a in TINY if not a.startswith("trainer.precision")]  # trainer=gpu's own: bf16-mixed
RESUMABLE = ["model=tiny_llama", "trainer.max_steps=60", "schedule=paper", "schedule.every=20", "data.eval_depth=20"]


def test_tiny_gpu_job_checkpoints_evaluates_and_resumes_to_the_same_metrics(tmp_path):
    full = run_module("rerank_lora.run", [*RESUMABLE, *ON_GPU, "hydra.run.dir=full"], tmp_path)
    assert full.returncode == 0, full.stderr[-3000:]
    assert "GPU available: True (cuda), used: True" in full.stderr + full.stdout
    job = tmp_path / "cut"
    kill_after_checkpoint(tmp_path, [*RESUMABLE, *ON_GPU, "hydra.run.dir=cut"], job / "checkpoints" / "step-20" / "trainer.ckpt")
    assert not (job / "checkpoints" / "step-60" / "trainer.ckpt").exists()
    resumed = run_module("rerank_lora.run", [*RESUMABLE, *ON_GPU, "hydra.run.dir=cut"], tmp_path)
    assert resumed.returncode == 0 and "resuming from" in resumed.stderr + resumed.stdout, resumed.stderr[-3000:]
    expected, got = model_metrics(tmp_path / "full"), model_metrics(job)
    assert set(got) == set(expected) == {(s, n) for s in ("dev", "test") for n in (0, 20, 40, 60)}
    for key, row in expected.items():  # bf16 kernels: equal up to their rounding
        assert got[key]["nDCG@10"] == pytest.approx(row["nDCG@10"], abs=2e-3), key
    assert expected[("dev", 60)]["nDCG@10"] != expected[("dev", 0)]["nDCG@10"]


@pytest.mark.parametrize("model", ["tiny_mistral", "tiny_pythia"])
def test_every_family_trains_on_the_gpu(model, tmp_path):
    result = run_module("rerank_lora.run", [*AS_TINY, *ON_GPU, f"model={model}"], tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    (job,) = job_dirs(tmp_path)
    assert {r["step"] for r in metrics_rows(job) if r["ranker"] == "model"} == {0, 2}


@pytest.mark.slow
def test_smollm2_on_the_gpu(tmp_path):
    args = [*ON_GPU, "trainer.max_steps=20", "schedule=final", "data.eval_depth=10"]
    result = run_module("rerank_lora.run", args, tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    (job,) = job_dirs(tmp_path)
    assert json.loads((job / "status.json").read_text())["status"] == "completed"
    rows = model_metrics(job)
    assert rows[("dev", 20)]["nDCG@10"] != rows[("dev", 0)]["nDCG@10"]
