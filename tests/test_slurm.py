"""Grids through the launchers: a real single-node SLURM with accounting (scripts/slurm.sh), and local_gpus.

The SLURM tests start the cluster with `scripts/slurm.sh up` (idempotent) and stop it at the end of the session
unless it was up before. They are skipped only where they cannot run: not root and the Debian packages not
installed. Marked `cluster` with the two-process tests: `make test-cluster` runs them, one at a time.
"""

import json
import math
import os
import re
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

import hydra.core.utils
import pytest
import submitit
from hydra import compose, initialize_config_dir
from hydra.core.utils import JobReturn, JobStatus
from omegaconf import OmegaConf
from submitit.core.utils import UncompletedJobError
from submitit.local.local import LocalJob
from submitit.slurm.slurm import SlurmInfoWatcher
from test_ddp import RANK_1_LOG, TWO_PROCESSES, assert_one_job_folder, assert_trains_as, train_one_process

from conftest import ROOT, TINY, job_dirs, metrics_rows, model_metrics, run_module, summary_rows
from hydra_plugins.rerank_lora_launchers import launchers, private_api

pytestmark = pytest.mark.cluster
SLURM_SH = ROOT / "scripts" / "slurm.sh"
DAEMONS = ["slurmctld", "slurmd", "sbatch", "sacct", "munged", "slurmdbd", "mariadbd"]
# Small jobs on the test cluster (2 cores here: two jobs at a time, one thread each).
ON_TEST_CLUSTER = [
    "hydra/launcher=slurm",
    "hydra.launcher.partition=local",
    "hydra.launcher.gpus_per_node=null",
    "hydra.launcher.cpus_per_task=1",
    "hydra.launcher.mem_gb=2",
    "hydra.launcher.timeout_min=10",
    'hydra.launcher.setup=["export OMP_NUM_THREADS=1"]',
]
NOT_MODEL = [a for a in TINY if not a.startswith("model=")]


@pytest.mark.parametrize("launcher", [None, "slurm", "local_gpus"])
def test_launcher_configs_compose_and_basic_stays_default(launcher):
    with initialize_config_dir(str(ROOT / "conf"), version_base=None):
        overrides = [f"hydra/launcher={launcher}"] if launcher else []
        cfg = compose("config", overrides=overrides, return_hydra_config=True)
    target = OmegaConf.to_container(cfg.hydra.launcher, resolve=False)["_target_"]
    expected = {None: "BasicLauncher", "slurm": "SlurmLauncher", "local_gpus": "LocalLauncher"}[launcher]
    assert target.endswith(f".{expected}")
    if launcher == "slurm":
        assert {"partition", "gpus_per_node", "cpus_per_task", "mem_gb", "timeout_min", "array_parallelism", "account"} <= set(
            cfg.hydra.launcher
        )


def test_private_api_check_passes_on_installed_versions():
    """The launchers import: the installed submitit and Hydra have every private attribute they use."""
    from hydra_plugins.rerank_lora_launchers import launchers

    private_api.check_private_api()
    assert all(private.present() for private in private_api.USED)
    assert launchers.private_api is private_api


def test_private_api_check_names_a_missing_attribute(monkeypatch):
    monkeypatch.delattr(hydra.core.utils, "_save_config")
    with pytest.raises(ImportError) as raised:
        private_api.check_private_api()
    message = str(raised.value)
    installed = private_api.installed_version("hydra-core")
    assert f"hydra.core.utils._save_config is missing from hydra-core {installed} (tested: hydra-core>=1.3.8,<1.4)" in message
    assert "pip install 'hydra-core>=1.3.8,<1.4'" in message
    assert "submitit" not in message  # only what is missing


def test_private_api_check_sees_attributes_set_per_instance():
    """An attribute that __init__ sets (submitit's watcher and job attributes) is checked in __init__'s code."""

    class Watcher:
        def __init__(self):
            self._last_status_check = float("-inf")

    class RenamedWatcher:
        def __init__(self):
            self._last_sacct_call = float("-inf")

    private_api.check_private_api((private_api.Private("submitit", Watcher, "_last_status_check"),))
    with pytest.raises(ImportError, match=r"RenamedWatcher\._last_status_check is missing from submitit 1\.5\.\d+ "):
        private_api.check_private_api((private_api.Private("submitit", RenamedWatcher, "_last_status_check"),))


