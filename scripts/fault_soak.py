"""Fault soak: kill tiny jobs again and again, at random moments (SIGKILL or SIGTERM after a random delay) and at
random dangerous points (rerank_lora/faults.py), re-run each until it completes, and compare every finished job
with an uninterrupted one (metrics and run scores within 1e-4, no duplicated or partial metrics line, status
completed, no lock left). Prints the figures as JSON; exit status 1 if any job differs.

    .venv/bin/python scripts/fault_soak.py --injections 100 [--seed 0] [--workdir /tmp/soak]
(`make fault-soak`). The tests in tests/test_faults.py do the same once per dangerous point.
"""

import argparse
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from rerank_lora.data.trec_files import read_run
from rerank_lora.faults import POINTS
from rerank_lora.job_folder import COMPLETED, JobFolder

JOB = ["model=tiny_llama", "trainer.max_steps=6", "schedule=steps", "schedule.steps=[2,4]", "schedule.final=true",
       "data.eval_depth=10", "logger=csv", "lock_wait_s=1"]
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "TQDM_DISABLE": "1", "WANDB_MODE": "offline"}


def run_job(cwd: Path, folder: str, fault: str | None = None, kill_after: float | None = None, sig=signal.SIGKILL) -> int:
    env = ENV | ({"RERANK_LORA_FAULT": fault} if fault else {})
    proc = subprocess.Popen([sys.executable, "-m", "rerank_lora.run", *JOB, f"hydra.run.dir={folder}"], cwd=cwd, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        return proc.wait(timeout=kill_after)
    except subprocess.TimeoutExpired:
        proc.send_signal(sig)
        return proc.wait()


def differences(job: JobFolder, reference: JobFolder) -> list[str]:
    """What differs from the uninterrupted job (empty: nothing)."""
    found = []
    rows = job.metrics()
    keys = [(r["split"], r["step"], r["ranker"]) for r in rows]
    if len(keys) != len(set(keys)):
        found.append("a duplicated metrics row")
    if not all(line.endswith("}") for line in job.metrics_file.read_text().splitlines()):
        found.append("a partial metrics line")
    if job.status()["status"] != COMPLETED or job.lock_file.exists():
        found.append(f"status {job.status()['status']}, lock left: {job.lock_file.exists()}")
    expected, got = reference.model_metrics(), job.model_metrics()
    if set(got) != set(expected):
        return [*found, f"evaluations {sorted(got)} != {sorted(expected)}"]
    for (split, step), row in expected.items():
        if any(abs(got[(split, step)][m] - row[m]) > 1e-4 for m in ("nDCG@10", "RR(rel=2)@10")):
            found.append(f"metrics differ at {split} step {step}")
        ours, theirs = read_run(job.run_file(split, step)), read_run(reference.run_file(split, step))
        if ours.keys() != theirs.keys() or any(abs(ours[q][p] - theirs[q].get(p, 1e9)) > 1e-4 for q in ours for p in ours[q]):
            found.append(f"run differs at {split} step {step}")
    return found


def soak(injections: int, seed: int, workdir: Path) -> dict:
    rng = random.Random(seed)
    started = time.monotonic()
    assert run_job(workdir, "reference") == 0, "the uninterrupted job failed"
    reference = JobFolder(workdir / "reference")
    job_seconds = time.monotonic() - started
    figures = {"injected": 0, "by_point": {}, "random_time": 0, "jobs": 0, "identical": 0, "differing": []}
    while figures["injected"] < injections:
        figures["jobs"] += 1
        folder = f"job{figures['jobs']}"
        for _attempt in range(40):
            sig = rng.choice([signal.SIGKILL, signal.SIGTERM])
            if rng.random() < 0.5:
                fault = f"{rng.choice(POINTS)}@{rng.randint(1, 3)}" + (":TERM" if sig == signal.SIGTERM else "")
                code = run_job(workdir, folder, fault=fault)
                kind = fault.split("@")[0]
            else:
                code = run_job(workdir, folder, kill_after=rng.uniform(1.0, job_seconds), sig=sig)
                kind = "random_time"
            if code == 0 and JobFolder(workdir / folder).status()["status"] == COMPLETED:
                break
            figures["injected"] += 1
            if kind == "random_time":
                figures["random_time"] += 1
            else:
                figures["by_point"][kind] = figures["by_point"].get(kind, 0) + 1
            print(f"{folder}: {kind} ({signal.Signals(sig).name}) -> exit {code}; injected {figures['injected']}", flush=True)
        else:
            raise SystemExit(f"{folder} never completed")
        found = differences(JobFolder(workdir / folder), reference)
        if found:
            figures["differing"].append({folder: found})
        else:
            figures["identical"] += 1
    figures["minutes"] = round((time.monotonic() - started) / 60, 1)
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--injections", type=int, default=100)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--workdir", type=Path, default=None)
    args = parser.parse_args()
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="fault-soak-"))
    workdir.mkdir(parents=True, exist_ok=True)
    figures = soak(args.injections, args.seed, workdir)
    print(json.dumps(figures, indent=2))
    raise SystemExit(1 if figures["differing"] else 0)


if __name__ == "__main__":
    main()
