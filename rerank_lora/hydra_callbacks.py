"""The Hydra callback that conf/config.yaml names (hydra.callbacks): when a multirun ends, gather every job's metrics
and status into summary.csv, and exit non-zero with a count if any cell failed.

The same grid launched twice into one sweep folder: the summary is written under the sweep folder's writer lock,
by the launcher that ends last with something new to write. A launcher that ends while another process still
writes a cell leaves the summary to that process; one that finds summary.csv newer than every cell's results
leaves it as it is."""

import logging
from pathlib import Path

from hydra.experimental.callback import Callback

from rerank_lora import faults
from rerank_lora.configs import saved_config
from rerank_lora.disk import remove_partials
from rerank_lora.errors import DiskFull
from rerank_lora.job_folder import COMPLETED, JobFolder, JobFolderBusy, job_folders
from rerank_lora.tables import write_csv

log = logging.getLogger(__name__)
SUMMARY = "summary.csv"


def cells_of(sweep_dir: Path) -> list[JobFolder]:
    return [job for job in job_folders(sweep_dir, depth=1) if job.path != Path(sweep_dir)]


def summarize(sweep_dir: Path) -> Path:
    """Write summary.csv: one row per job, split, ranker and checkpoint step (one row for a job with
    no metrics), each with the job's status and error."""
    remove_partials(sweep_dir, below=False, only_dead=True)  # a summary write a kill cut short
    faults.point("before_summary")
    rows = []
    for job in cells_of(sweep_dir):
        overrides = saved_config(job.overrides_file) if job.overrides_file.is_file() else []
        cell = {"job": job.path.name, "overrides": " ".join(overrides)} | job.status()
        rows += [{**cell, **row} for row in job.metrics()] or [cell]
    return write_csv(Path(sweep_dir) / SUMMARY, rows, None if rows else ["job"])


def is_current(summary: Path, cells: list[JobFolder]) -> bool:
    """Written after every cell's status and metrics last changed."""
    if not summary.is_file():
        return False
    results = [f for job in cells for f in (job.status_file, job.metrics_file) if f.is_file()]
    return all(f.stat().st_mtime_ns <= summary.stat().st_mtime_ns for f in results)


def summarize_once(sweep_dir: Path, cells: list[JobFolder]) -> Path | None:
    """summary.csv, written unless it is current or another process still writes a cell (then None)."""
    held = {job.path.name: job.live_holder() for job in cells}
    held = {name: holder for name, holder in held.items() if holder}
    if held:
        for name, holder in held.items():
            print(f"sweep summary: left to pid {holder.get('pid')} on {holder.get('host')}, which still writes {name}")
        return None
    path = Path(sweep_dir) / SUMMARY
    if is_current(path, cells):
        print(f"sweep summary: {path.resolve()} (current: every cell's results are in it; not rewritten)")
        return path
    path = summarize(sweep_dir)
    print(f"sweep summary: {path.resolve()}")
    return path


class SweepSummary(Callback):
    def on_multirun_end(self, config, **kwargs) -> None:
        sweep_dir = Path(config.hydra.sweep.dir)
        cells = cells_of(sweep_dir)
        try:
            with JobFolder(sweep_dir).writer(config.get("lock_wait_s", 30)):  # one launcher summarizes at a time
                path = summarize_once(sweep_dir, cells)
        except (DiskFull, JobFolderBusy) as err:
            raise SystemExit(f"error: {err}") from None
        if path is None:
            return
        failed = [job for job in cells if job.status()["status"] != COMPLETED]
        if failed:
            raise SystemExit(f"error: {len(failed)} of {len(cells)} cells failed (status and error in {path})")