def test_private_api_accessors_on_real_objects(tmp_path):
    job = LocalJob(folder=tmp_path, job_id="0")  # no process, no result
    assert private_api.process_returncode(job) is None
    private_api.stop_waiting_for_result(job)
    start = time.monotonic()
    with pytest.raises(UncompletedJobError):
        job.results()
    assert time.monotonic() - start < 5  # not submitit's 15 s wait for the result file
    assert private_api.seconds_since_status_check(SlurmInfoWatcher()) == math.inf  # never asked sacct
    watcher = SlurmInfoWatcher()
    private_api.unfinish(watcher, "7_1", "PENDING")  # what slurmctld says of a job that sacct showed FAILED
    assert watcher.get_state("7_1", mode="cache") == "PENDING" and not watcher.is_done("7_1", mode="cache")
    failed = JobReturn(status=JobStatus.FAILED)
    failed.return_value = ValueError("boom")
    assert str(private_api.job_exception(failed)) == "boom"
    private_api.save_config(OmegaConf.create({"a": 1}), "config.yaml", tmp_path / ".hydra")
    assert OmegaConf.load(tmp_path / ".hydra" / "config.yaml") == {"a": 1}


def slurm_installed() -> bool:
    path = os.pathsep.join([os.environ.get("PATH", ""), "/usr/sbin", "/sbin"])
    return all(shutil.which(name, path=path) for name in DAEMONS)


@pytest.fixture(scope="session")
def slurm_env():
    """The environment of a client of the test cluster (SLURM_CONF), after `scripts/slurm.sh up`. A cluster this
    fixture started is stopped when the session ends; one that was up already (CI's `make slurm-up`) stays up."""
    if os.geteuid() != 0 and not slurm_installed():
        pytest.skip("SLURM is not installed and installing it needs root (scripts/slurm.sh up installs it as root)")
    was_up = slurm_installed() and subprocess.run([str(SLURM_SH), "status"], capture_output=True).returncode == 0
    result = subprocess.run([str(SLURM_SH), "up"], capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, f"scripts/slurm.sh up failed:\n{result.stdout}\n{result.stderr}"
    env = subprocess.run([str(SLURM_SH), "env"], capture_output=True, text=True, check=True).stdout
    (conf,) = re.findall(r"SLURM_CONF=(\S+)", env)
    assert Path(conf).is_file()
    yield {**os.environ, "SLURM_CONF": conf, "WANDB_MODE": "offline", "PYTHONUNBUFFERED": "1"}
    if not was_up:
        subprocess.run([str(SLURM_SH), "down"], capture_output=True, timeout=300)


def slurm(env: dict, *args: str) -> str:
    return subprocess.run(list(args), env=env, capture_output=True, text=True, check=True, timeout=60).stdout


def sacct_states(env: dict, job_ids: list[str]) -> dict[str, str]:
    out = slurm(env, "sacct", "-X", "-n", "-P", "-o", "JobID,State", "-j", ",".join(job_ids))
    return dict(line.split("|", 1) for line in out.splitlines() if line)


def submitit_job_id(job_dir: Path) -> str:
    """The SLURM job id the job ran as: submitit's JobEnvironment id, which Hydra records as hydra.job.id."""
    return str(OmegaConf.load(job_dir / ".hydra" / "hydra.yaml").hydra.job.id)


def test_grid_runs_through_slurm(slurm_env, tmp_path):
    """12 cells (3 tiny families x 4 ranks) as one SLURM job array: every cell completed, in SLURM's accounting too."""
    args = ["-m", *ON_TEST_CLUSTER, *NOT_MODEL, "model=tiny_llama,tiny_mistral,tiny_pythia", "lora.rank=1,2,8,32"]
    start = time.monotonic()
    result = run_module("rerank_lora.run", args, tmp_path, env=slurm_env, timeout=600)
    print(f"12-cell grid through SLURM: {time.monotonic() - start:.0f} s")
    assert result.returncode == 0, result.stderr[-5000:]
    jobs = job_dirs(tmp_path)
    assert len(jobs) == 12
    configs = [OmegaConf.load(job / ".hydra" / "config.yaml") for job in jobs]
    cells = {(cfg.model.name, cfg.lora.rank) for cfg in configs}
    assert cells == {(m, r) for m in ("tiny_llama", "tiny_mistral", "tiny_pythia") for r in (1, 2, 8, 32)}
    for job in jobs:
        assert json.loads((job / "status.json").read_text())["status"] == "completed", job
        assert {row["step"] for row in metrics_rows(job) if row["ranker"] == "model"} >= {0, 2}
    # one array: ids <array>_<task>, one per cell, each with submitit's folder and result
    ids = sorted(submitit_job_id(job) for job in jobs)
    assert all(re.fullmatch(r"\d+_\d+", i) for i in ids) and len(set(ids)) == 12
    assert len({i.split("_")[0] for i in ids}) == 1
    (sweep,) = {job.parent for job in jobs}
    for job_id in ids:
        assert (sweep / ".submitit" / job_id / f"{job_id}_0_result.pkl").is_file()
    assert set(sacct_states(slurm_env, ids).items()) == {(i, "COMPLETED") for i in ids}
    assert (sweep / "summary.csv").is_file()


class Sweep:
    """A multirun started in the background, its stdout and stderr read as they come."""

    def __init__(self, args: list[str], cwd: Path, env: dict):
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "rerank_lora.run", *args], cwd=cwd, env=env,
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )
        self.out: list[str] = []
        self.err: list[str] = []
        self.readers = [
            threading.Thread(target=lambda: self.out.append(self.proc.stdout.read()), daemon=True),
            threading.Thread(target=lambda: self.err.append(self.proc.stderr.read()), daemon=True),
        ]
        for reader in self.readers:
            reader.start()

    def running(self) -> bool:
        return self.proc.poll() is None

    def wait(self, timeout: float) -> int:
        try:
            return self.proc.wait(timeout=timeout)
        finally:
            self.stop()

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        for reader in self.readers:
            reader.join(timeout=10)

    @property
    def stdout(self) -> str:
        return "".join(self.out)

    @property
    def stderr(self) -> str:
        return "".join(self.err)


