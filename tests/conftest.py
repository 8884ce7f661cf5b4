"""Shared helpers and session fixtures: the real entry points run in a subprocess (or in this process), in a
temporary working folder; torch on one thread (on a shared 2-core machine a second thread makes tiny models
several times slower, not faster); one tiny trained job shared by the analysis and report tests."""

import contextlib
import csv
import io
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from rerank_lora.configs import compose_job, job_spec, to_spec
from rerank_lora.data.spec import DataSpec
from rerank_lora.job.spec import JobSpec
from rerank_lora.model.backbone import ModelSpec

ROOT = Path(__file__).resolve().parents[1]
MINI = ROOT / "rerank_lora" / "data" / "msmarco-mini"
ONE_THREAD = {"OMP_NUM_THREADS": "1", "TQDM_DISABLE": "1"}
# Every process a test starts runs torch on one thread: two test workers (pytest-xdist) share the 2 cores.
os.environ.update(OMP_NUM_THREADS="1")
# A few steps of a tiny model, reranking the top 10, logged to CSV: seconds, not minutes. In float32 on every CPU
# (precision=auto would pick bf16 on some chips only); test_precision.py runs the bf16-mixed path on purpose.
TINY = ["model=tiny_llama", "trainer.max_steps=4", "schedule=steps", "schedule.steps=[2]", "data.eval_depth=10", "logger=csv",
        "trainer.precision=32-true"]


def run_module(module: str, args: list[str], cwd: Path, env: dict | None = None, timeout: int = 600):
    full_env = {**os.environ, "WANDB_MODE": "offline", "PYTHONUNBUFFERED": "1", **(env or {})}
    return subprocess.run(
        [sys.executable, "-m", module, *args], cwd=cwd, env=full_env, capture_output=True, text=True, timeout=timeout
    )


def kill_after_checkpoint(cwd: Path, args: list[str], checkpoint: Path, sig=signal.SIGKILL) -> None:
    """Start `python -m rerank_lora.run ARGS` and kill it as soon as `checkpoint` exists."""
    env = {**os.environ, "WANDB_MODE": "offline"}
    proc = subprocess.Popen([sys.executable, "-m", "rerank_lora.run", *args], cwd=cwd, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 300
    while not checkpoint.exists() and proc.poll() is None and time.time() < deadline:
        time.sleep(0.02)
    proc.send_signal(sig)
    proc.wait()


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


def job_of(overrides: list[str]) -> JobSpec:
    """The JobSpec of a job composed from `overrides`, in float32 unless they name trainer.precision (the suite is
    the same on every CPU kind)."""
    return job_spec(compose_job(["trainer.precision=32-true", *overrides]))


def specs(overrides: list[str] | None = None, cfg=None) -> tuple[ModelSpec, DataSpec, object]:
    """The model and data specs (and the config) of a job composed from `overrides`, or of a loaded `cfg`."""
    cfg = compose_job(overrides or []) if cfg is None else cfg
    return to_spec(ModelSpec, cfg.model, "model"), to_spec(DataSpec, cfg.data, "data"), cfg


@pytest.fixture
def run(tmp_path):
    """Run `python -m MODULE ARGS` in tmp_path; returns the CompletedProcess."""
    return lambda module, args, env=None: run_module(module, args, tmp_path, env)


def run_in_process(args: list[str], cwd: Path) -> str:
    """`python -m rerank_lora.run ARGS` in this process (Hydra's own entry point) in the folder `cwd`, with
    W&B offline; returns what it printed. Saves a subprocess's start-up (imports) where the command line itself
    is not under test."""
    from rerank_lora import run as run_command

    saved_argv, saved_cwd, saved_mode = sys.argv, os.getcwd(), os.environ.get("WANDB_MODE")
    sys.argv, os.environ["WANDB_MODE"] = ["rerank_lora.run", *args], "offline"
    os.chdir(cwd)
    printed = io.StringIO()
    try:
        with contextlib.redirect_stdout(printed):
            run_command.main()
    finally:
        sys.argv = saved_argv
        os.chdir(saved_cwd)
        if saved_mode is None:
            os.environ.pop("WANDB_MODE")
        else:
            os.environ["WANDB_MODE"] = saved_mode
    return printed.getvalue()


@pytest.fixture(scope="session", autouse=True)
def one_torch_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="session")
def trained_tiny_job(tmp_path_factory) -> Path:
    """A tiny-llama job with checkpoints at steps 0, 2 and 4 (logger=csv), trained once per test session."""
    cwd = tmp_path_factory.mktemp("trained-tiny")
    run_in_process([*TINY, "schedule.final=true"], cwd)
    (job,) = job_dirs(cwd)
    return job
