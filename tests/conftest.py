"""Shared helpers: run the real entry points in a subprocess, in a temporary working folder."""

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from rerank_lora.configs import compose_job, to_spec
from rerank_lora.data.spec import DataSpec
from rerank_lora.model.backbone import ModelSpec

ROOT = Path(__file__).resolve().parents[1]
MINI = ROOT / "rerank_lora" / "data" / "msmarco-mini"
# A few steps of a tiny model, reranking the top 10, logged to CSV: seconds, not minutes.
TINY = ["model=tiny_llama", "trainer.max_steps=4", "schedule=steps", "schedule.steps=[2]", "data.eval_depth=10", "logger=csv"]


def run_module(module: str, args: list[str], cwd: Path, env: dict | None = None, timeout: int = 600):
    full_env = {**os.environ, "WANDB_MODE": "offline", "PYTHONUNBUFFERED": "1", **(env or {})}
    return subprocess.run(
        [sys.executable, "-m", module, *args], cwd=cwd, env=full_env, capture_output=True, text=True, timeout=timeout
    )


def job_dirs(cwd: Path) -> list[Path]:
    return sorted(p.parent.parent for p in cwd.glob("outputs/**/.hydra/config.yaml"))


def metrics_rows(job_dir: Path) -> list[dict]:
    return [json.loads(line) for line in (job_dir / "metrics.jsonl").read_text().splitlines()]


def model_metrics(job_dir: Path) -> dict[tuple, dict]:
    """The model's rows of metrics.jsonl by (split, step)."""
    return {(r["split"], r["step"]): r for r in metrics_rows(job_dir) if r["ranker"] == "model"}


def summary_rows(sweep_dir: Path) -> list[dict]:
    with (sweep_dir / "summary.csv").open() as handle:
        return list(csv.DictReader(handle))


def specs(overrides: list[str] | None = None, cfg=None) -> tuple[ModelSpec, DataSpec, object]:
    """The model and data specs (and the config) of a job composed from `overrides`, or of a loaded `cfg`."""
    cfg = compose_job(overrides or []) if cfg is None else cfg
    return to_spec(ModelSpec, cfg.model, "model"), to_spec(DataSpec, cfg.data, "data"), cfg


@pytest.fixture
def run(tmp_path):
    """Run `python -m MODULE ARGS` in tmp_path; returns the CompletedProcess."""
    return lambda module, args, env=None: run_module(module, args, tmp_path, env)