def wait_until(what: str, sweep: Sweep, seconds: float, found, poll: float = 1.0):
    """found() until it returns something truthy, while the sweep runs, for at most `seconds`."""
    deadline = time.monotonic() + seconds
    while True:
        value = found()
        if value:
            return value
        assert sweep.running(), f"the sweep ended before {what}:\n{sweep.stdout[-3000:]}\n{sweep.stderr[-3000:]}"
        assert time.monotonic() < deadline, f"{what}: not within {seconds} s"
        time.sleep(poll)


def first_row_per_job(sweep_dir: Path) -> dict[str, dict]:
    """summary.csv's first row per job folder."""
    rows: dict[str, dict] = {}
    for row in summary_rows(sweep_dir):
        rows.setdefault(row["job"], row)
    return rows


def test_cancelled_cell_is_a_failed_cell_in_the_summary(slurm_env, tmp_path):
    """A cell scancel-ed while it runs is a failed cell: the other cell completes, summary.csv names the job id and
    CANCELLED, and the sweep exits non-zero with the count on stderr, promptly."""
    args = ["-m", *ON_TEST_CLUSTER, *[a for a in TINY if not a.startswith("trainer.max_steps")], "trainer.max_steps=4,100000"]
    sweep = Sweep(args, tmp_path, slurm_env)
    try:

        def long_cell_running():  # job 1 of the array, once SLURM runs it
            for folder in tmp_path.glob("outputs/**/.submitit/*_1"):
                if slurm(slurm_env, "squeue", "-h", "-j", folder.name, "-o", "%T").strip() == "RUNNING":
                    return folder.name

        job_id = wait_until("the long cell runs", sweep, 240, long_cell_running)
        slurm(slurm_env, "scancel", job_id)
        cancelled = time.monotonic()
        returncode = sweep.wait(timeout=180)
        reported_after = time.monotonic() - cancelled
    finally:
        sweep.stop()
    print(f"scancel-ed cell reported after {reported_after:.0f} s")
    assert returncode != 0, sweep.stderr[-3000:]
    assert reported_after < 90
    assert sacct_states(slurm_env, [job_id])[job_id].startswith("CANCELLED")
    count = r"^error: 1 of 2 cells failed \(status and error in .*summary\.csv\)$"
    assert re.search(count, sweep.stderr, re.M), sweep.stderr[-3000:]
    assert "Traceback" not in sweep.stderr, sweep.stderr[-3000:]
    jobs = job_dirs(tmp_path)
    (sweep_dir,) = {job.parent for job in jobs}
    steps = {job.name: OmegaConf.load(job / ".hydra" / "config.yaml").trainer.max_steps for job in jobs}
    rows = first_row_per_job(sweep_dir)
    assert set(rows) == set(steps)
    for name, row in rows.items():
        status = json.loads((sweep_dir / name / "status.json").read_text())
        if steps[name] == 4:
            assert row["status"] == status["status"] == "completed", row
        else:
            assert row["status"] == status["status"] == "failed", row
            assert row["error"] == status["error"] and row["error"].startswith(f"SLURM job {job_id}: CANCELLED"), row


