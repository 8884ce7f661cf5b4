"""Faults a cluster causes: damaged files left by a kill or a full disk, a second writer on the same job folder,
a run that diverges. Each resumes to the uninterrupted result or stops with one error, and never leaves a
result that is not one."""

import json
import socket
import subprocess

import pytest
import torch
from safetensors.torch import load_file

from conftest import TINY, model_metrics, run_module, summary_rows
from rerank_lora.data.trec_files import read_run
from rerank_lora.job_folder import JobFolder

pytestmark = pytest.mark.faults
ARGS = [*TINY, "trainer.max_steps=6", "schedule.steps=[2,4]", "schedule.final=true"]  # checkpoints at 0, 2, 4, 6


def error_lines(result) -> list[str]:
    return [line for line in result.stderr.splitlines() if line.startswith("error:")]


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    """An uninterrupted job: its folder and its metrics."""
    cwd = tmp_path_factory.mktemp("uninterrupted")
    result = run_module("rerank_lora.run", [*ARGS, "hydra.run.dir=job"], cwd)
    assert result.returncode == 0, result.stderr[-2000:]
    return cwd / "job", model_metrics(cwd / "job")


def copy_job(source, target):
    subprocess.run(["cp", "-r", str(source), str(target)], check=True)
    return JobFolder(target)


def test_damaged_last_checkpoint_and_a_cut_metrics_line_resume_to_the_same_result(finished, tmp_path):
    """As a kill while step 6 was saved and its metrics appended leaves it: the adapter cut short, the status
    never written, half a metrics line. The re-run passes over step 6, resumes from step 4, and ends equal."""
    source, expected = finished
    job = copy_job(source, tmp_path / "job")
    adapter = job.checkpoint(6) / "adapter_model.safetensors"
    adapter.write_bytes(adapter.read_bytes()[:100])
    job.status_file.unlink()
    job.metrics_file.write_text(job.metrics_file.read_text() + '{"step": 6, "split": "dev", "ran')
    result = run_module("rerank_lora.run", [*ARGS, "hydra.run.dir=job"], tmp_path)
    assert result.returncode == 0, result.stderr[-2000:]
    printed = result.stderr + result.stdout
    assert "passing over the checkpoint at step 6" in printed and "resuming from" in printed and "step-4" in printed
    got = model_metrics(job.path)
    assert set(got) == set(expected)
    for key, row in expected.items():
        assert got[key]["nDCG@10"] == pytest.approx(row["nDCG@10"], abs=1e-4), key
    assert load_file(adapter)  # whole again
    assert all(line.endswith("}") for line in job.metrics_file.read_text().splitlines())


@pytest.mark.parametrize("name", ["trainer.ckpt", "head.safetensors"])
def test_every_checkpoint_damaged_is_one_error_naming_a_file_not_a_silent_restart(finished, tmp_path, name):
    source, _ = finished
    job = copy_job(source, tmp_path / "job")
    job.status_file.unlink()
    for _, folder in job.checkpoints():
        (folder / name).write_bytes(b"")  # zero bytes, as a full disk leaves a file
    before = job.metrics_file.read_text()
    result = run_module("rerank_lora.run", [*ARGS, "hydra.run.dir=job"], tmp_path)
    assert result.returncode == 1 and "Traceback" not in result.stderr
    (line,) = error_lines(result)
    assert "every saved checkpoint is damaged" in line and name in line and "train from scratch" in line
    assert job.metrics_file.read_text() == before  # nothing rewritten


def test_a_second_writer_is_refused_with_the_holders_pid_and_host(tmp_path):
    holder = subprocess.Popen(["sleep", "60"])
    try:
        job = JobFolder(tmp_path / "job")
        job.path.mkdir()
        job.lock_file.write_text(json.dumps({"pid": holder.pid, "host": socket.gethostname(), "since": "now"}))
        result = run_module("rerank_lora.run", [*ARGS, "hydra.run.dir=job", "lock_wait_s=1"], tmp_path)
    finally:
        holder.kill()
    assert result.returncode == 1 and "Traceback" not in result.stderr
    (line,) = error_lines(result)
    assert f"pid {holder.pid} on {socket.gethostname()}" in line
    assert not job.status_file.exists() and not job.metrics_file.exists()  # the holder's folder is left alone


def test_a_lock_whose_process_is_gone_is_taken_over(tmp_path):
    gone = subprocess.Popen(["true"])
    gone.wait()
    job = JobFolder(tmp_path / "job")
    job.path.mkdir()
    job.lock_file.write_text(json.dumps({"pid": gone.pid, "host": socket.gethostname(), "since": "then"}))
    result = run_module("rerank_lora.run", [*ARGS, "hydra.run.dir=job", "lock_wait_s=1"], tmp_path)
    assert result.returncode == 0, result.stderr[-2000:]
    assert job.status()["status"] == "completed" and not job.lock_file.exists()


