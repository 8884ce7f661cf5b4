"""A full disk at each write of a job, on a real small filesystem (a size-limited tmpfs the test mounts; the tests
run as root): one `error:` line, no traceback, no partial file; after the space grows, the same command resumes to
the uninterrupted result. The writes a size alone cannot single out are reached with a ballast that fills the
filesystem at a fault point (RERANK_LORA_FAULT=<point>:FILL, rerank_lora/faults.py)."""

import subprocess
from types import SimpleNamespace

import pytest

from conftest import TINY, model_metrics, run_module, summary_rows
from rerank_lora.faults import BALLAST
from rerank_lora.job_folder import JobFolder

pytestmark = pytest.mark.faults
ARGS = [*TINY, "hydra.run.dir=job"]  # checkpoints at steps 0 and 2, logger=csv
GRID = ["-m", *TINY, "lora.rank=1", "hydra.sweep.dir=grid"]


@pytest.fixture
def small_fs(tmp_path):
    """A folder on its own tmpfs; `grow(size)` gives it more room, as freeing space does."""
    folder = tmp_path / "fs"
    folder.mkdir()

    def mount(size: str, again: bool = False):
        options = f"{'remount,' if again else ''}size={size}"
        return subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(folder)], capture_output=True, text=True)

    mounted = mount("8m")
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.strip()}")
    yield SimpleNamespace(path=folder, mount=mount)
    subprocess.run(["umount", str(folder)], check=False)


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory):
    cwd = tmp_path_factory.mktemp("uninterrupted")
    result = run_module("rerank_lora.run", ARGS, cwd)
    assert result.returncode == 0, result.stderr[-2000:]
    return model_metrics(cwd / "job")


def assert_one_clean_error(result, file_name: str) -> None:
    assert result.returncode != 0 and "Traceback" not in result.stderr and "Logging error" not in result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, result.stderr[-3000:]
    assert errors[0].startswith("error: no space left on device while writing ") and file_name in errors[0], errors
    assert errors[0].endswith("nothing finished was lost; free space and run the same command to resume")


def partials(folder) -> list:
    return sorted(str(p) for p in folder.rglob("*.partial*"))


def grow(fs) -> None:
    (fs.path / BALLAST).unlink(missing_ok=True)
    assert fs.mount("16m", again=True).returncode == 0


@pytest.mark.parametrize(("size", "fault", "file_name"), [
    ("100k", None, "dev.qrels"),  # the first run files
    ("480k", None, "adapter_model.safetensors"),  # the step-0 checkpoint's adapter
    ("8m", "first_stage:FILL", "metrics.jsonl"),  # the first metrics line
    ("8m", "adapter_saved:FILL", "head.safetensors"),
    ("8m", "before_trainer_state:FILL", "trainer.ckpt"),
    ("8m", "before_trainer_state:FILL", "metrics.csv"),  # the CSV logger's file: Lightning saves it first
    ("8m", "before_status:FILL", "status.json"),  # too full even to say failed: no status, never a finished one
])
def test_a_full_disk_is_one_error_and_the_same_command_resumes_to_the_same_result(
    small_fs, uninterrupted, size, fault, file_name
):
    assert small_fs.mount(size, again=True).returncode == 0
    args = [*ARGS, "logger=none"] if file_name == "trainer.ckpt" else ARGS  # else metrics.csv is written first
    full = run_module("rerank_lora.run", args, small_fs.path, env={"RERANK_LORA_FAULT": fault} if fault else {})
    assert_one_clean_error(full, file_name)
    job = JobFolder(small_fs.path / "job")
    assert job.status()["status"] != "completed" and not partials(job.path)
    if file_name == "status.json":
        assert not job.status_file.exists()
    grow(small_fs)
    resumed = run_module("rerank_lora.run", ARGS, small_fs.path)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert job.status()["status"] == "completed" and not partials(job.path)
    got = model_metrics(job.path)
    assert set(got) == set(uninterrupted)
    for key, row in uninterrupted.items():
        assert got[key]["nDCG@10"] == pytest.approx(row["nDCG@10"], abs=1e-4), key


def test_a_full_disk_while_the_summary_is_written_is_one_error_and_a_re_run_writes_it(small_fs):
    full = run_module("rerank_lora.run", GRID, small_fs.path, env={"RERANK_LORA_FAULT": "before_summary:FILL"})
    assert_one_clean_error(full, "summary.csv")
    assert not (small_fs.path / "grid" / "summary.csv").exists() and not partials(small_fs.path)
    grow(small_fs)
    again = run_module("rerank_lora.run", GRID, small_fs.path)
    assert again.returncode == 0, again.stderr[-2000:]
    rows = summary_rows(small_fs.path / "grid")
    assert {r["status"] for r in rows} == {"completed"} and len(rows) == 2 * 3  # dev, test: first stage, steps 0, 2