# A cell that checkpoints (with trainer.ckpt) at steps 0, 20, 40, 60, 80: each interruption resumes from the last one.
RESUMABLE = [
    "model=tiny_llama", "trainer.max_steps=80", "schedule=paper", "schedule.every=20", "data.eval_depth=20", "logger=csv"
]


def requeued(env: dict, job_id: str, times: int) -> bool:
    """Whether SLURM has requeued the job `times` times; releases it if SLURM holds it (a requeued job waits
    AuthInfo's cred_expire, 120 s by default, before it may start again)."""
    info = slurm(env, "scontrol", "show", "job", job_id)
    if int(re.search(r"Restarts=(\d+)", info).group(1)) < times:
        return False
    state, reason = re.search(r"JobState=(\S+) Reason=(\S+)", info).groups()
    if state == "PENDING" and reason == "BeginTime":
        slurm(env, "scontrol", "update", f"jobid={job_id}", "StartTime=now")
        return False  # released: seen again at the next poll
    return state in ("PENDING", "RUNNING", "COMPLETED")


def sacct_states_settle(env: dict, job_id: str, expected: list[str], seconds: float = 60) -> bool:
    """sacct's State of every run of the job (-D), once it is `expected`: accounting (slurmdbd) lags slurmctld, and
    can still say RUNNING for a run that has ended when the sweep returns. Asserts it within `seconds`."""
    deadline = time.monotonic() + seconds
    while (states := slurm(env, "sacct", "-X", "-D", "-n", "-P", "-o", "State", "-j", job_id).split()) != expected:
        assert time.monotonic() < deadline, f"sacct says {states} for job {job_id} after {seconds} s, not {expected}"
        time.sleep(1)
    return True


def slurmctld_state(env: dict, job_id: str) -> tuple[str, str, int]:
    """JobState, Reason and Restarts, as slurmctld (scontrol show job) has them now."""
    info = slurm(env, "scontrol", "show", "job", "-o", job_id)
    state, reason = re.search(r"JobState=(\S+) Reason=(\S+)", info).groups()
    return state, reason, int(re.search(r"Restarts=(\d+)", info).group(1))


