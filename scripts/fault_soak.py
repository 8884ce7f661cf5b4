"""Fault soak: kill tiny jobs again and again, at random moments (SIGKILL or SIGTERM after a random delay) and at
random dangerous points (rerank_lora/faults.py), re-run each until it completes, and compare every finished job
with an uninterrupted one (metrics and run scores within 1e-4, no duplicated or partial metrics line, status
completed, no lock left). Prints the figures as JSON; exit status 1 if any job differs.

    .venv/bin/python scripts/fault_soak.py --injections 100 [--seed 0] [--workdir /tmp/soak]
(`make fault-soak`). The tests in tests/test_faults.py do the same once per dangerous point.

With --slurm: preemption on the test SLURM (scripts/slurm.sh up, or `make slurm-up`; SLURM_CONF is taken from the
environment or from `scripts/slurm.sh env`). A grid of 8 cells (tiny_llama, lora.rank 1,2,4,8 x seed 0,1; 80 steps,
a trainer.ckpt every 20) runs through hydra/launcher=slurm with tests/test_slurm.py's test-cluster settings, once
uninterrupted (the twins), then again while running cells are preempted at random moments: `scontrol requeue`
(SIGTERM, then SLURM requeues the job, as a preemption does) or `scancel --signal=USR2` (submitit's timeout path:
it requeues the job itself; sent once the run has loaded its pickle, as SLURM sends it near the time limit), each
requeued job released from its BeginTime hold as tests/test_slurm.py's requeued() does. Grids are run, each until
done, until at least --preemptions preemptions landed (the job's Restarts went up) over at least --min-cells
cells. Every cell is compared with its twin as above; summary.csv must have every cell once (no duplicated row)
and completed, and sacct must show each job requeued exactly as often as it was preempted (no requeue loop). A signal that
reaches a job as it ends (its result written, Python exiting) requeues nothing: it is counted as missed, not as a
preemption, and the job may end FAILED in sacct; its cell must still be completed and identical.

    .venv/bin/python scripts/fault_soak.py --slurm [--preemptions 30] [--min-cells 8] [--seed 0] [--workdir /tmp/soak-slurm]
"""

import argparse
import csv
import json
import os
import random
import re
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from omegaconf import OmegaConf

from hydra_plugins.rerank_lora_launchers.launchers import ALIVE
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


# --- preemption on the test SLURM (--slurm) ---
ROOT = Path(__file__).resolve().parents[1]
# tests/test_slurm.py's ON_TEST_CLUSTER: small jobs on the test cluster (2 cores: two jobs at a time, one thread each)
ON_TEST_CLUSTER = [
    "hydra/launcher=slurm",
    "hydra.launcher.partition=local",
    "hydra.launcher.gpus_per_node=null",
    "hydra.launcher.cpus_per_task=1",
    "hydra.launcher.mem_gb=2",
    "hydra.launcher.timeout_min=10",
    'hydra.launcher.setup=["export OMP_NUM_THREADS=1"]',
]
# 8 cells, each with a trainer.ckpt at steps 0, 20, 40, 60, 80 (tests/test_slurm.py's RESUMABLE)
GRID = ["model=tiny_llama", "trainer.max_steps=80", "schedule=paper", "schedule.every=20", "data.eval_depth=20", "logger=csv",
        "lora.rank=1,2,4,8", "seed=0,1"]
CELLS = 8
# submitit counts every USR2 as a timeout (with timeout_min=10 a job has always "timed out"): room for all of them
MANY_TIMEOUTS = ["hydra.launcher.max_num_timeout=100"]


def slurm_env() -> dict:
    env = ENV | {"PYTHONUNBUFFERED": "1"}
    if "SLURM_CONF" not in env:
        out = subprocess.run([str(ROOT / "scripts" / "slurm.sh"), "env"], capture_output=True, text=True, check=True).stdout
        env["SLURM_CONF"] = re.search(r"SLURM_CONF=(\S+)", out).group(1)
    return env


