"""Grids through the launchers: a real single-node SLURM with accounting (scripts/slurm.sh), and local_gpus.

The SLURM tests start the cluster with `scripts/slurm.sh up` (idempotent; it stays up: `make slurm-down`).
They are skipped only where they cannot run: not root and the Debian packages not installed.
"""

import json
import os
import re
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

from conftest import ROOT, TINY, job_dirs, metrics_rows, run_module

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


def slurm_installed() -> bool:
    path = os.pathsep.join([os.environ.get("PATH", ""), "/usr/sbin", "/sbin"])
    return all(shutil.which(name, path=path) for name in DAEMONS)


@pytest.fixture(scope="session")
def slurm_env():
    """The environment of a client of the test cluster (SLURM_CONF), after `scripts/slurm.sh up`."""
    if os.geteuid() != 0 and not slurm_installed():
        pytest.skip("SLURM is not installed and installing it needs root (scripts/slurm.sh up installs it as root)")
    result = subprocess.run([str(SLURM_SH), "up"], capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, f"scripts/slurm.sh up failed:\n{result.stdout}\n{result.stderr}"
    env = subprocess.run([str(SLURM_SH), "env"], capture_output=True, text=True, check=True).stdout
    (conf,) = re.findall(r"SLURM_CONF=(\S+)", env)
    assert Path(conf).is_file()
    return {**os.environ, "SLURM_CONF": conf, "WANDB_MODE": "offline", "PYTHONUNBUFFERED": "1"}


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


def test_cancelled_cell_fails_the_sweep_promptly(slurm_env, tmp_path):
    """A cell scancel-ed while it runs is reported as failed (non-zero exit naming it), not waited on forever."""
    args = ["-m", *ON_TEST_CLUSTER, *[a for a in TINY if not a.startswith("trainer.max_steps")], "trainer.max_steps=4,100000"]
    sweep = subprocess.Popen(
        [sys.executable, "-m", "rerank_lora.run", *args],
        cwd=tmp_path,
        env=slurm_env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    output: list[str] = []
    reader = threading.Thread(target=lambda: output.append(sweep.stdout.read()), daemon=True)
    reader.start()
    try:
        job_id = None  # the long cell, job 1 of the array, once SLURM runs it
        deadline = time.monotonic() + 240
        while job_id is None:
            assert sweep.poll() is None and time.monotonic() < deadline, "the long cell never started running"
            for folder in tmp_path.glob("outputs/**/.submitit/*_1"):
                state = slurm(slurm_env, "squeue", "-h", "-j", folder.name, "-o", "%T").strip()
                job_id = folder.name if state == "RUNNING" else None
            time.sleep(1)
        slurm(slurm_env, "scancel", job_id)
        cancelled = time.monotonic()
        returncode = sweep.wait(timeout=180)
        reported_after = time.monotonic() - cancelled
    finally:
        if sweep.poll() is None:
            sweep.kill()
        reader.join(timeout=10)
    print(f"scancel-ed cell reported after {reported_after:.0f} s")
    log = "".join(output)
    assert returncode != 0, log[-3000:]
    assert job_id in log and "CANCELLED" in log, log[-3000:]
    assert reported_after < 90
    assert sacct_states(slurm_env, [job_id])[job_id].startswith("CANCELLED")
    (short,) = [j for j in job_dirs(tmp_path) if OmegaConf.load(j / ".hydra" / "config.yaml").trainer.max_steps == 4]
    assert json.loads((short / "status.json").read_text())["status"] == "completed"


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
    (Path(HydraConfig.get().runtime.output_dir) / "probe.json").write_text(json.dumps(record))


if __name__ == "__main__":
    main()
"""


def run_probe(cwd: Path, visible: str, overrides: list[str]) -> subprocess.CompletedProcess:
    """A multirun of PROBE through hydra/launcher=local_gpus, with CUDA_VISIBLE_DEVICES=visible."""
    (cwd / "probe.py").write_text(PROBE)
    (cwd / "probe.yaml").write_text(
        "defaults:\n  - override hydra/launcher: local_gpus\n  - _self_\n"
        f"hydra:\n  searchpath: [file://{ROOT / 'conf'}]\nx: 0\nseconds: 3\n"
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
    result = run_probe(tmp_path, "", ["seconds=0"])
    assert result.returncode != 0
    assert "no visible GPU" in result.stderr
    assert not list(tmp_path.glob("multirun/**/probe.json"))