def test_wait_all_waits_for_a_requeued_job_that_sacct_shows_failed(slurm_env, tmp_path, monkeypatch):
    """sacct is written asynchronously (slurmdbd) and can show the run that SLURM has just requeued as FAILED;
    submitit's watcher then keeps FAILED for good, and the launcher reported a cell failed while SLURM reran it
    (CI: "SLURM job 15_1: FAILED; the job reported: SystemExit"). A real job, requeued and held (BeginTime) by
    slurmctld, with that stale state injected in the watcher: _wait_all returns only once its rerun has ended."""
    monkeypatch.setenv("SLURM_CONF", slurm_env["SLURM_CONF"])
    executor = submitit.AutoExecutor(folder=tmp_path / "%j", cluster="slurm")
    executor.update_parameters(slurm_partition="local", cpus_per_task=1, mem_gb=1, timeout_min=10)
    job = executor.submit(time.sleep, 8)
    deadline = time.monotonic() + 120
    while slurmctld_state(slurm_env, job.job_id)[0] != "RUNNING":
        assert time.monotonic() < deadline, slurmctld_state(slurm_env, job.job_id)
        time.sleep(0.5)
    slurm(slurm_env, "scontrol", "requeue", job.job_id)
    while slurmctld_state(slurm_env, job.job_id)[::2] != ("PENDING", 1):  # held for BeginTime: AuthInfo's cred_expire
        assert time.monotonic() < deadline, slurmctld_state(slurm_env, job.job_id)
        time.sleep(0.5)
    stale = f"JobID|State|NodeList\n{job.job_id}|FAILED|vm\n".encode()  # sacct, before slurmdbd has the requeue
    with monkeypatch.context() as patch:
        patch.setattr(submitit.core.core.subprocess, "check_output", lambda *args, **kwargs: stale)
        job.watcher.update()  # caches FAILED as finished, for good
    returned: list[int] = []
    try:
        assert job.done() and not job.paths.result_pickle.exists()  # what submitit believes: over, without a result
        waiting = threading.Thread(target=lambda: (launchers._wait_all([job], 60), returned.append(1)), daemon=True)
        waiting.start()
        waiting.join(timeout=5)
        assert not returned, "_wait_all believed sacct's FAILED while slurmctld holds the requeued job"
        slurm(slurm_env, "scontrol", "update", f"jobid={job.job_id}", "StartTime=now")
        waiting.join(timeout=180)
        assert returned, "_wait_all did not return after the rerun ended"
        assert job.paths.result_pickle.exists()  # it returned for the rerun's result
        assert job.result() is None  # time.sleep's
        assert slurmctld_state(slurm_env, job.job_id)[2] == 1
    finally:
        if not returned:
            job.cancel(check=False)


def resumed_steps(run_log: Path) -> list[int]:
    """The steps a job resumed from, as its run.log (appended to by every run) says."""
    return [int(step) for step in re.findall(r"resuming from \S*/checkpoints/step-(\d+)/trainer.ckpt", run_log.read_text())]


def test_timed_out_or_requeued_cell_resumes_in_its_folder(slurm_env, tmp_path):
    """Two identical cells. Once the second has its step-20 trainer.ckpt it gets submitit's timeout signal (USR2,
    what SLURM sends signal_delay_s before the time limit): it checkpoints and requeues itself; once it has resumed
    and saved a later step, SLURM requeues it (scontrol requeue: SIGTERM, as a preemption with PreemptMode=REQUEUE).
    Each time it runs again in the same folder, resumes from its last trainer.ckpt, and it ends with the metrics
    of the uninterrupted cell at every step."""
    args = ["-m", *ON_TEST_CLUSTER, *RESUMABLE, "+case=straight,requeued"]
    sweep = Sweep(args, tmp_path, slurm_env)
    try:

        def checkpoint(step: int):
            for ckpt in tmp_path.glob(f"outputs/**/checkpoints/step-{step}/trainer.ckpt"):
                if "case=requeued" in str(ckpt):
                    return ckpt.parents[2]

        job = wait_until("the step-20 checkpoint", sweep, 300, lambda: checkpoint(20), poll=0.05)
        job_id = wait_until("its job id", sweep, 30, lambda: next((p.name for p in job.parent.glob(".submitit/*_1")), None))
        slurm(slurm_env, "scancel", "--signal=USR2", job_id)
        wait_until("the first requeue", sweep, 60, lambda: requeued(slurm_env, job_id, 1), poll=0.5)
        run_log = job / "run.log"
        first = wait_until("the first resume", sweep, 120, lambda: resumed_steps(run_log), poll=0.2)[0]
        wait_until("a later checkpoint", sweep, 120, lambda: checkpoint(first + 20), poll=0.05)
        slurm(slurm_env, "scontrol", "requeue", job_id)
        wait_until("the second requeue", sweep, 60, lambda: requeued(slurm_env, job_id, 2), poll=0.5)
        returncode = sweep.wait(timeout=300)
    finally:
        sweep.stop()
    assert returncode == 0, sweep.stdout[-3000:] + sweep.stderr[-3000:]
    log = "".join(p.read_text() for p in job.parent.glob(f".submitit/{job_id}/*_log.*"))
    assert "this job is timed-out" in log and f"Requeued job {job_id} (4 remaining timeouts)" in log, log[-3000:]
    resumes = resumed_steps(run_log)
    assert len(resumes) == 2 and 20 <= resumes[0] < resumes[1] < 80, resumes
    assert sacct_states_settle(slurm_env, job_id, ["REQUEUED", "REQUEUED", "COMPLETED"])
    assert json.loads((job / "status.json").read_text())["status"] == "completed"
    (straight,) = [j for j in job_dirs(tmp_path) if "case=straight" in j.name]
    expected, got = model_metrics(straight), model_metrics(job)
    assert set(got) == set(expected) == {(s, n) for s in ("dev", "test") for n in (0, 20, 40, 60, 80)}
    for key, row in expected.items():
        assert got[key]["nDCG@10"] == pytest.approx(row["nDCG@10"], abs=1e-4), key
    assert sum(r["ranker"] == "first-stage" for r in metrics_rows(job)) == 2  # the baseline once, not three times
    assert {row["status"] for row in first_row_per_job(job.parent).values()} == {"completed"}