def slurm(env: dict, *args: str, timeout: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run(list(args), env=env, capture_output=True, text=True, timeout=timeout)


def array_jobs(env: dict, array_id: str) -> dict[str, dict]:
    """slurmctld's view of the array's tasks that have started: {job id: JobState, Reason, Restarts, RunTime} (the
    tasks still waiting for their first start are one record, 12_[3-7], left out)."""
    jobs = {}
    for line in slurm(env, "scontrol", "show", "job", "-o", array_id).stdout.splitlines():
        fields = dict(re.findall(r"(\w+)=(\S*)", line))
        if fields.get("ArrayTaskId", "").isdigit():
            jobs[f"{fields['ArrayJobId']}_{fields['ArrayTaskId']}"] = fields | {"Restarts": int(fields["Restarts"])}
    return jobs


def release_held(env: dict, jobs: dict[str, dict]) -> None:
    """A requeued job waits AuthInfo's cred_expire (120 s) to start again: released at once (test_slurm's requeued())."""
    for job_id, fields in jobs.items():
        if fields["JobState"] == "PENDING" and fields["Reason"] == "BeginTime":
            slurm(env, "scontrol", "update", f"jobid={job_id}", "StartTime=now")


def usr2_ready(sweep: Path, job_id: str, restarts: int) -> bool:
    """The job's current run has loaded its pickle, so submitit's USR2 handler is set (before it, USR2 kills the
    process: SLURM sends it only signal_delay_s before the time limit, never in a run's first seconds)."""
    log_file = sweep / ".submitit" / job_id / f"{job_id}_0_log.out"
    runs = log_file.read_text(errors="replace").split("Loading pickle") if log_file.is_file() else []
    return len(runs) == restarts + 2 and runs[-1].strip("\n").count("\n") >= 1  # a line after the pickle's


def cells_of(sweep: Path) -> dict[tuple, Path]:
    """The grid's cell folders by their overrides."""
    folders = [p.parent.parent for p in sweep.glob("*/.hydra/overrides.yaml")]
    return {tuple(sorted(OmegaConf.load(p / ".hydra" / "overrides.yaml"))): p for p in folders}


def cell_job_id(folder: Path) -> str:
    """The SLURM job id the cell ran as (submitit's, recorded by Hydra as hydra.job.id)."""
    return str(OmegaConf.load(folder / ".hydra" / "hydra.yaml").hydra.job.id)


def sacct_runs(env: dict, job_id: str, expected: list[str], seconds: float = 60) -> list[str]:
    """sacct's State of every run of the job, once it is `expected` or after `seconds` (accounting lags slurmctld)."""
    deadline = time.monotonic() + seconds
    while True:
        states = slurm(env, "sacct", "-X", "-D", "-n", "-P", "-o", "State", "-j", job_id).stdout.split()
        if states == expected or time.monotonic() > deadline:
            return states
        time.sleep(1)


def launch_grid(env: dict, workdir: Path, name: str, extra: list[str]) -> subprocess.Popen:
    out = (workdir / f"{name}.log").open("w")
    args = ["-m", *ON_TEST_CLUSTER, *GRID, *extra, f"hydra.sweep.dir={workdir / name}"]
    return subprocess.Popen([sys.executable, "-m", "rerank_lora.run", *args], cwd=workdir, env=env, stdout=out,
                            stderr=subprocess.STDOUT)


class Preempter:
    """Runs grids while preempting their running cells at random moments; the figures as it goes."""

    def __init__(self, env: dict, rng: random.Random, workdir: Path, args: argparse.Namespace):
        self.env, self.rng, self.workdir, self.args = env, rng, workdir, args
        self.figures = {"preemptions": 0, "by_kind": {"requeue": 0, "usr2": 0}, "missed": 0, "grids": 0, "cells": 0,
                        "cells_preempted": 0, "most_on_one_cell": 0, "identical": 0, "differing": [],
                        "duplicated_rows": 0, "summary_problems": [], "failed_sweeps": [], "resumes": 0}
        self.per_cell: dict[str, int] = {}  # landed preemptions by array task index (the cell), over all grids
        # jobs whose last run a signal reached as it ended (after its result was written): the state it ended in
        self.ended_by_signal: dict[str, str] = {}

    def bar_reached(self) -> bool:
        return self.figures["preemptions"] >= self.args.preemptions and len(self.per_cell) >= self.args.min_cells

    def run_grid(self, name: str) -> tuple[int, dict[str, int]]:
        """One grid, until done and no job of it is left alive; its exit status and landed preemptions by job id."""
        sweep = self.workdir / name
        proc = launch_grid(self.env, self.workdir, name, MANY_TIMEOUTS)
        try:
            return self._preempt_until_done(name, sweep, proc)
        finally:  # the soak stopped early: so does its grid
            if proc.poll() is None:
                proc.kill()
                for job_dir in sweep.glob(".submitit/*_*"):
                    slurm(self.env, "scancel", job_dir.name)

    def _preempt_until_done(self, name: str, sweep: Path, proc: subprocess.Popen) -> tuple[int, dict[str, int]]:
        landed: dict[str, int] = {}
        array_id = None
        next_at = time.monotonic() + self.rng.uniform(self.args.min_gap, self.args.max_gap)
        while True:
            if array_id is None:
                ids = [m.group(1) for p in sweep.glob(".submitit/*_*") if (m := re.fullmatch(r"(\d+)_\d+", p.name))]
                array_id = ids[0] if ids else None
            jobs = array_jobs(self.env, array_id) if array_id else {}
            release_held(self.env, jobs)
            running = proc.poll() is None
            if not running and not any(fields["JobState"] in ALIVE for fields in jobs.values()):
                return proc.returncode, landed
            due = running and time.monotonic() >= next_at and not self.bar_reached()
            if due and self.preempt_one(name, sweep, array_id, jobs, landed):
                next_at = time.monotonic() + self.rng.uniform(self.args.min_gap, self.args.max_gap)
            time.sleep(0.5)

    def preempt_one(self, name: str, sweep: Path, array_id: str, jobs: dict[str, dict], landed: dict[str, int]) -> bool:
        """Preempt one running job, chosen at random (once there were enough preemptions, among the cells not
        preempted yet), and wait until slurmctld counts its restart. False when there was none to preempt now (tried
        again at the next poll)."""
        kind = self.rng.choice(["requeue", "usr2"])
        pool = [j for j, f in jobs.items() if f["JobState"] == "RUNNING" and landed.get(j, 0) < self.args.max_per_cell]
        if self.figures["preemptions"] >= self.args.preemptions:
            pool = [j for j in pool if j.split("_")[1] not in self.per_cell]
        if kind == "usr2":
            pool = [j for j in pool if usr2_ready(sweep, j, jobs[j]["Restarts"])]
        if not pool:
            return False
        job_id = self.rng.choice(sorted(pool))
        before, run_time = jobs[job_id]["Restarts"], jobs[job_id]["RunTime"]
        command = ["scontrol", "requeue", job_id] if kind == "requeue" else ["scancel", "--signal=USR2", job_id]
        try:
            result = slurm(self.env, *command, timeout=10)
        except subprocess.TimeoutExpired:  # scancel retries while the job it signalled requeues itself ("can not be
            result = subprocess.CompletedProcess(command, 0)  # altered now"): what counts is slurmctld's Restarts
        outcome = f"refused: {result.stderr.strip()}" if result.returncode else "not requeued within 90 s"
        deadline = time.monotonic() + 90
        while result.returncode == 0 and time.monotonic() < deadline:
            now = array_jobs(self.env, array_id)
            release_held(self.env, now)
            fields = now.get(job_id)
            if fields and fields["Restarts"] > before:
                outcome = "landed"
                break
            if fields and fields["JobState"] not in ALIVE:
                outcome = f"not requeued: it ended {fields['JobState']}"
                self.ended_by_signal[job_id] = fields["JobState"]
                break
            time.sleep(0.5)
        if outcome == "landed":
            landed[job_id] = landed.get(job_id, 0) + 1
            cell = job_id.split("_")[1]
            self.per_cell[cell] = self.per_cell.get(cell, 0) + 1
            self.figures["preemptions"] += 1
            self.figures["by_kind"][kind] += 1
        else:
            self.figures["missed"] += 1
        print(f"{name} {job_id}: {kind} at {run_time} into run {before + 1} -> {outcome}; "
              f"preemptions {self.figures['preemptions']} over {len(self.per_cell)} cells", flush=True)
        return True

    def check_grid(self, name: str, returncode: int, landed: dict[str, int], reference: dict[tuple, Path]) -> None:
        """Every cell identical to its twin, requeued by SLURM exactly as often as it was preempted and resumed at most
        that often; summary.csv with every cell once, whole and completed."""
        sweep = self.workdir / name
        if returncode != 0:
            tail = (self.workdir / f"{name}.log").read_text(errors="replace")[-2000:]
            self.figures["failed_sweeps"].append({name: f"exit status {returncode}: ...{tail}"})
        cells = cells_of(sweep)
        self.figures["cells"] += len(cells)
        if set(cells) != set(reference):
            self.figures["summary_problems"].append(f"{name}: cells {sorted(cells)} != {sorted(reference)}")
        for key, folder in sorted(cells.items()):
            found = differences(JobFolder(folder), JobFolder(reference[key])) if key in reference else ["no twin"]
            job_id = cell_job_id(folder)
            preempted = landed.get(job_id, 0)
            expected = ["REQUEUED"] * preempted + [self.ended_by_signal.get(job_id, "COMPLETED")]
            if (states := sacct_runs(self.env, job_id, expected)) != expected:
                found.append(f"sacct runs {states} after {preempted} preemptions")
            resumes = len(re.findall(r"resuming from ", (folder / "run.log").read_text(errors="replace")))
            self.figures["resumes"] += resumes
            if resumes > preempted:
                found.append(f"resumed {resumes} times after {preempted} preemptions")
            if found:
                self.figures["differing"].append({f"{name}/{folder.name} ({job_id})": found})
            else:
                self.figures["identical"] += 1
        summary = sweep / "summary.csv"
        if not summary.is_file():
            self.figures["summary_problems"].append(f"{name}: no summary.csv")
            return
        with summary.open() as handle:
            rows = list(csv.DictReader(handle))
        keys = [(r["job"], r.get("split"), r.get("ranker"), r.get("step")) for r in rows]
        self.figures["duplicated_rows"] += len(keys) - len(set(keys))
        for folder in cells.values():
            ours = [r for r in rows if r["job"] == folder.name]
            if len(ours) != len(JobFolder(folder).metrics()) or {r["status"] for r in ours} != {COMPLETED}:
                self.figures["summary_problems"].append(f"{name}/{folder.name}: {len(ours)} summary rows, status "
                                                        f"{sorted({r['status'] for r in ours})}")
        if {r["job"] for r in rows} - {folder.name for folder in cells.values()}:
            self.figures["summary_problems"].append(f"{name}: summary rows of unknown jobs")


def soak_slurm(args: argparse.Namespace, workdir: Path) -> dict:
    env = slurm_env()
    rng = random.Random(args.seed)
    started = time.monotonic()
    reference = cells_of(workdir / "reference")
    if len(reference) != CELLS or any(JobFolder(p).status()["status"] != COMPLETED for p in reference.values()):
        print("the uninterrupted grid (the twins) ...", flush=True)
        code = launch_grid(env, workdir, "reference", []).wait()
        assert code == 0, f"the uninterrupted grid failed: see {workdir / 'reference.log'}"
        reference = cells_of(workdir / "reference")
    preempter = Preempter(env, rng, workdir, args)
    preempter.figures["reference_minutes"] = round((time.monotonic() - started) / 60, 1)
    while not preempter.bar_reached() and preempter.figures["grids"] < args.max_grids:
        preempter.figures["grids"] += 1
        name = next(f"grid{k}" for k in range(1, 1000) if not (workdir / f"grid{k}").exists())
        returncode, landed = preempter.run_grid(name)
        preempter.check_grid(name, returncode, landed, reference)
    figures = preempter.figures
    figures["cells_preempted"] = len(preempter.per_cell)
    figures["most_on_one_cell"] = max(preempter.per_cell.values(), default=0)
    figures["bar_reached"] = preempter.bar_reached()
    figures["minutes"] = round((time.monotonic() - started) / 60, 1)
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--injections", type=int, default=100)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--workdir", type=Path, default=None)
    parser.add_argument("--slurm", action="store_true", help="preempt cells of grids on the test SLURM instead")
    parser.add_argument("--preemptions", type=int, default=30, help="--slurm: at least this many landed")
    parser.add_argument("--min-cells", type=int, default=8, help="--slurm: over at least this many cells")
    parser.add_argument("--max-per-cell", type=int, default=6, help="--slurm: preemptions of one cell in one grid, at most")
    parser.add_argument("--min-gap", type=float, default=5.0, help="--slurm: seconds between preemptions, at least")
    parser.add_argument("--max-gap", type=float, default=45.0, help="--slurm: seconds between preemptions, at most")
    parser.add_argument("--max-grids", type=int, default=5, help="--slurm: give up on the bar after this many grids")
    args = parser.parse_args()
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="fault-soak-"))
    workdir.mkdir(parents=True, exist_ok=True)
    if args.slurm:
        figures = soak_slurm(args, workdir.absolute())
        print(json.dumps(figures, indent=2))
        bad = figures["differing"] or figures["duplicated_rows"] or figures["summary_problems"] or figures["failed_sweeps"]
        raise SystemExit(1 if bad or not figures["bar_reached"] else 0)
    figures = soak(args.injections, args.seed, workdir)
    print(json.dumps(figures, indent=2))
    raise SystemExit(1 if figures["differing"] else 0)


if __name__ == "__main__":
    main()