def test_divergence_stops_with_the_step_and_the_last_good_checkpoint(tmp_path):
    result = run_module("rerank_lora.run", [*ARGS, "hydra.run.dir=job", "optim.lr=1e30", "optim.head_lr=1e30"], tmp_path)
    assert result.returncode == 1 and "Traceback" not in result.stderr
    (line,) = error_lines(result)
    assert "training diverged" in line and "at step" in line and "the last good checkpoint is" in line
    job = JobFolder(tmp_path / "job")
    assert job.status()["status"] == "failed"
    for _, folder in job.checkpoints():  # whatever was saved holds finite weights
        for tensor in load_file(folder / "adapter_model.safetensors").values():
            assert torch.isfinite(tensor).all(), folder


# A job killed at every dangerous point in turn, with SIGKILL and SIGTERM, re-run after each kill (each re-run
# counts its own passes: `adapter_saved@2` is its second checkpoint save), then once more to the end.
CHAIN = [
    "first_stage",
    "adapter_saved",
    "metrics_line",
    "evaluation",
    "before_trainer_state",
    "before_trainer_state@2",
    "adapter_saved:TERM",  # step 2's save: Lightning lets the step end, then stops (status failed, exit 143)
    "metrics_line@3:TERM",  # step 4's first metrics line (a SIGTERM at the last step would let the run finish)
    "first_stage:TERM",  # before training, where SIGTERM ends the process on the spot
]


def assert_same_result(job: JobFolder, expected: dict, reference: JobFolder) -> None:
    rows = job.metrics()
    keys = [(r["split"], r["step"], r["ranker"]) for r in rows]
    assert len(keys) == len(set(keys)), "a duplicated metrics row"
    assert sum(r["ranker"] == "first-stage" for r in rows) == 2
    got = model_metrics(job.path)
    assert set(got) == set(expected)
    for key, row in expected.items():
        for measure in ("nDCG@10", "RR(rel=2)@10"):
            assert got[key][measure] == pytest.approx(row[measure], abs=1e-4), key
        split, step = key
        ours, theirs = read_run(job.run_file(split, step)), read_run(reference.run_file(split, step))
        assert ours.keys() == theirs.keys()
        assert all(ours[q][p] == pytest.approx(theirs[q][p], abs=1e-4) for q in theirs for p in theirs[q])
    assert all(line.endswith("}") for line in job.metrics_file.read_text().splitlines())
    assert job.status()["status"] == "completed" and not job.lock_file.exists()


def test_a_job_killed_at_every_dangerous_point_resumes_to_the_uninterrupted_result(finished, tmp_path):
    reference, expected = finished
    job = JobFolder(tmp_path / "job")
    for fault in CHAIN:
        result = run_module("rerank_lora.run", [*ARGS, "hydra.run.dir=job"], tmp_path, env={"RERANK_LORA_FAULT": fault})
        # SIGKILL ends it on the spot; inside training, Lightning turns SIGTERM into an exception (status failed)
        killed = result.returncode != 0 and (fault.endswith(":TERM") or result.returncode == -9)
        assert killed, (fault, result.returncode, result.stderr[-1500:])
        assert job.status()["status"] != "completed", fault  # a killed job never looks finished
    result = run_module("rerank_lora.run", [*ARGS, "hydra.run.dir=job"], tmp_path)
    assert result.returncode == 0, result.stderr[-2000:]
    assert_same_result(job, expected, JobFolder(reference))


def test_a_sweep_killed_while_writing_its_summary_writes_it_whole_when_re_run(tmp_path):
    grid = ["-m", *TINY, "lora.rank=1,2", "hydra.sweep.dir=grid"]
    killed = run_module("rerank_lora.run", grid, tmp_path, env={"RERANK_LORA_FAULT": "table_write"})
    assert killed.returncode == -9 and not (tmp_path / "grid" / "summary.csv").exists()
    again = run_module("rerank_lora.run", grid, tmp_path)
    assert again.returncode == 0 and again.stdout.count("skipping") + again.stderr.count("skipping") == 2
    rows = summary_rows(tmp_path / "grid")
    assert {r["status"] for r in rows} == {"completed"} and len({r["job"] for r in rows}) == 2
    assert len(rows) == 2 * 2 * 3  # per cell and split (dev, test): the first stage and steps 0 and 2