@pytest.fixture(scope="module")
def one_process_job(tmp_path_factory) -> Path:
    """tests/test_ddp.py's reference: the data-parallel job's training in one process, 4 groups a step."""
    return train_one_process(tmp_path_factory.mktemp("reference"))


def test_data_parallel_cell_of_two_tasks_trains_as_one_process_and_resumes(slurm_env, tmp_path, one_process_job):
    """trainer=ddp as one SLURM job of 2 tasks, a CPU each (gloo), the way a multi-GPU cell runs on a cluster: both
    tasks run the cell in its one folder, which task 0 alone writes. Once it has its step-2 trainer.ckpt it gets
    submitit's timeout signal (USR2): task 0 requeues the job, whose 2 tasks run again and resume from the last
    checkpoint. It ends with the weights of the 1-process run (2 x 2 groups a step against 4) at every checkpoint and
    its metrics. (The cell's folder is named by hydra.sweep.subdir: its overrides would make a name too long.)"""
    args = ["-m", *ON_TEST_CLUSTER, "hydra.launcher.tasks_per_node=2", *TWO_PROCESSES, "hydra.sweep.subdir=ddp"]
    start = time.monotonic()
    sweep = Sweep(args, tmp_path, slurm_env)
    try:
        ckpt = wait_until("the step-2 checkpoint", sweep, 240,
                          lambda: next(tmp_path.glob("outputs/**/ddp/checkpoints/step-2/trainer.ckpt"), None), poll=0.05)
        job = ckpt.parents[2]
        submitit = job.parent / ".submitit"
        job_id = wait_until("its job id", sweep, 30, lambda: next((p.name for p in submitit.glob("[0-9]*") if p.is_dir()), None))
        slurm(slurm_env, "scancel", "--signal=USR2", job_id)
        wait_until("the requeue", sweep, 60, lambda: requeued(slurm_env, job_id, 1), poll=0.5)
        returncode = sweep.wait(timeout=300)
    finally:
        sweep.stop()
    print(f"2-task cell through SLURM, requeued once: {time.monotonic() - start:.0f} s")
    assert returncode == 0, sweep.stdout[-3000:] + sweep.stderr[-3000:]
    log = "".join(p.read_text() for p in submitit.glob(f"{job_id}/*_log.*"))
    # Task 0 requeued the job. (Task 1's "not requeuing since I am a slave" line is not asserted: the requeue can end
    # task 1 before it logs it. That the job was requeued once, not twice, is the sacct states' check below.)
    assert f"Requeued job {job_id}" in log
    # task 1 may still be ending: its first run's result (written when task 0 left) already counts for submitit
    deadline = time.monotonic() + 60
    while (states := slurm(slurm_env, "sacct", "-X", "-D", "-n", "-P", "-o", "State", "-j", job_id).split())[-1] == "RUNNING":
        assert time.monotonic() < deadline, states
        time.sleep(1)
    assert states == ["REQUEUED", "COMPLETED"], states
    (step,) = resumed_steps(job / "run.log")
    assert step in (2, 4) and resumed_steps(job / RANK_1_LOG) == [step]  # both tasks resumed, from the same checkpoint
    assert json.loads((job / "status.json").read_text()) == {"status": "completed", "error": None}
    assert {row["status"] for row in first_row_per_job(job.parent).values()} == {"completed"}
    largest = assert_trains_as(job, one_process_job)
    print(f"2 SLURM tasks vs 1 process: largest weight difference {largest:.1e}")
    assert_one_job_folder(tmp_path, job, one_process_job)
    assert [p.name for p in submitit.glob(f"{job_id}/*_result.pkl")] != []  # a result per task; task 0's is the cell's


