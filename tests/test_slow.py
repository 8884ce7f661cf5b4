"""The real default model: SmolLM2-135M from its packaged GGUF, a few steps, through the Hydra entry point."""

import json

import pytest

from conftest import job_dirs, metrics_rows


@pytest.mark.slow
def test_smollm2_default_job_trains_and_evaluates(run, tmp_path):
    args = ["trainer.max_steps=3", "schedule=final", "data.eval_depth=3", "data.eval_splits=[dev]", "logger=csv",
            "measures=[nDCG@3,RR@3]"]
    result = run("rerank_lora.run", args)
    assert result.returncode == 0, result.stderr[-3000:]
    (job,) = job_dirs(tmp_path)
    assert json.loads((job / "status.json").read_text())["status"] == "completed"
    rows = {(r["ranker"], r["step"]): r for r in metrics_rows(job)}
    assert set(rows) == {("first-stage", None), ("model", 0), ("model", 3)}
    # three steps of training moved the scores
    assert (job / "runs" / "dev-step0.trec").read_text() != (job / "runs" / "dev-step3.trec").read_text()
    checkpoint = job / "checkpoints" / "step-3"
    assert json.loads((checkpoint / "adapter_config.json").read_text())["r"] == 8
