"""Data parallelism on this CPU: trainer=ddp with 2 processes (gloo), each taking 2 groups a step, trains as 1 process
taking 4: the same adapter and head at every checkpoint, the same metrics, in one job folder that rank 0 alone writes;
also when the 2-process job is killed and re-run in its folder (it resumes from its last trainer.ckpt). Lightning
launches the second process here; tests/test_slurm.py runs the same job as one SLURM job of 2 tasks."""

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from conftest import ONE_THREAD, metrics_rows, model_metrics, run_in_process, run_module

pytestmark = pytest.mark.cluster  # two processes a test: `make test-cluster` runs these, one at a time

# Checkpoints at steps 0, 2, 4 and 6; DL19 (the dev split) at depth 10; no dropout (each process draws its own masks).
TRAINING = ["model=tiny_llama", "trainer.max_steps=6", "schedule=steps", "schedule.steps=[2,4]", "schedule.final=true",
            "data.eval_depth=10", "data.eval_splits=[dev]", "logger=csv", "lora.dropout=0.0", "trainer.precision=32-true"]
STEPS = (0, 2, 4, 6)
ONE_PROCESS = [*TRAINING, "data.queries_per_batch=4"]
# 2 processes on the CPU: gloo, fp32, no gradient checkpointing (trainer=ddp is made for GPUs)
TWO_PROCESSES = [*TRAINING, "data.queries_per_batch=2", "trainer=ddp", "trainer.accelerator=cpu", "trainer.devices=2",
                 "trainer.gradient_checkpointing=false"]
RANK_1_LOG = "train_ddp_process_1.log"  # rank 1's log in the job folder (Lightning's name; the SLURM launcher's too)


def train_one_process(cwd: Path) -> Path:
    """The reference: the job in one process (in this one), 4 groups a step."""
    run_in_process([*ONE_PROCESS, "hydra.run.dir=one-process"], cwd)
    return cwd / "one-process"


@pytest.fixture(scope="module")
def one_process_job(tmp_path_factory) -> Path:
    return train_one_process(tmp_path_factory.mktemp("reference"))


def adapter(job: Path, step: int) -> dict[str, torch.Tensor]:
    """LoRA and head weights at `step`."""
    folder = job / "checkpoints" / f"step-{step}"
    return load_file(folder / "adapter_model.safetensors") | {"head.weight": load_file(folder / "head.safetensors")["weight"]}


def assert_trains_as(job: Path, reference: Path) -> float:
    """`job` has the reference's weights at every checkpoint (to the rounding of gloo's all-reduce) and its metrics,
    each evaluation once; returns the largest difference of a weight."""
    largest = 0.0
    for step in STEPS:
        got, expected = adapter(job, step), adapter(reference, step)
        assert got.keys() == expected.keys()
        for name, weight in expected.items():
            assert torch.allclose(got[name], weight, rtol=0, atol=1e-5), (step, name, (got[name] - weight).abs().max())
            largest = max(largest, (got[name] - weight).abs().max().item())
    start, end = adapter(reference, 0), adapter(reference, STEPS[-1])
    assert all(start[name].ne(end[name]).any() for name in start if "lora_B" in name or name == "head.weight")  # it trained
    expected, got = model_metrics(reference), model_metrics(job)
    assert set(got) == set(expected) == {("dev", step) for step in STEPS}
    for key, row in expected.items():
        for measure in ("nDCG@10", "RR(rel=2)@10", "RR@10"):
            assert got[key][measure] == pytest.approx(row[measure], abs=1e-4), (key, measure)
    assert len(metrics_rows(job)) == len(metrics_rows(reference)) == 1 + len(STEPS)  # the baseline and each step once
    return largest


def assert_one_job_folder(root: Path, job: Path, reference: Path) -> None:
    """Under `root`, `job` is the only job folder, with the reference's files and rank 1's log: nothing per rank."""
    assert [p.parent for p in root.rglob(".hydra")] == [job]
    assert {p.name for p in job.iterdir()} == {p.name for p in reference.iterdir()} | {RANK_1_LOG}
    assert {p.name for p in (job / ".hydra").iterdir()} == {"config.yaml", "hydra.yaml", "overrides.yaml"}
    for step in STEPS:
        folder = f"checkpoints/step-{step}"
        assert {p.name for p in (job / folder).iterdir()} == {p.name for p in (reference / folder).iterdir()}, step


def resumed_steps(log: Path) -> list[int]:
    return [int(step) for step in re.findall(r"resuming from \S*/checkpoints/step-(\d+)/trainer.ckpt", log.read_text())]


def kill_all_after(args: list[str], cwd: Path, checkpoint: Path) -> None:
    """Start `python -m rerank_lora.run ARGS` in a session of its own; SIGKILL all of it (Lightning's rank 1 too) as
    soon as `checkpoint` exists."""
    env = {**os.environ, **ONE_THREAD, "WANDB_MODE": "offline"}
    proc = subprocess.Popen([sys.executable, "-m", "rerank_lora.run", *args], cwd=cwd, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.monotonic() + 300
    while not checkpoint.exists() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()


def test_two_processes_killed_and_resumed_train_as_one(tmp_path, one_process_job):
    job, args = tmp_path / "two-processes", [*TWO_PROCESSES, "hydra.run.dir=two-processes"]
    start = time.monotonic()
    kill_all_after(args, tmp_path, job / "checkpoints" / "step-2" / "trainer.ckpt")
    killed = time.monotonic() - start
    assert not (job / "status.json").exists(), "the job finished before it could be killed"
    assert not (job / "checkpoints" / f"step-{STEPS[-1]}" / "trainer.ckpt").exists()

    resumed = run_module("rerank_lora.run", args, tmp_path, env=ONE_THREAD)
    print(f"2 processes: killed after {killed:.0f} s, resumed and finished in {time.monotonic() - start - killed:.0f} s")
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    (step,) = resumed_steps(job / "run.log")
    assert step in (2, 4) and resumed_steps(job / RANK_1_LOG) == [step]  # both ranks resumed, from the same checkpoint
    assert "Initializing distributed: GLOBAL_RANK: 1, MEMBER: 2/2" in resumed.stderr
    assert resumed.stdout.count("results: ") == 1  # the table once: rank 1 prints nothing
    assert (job / "status.json").read_text() == '{"status": "completed", "error": null}\n'
    largest = assert_trains_as(job, one_process_job)
    print(f"2 processes vs 1: largest weight difference {largest:.1e}")
    assert_one_job_folder(tmp_path, job, one_process_job)