PROBE = """
import json, os, time
from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig


@hydra.main(config_path=".", config_name="probe", version_base=None)
def main(cfg):
    start = time.time()
    time.sleep(cfg.seconds)
    record = {"gpu": os.environ.get("CUDA_VISIBLE_DEVICES"), "start": start, "end": time.time()}
    out = Path(HydraConfig.get().runtime.output_dir)
    (out / "probe.json").write_text(json.dumps(record))
    (out / "status.json").write_text(json.dumps({"status": "completed", "error": None}))


if __name__ == "__main__":
    main()
"""


def run_probe(cwd: Path, visible: str, overrides: list[str]) -> subprocess.CompletedProcess:
    """A multirun of PROBE through hydra/launcher=local_gpus, with CUDA_VISIBLE_DEVICES=visible, and the sweep
    summary of rerank_lora.run (PROBE writes status.json as a cell does)."""
    (cwd / "probe.py").write_text(PROBE)
    (cwd / "probe.yaml").write_text(
        "defaults:\n  - override hydra/launcher: local_gpus\n  - _self_\n"
        f"hydra:\n  searchpath: [file://{ROOT / 'conf'}]\n"
        "  callbacks:\n    sweep_summary:\n      _target_: rerank_lora.hydra_callbacks.SweepSummary\n"
        "x: 0\nseconds: 3\n"
    )
    env = {**os.environ, "CUDA_VISIBLE_DEVICES": visible}
    return subprocess.run(
        [sys.executable, "probe.py", "-m", *overrides], cwd=cwd, env=env, capture_output=True, text=True, timeout=300
    )


def test_local_gpus_runs_one_job_per_gpu_each_pinned(tmp_path):
    """2 visible "GPUs" (ids 3 and 5; no GPU needed) and 5 jobs: at most 2 at a time, each alone on its own device."""
    result = run_probe(tmp_path, "3,5", ["x=1,2,3,4,5"])
    assert result.returncode == 0, result.stderr[-3000:]
    records = [json.loads(p.read_text()) for p in tmp_path.glob("multirun/**/probe.json")]
    assert len(records) == 5
    assert {r["gpu"] for r in records} == {"3", "5"}  # each job sees one device, and both are used
    for r in records:  # jobs overlapping in time never share a device
        overlapping = [o for o in records if o is not r and o["start"] < r["end"] and r["start"] < o["end"]]
        assert len(overlapping) <= 1 and all(o["gpu"] != r["gpu"] for o in overlapping)


def test_local_gpus_without_a_gpu_fails_clearly(tmp_path):
    """The job's setup fails: a failed cell, counted by the summary (non-zero exit)."""
    result = run_probe(tmp_path, "", ["seconds=0"])
    assert result.returncode != 0
    assert "no visible GPU" in result.stderr
    assert "error: 1 of 1 cells failed" in result.stderr
    assert not list(tmp_path.glob("multirun/**/probe.json"))
    (status,) = tmp_path.glob("multirun/**/status.json")
    assert re.fullmatch(r"local job \d+: FINISHED, exit code 1", json.loads(status.read_text())["error"])
