"""A Hydra callback: when a multirun ends, gather every job's metrics and status into summary.csv, and exit
non-zero with a count if any cell failed."""

import logging
from pathlib import Path

from hydra.experimental.callback import Callback

from rerank_lora.job_folder import COMPLETED, job_folders
from rerank_lora.tables import write_csv

log = logging.getLogger(__name__)


def summarize(sweep_dir: Path) -> Path:
    """Write summary.csv: one row per job, split, ranker and checkpoint step (one row for a job with
    no metrics), each with the job's status and error."""
    rows = []
    for job in job_folders(sweep_dir, depth=1):
        if job.path == Path(sweep_dir):
            continue
        cell = {"job": job.path.name, "overrides": " ".join(job.overrides())} | job.status()
        rows += [{**cell, **row} for row in job.metrics()] or [cell]
    return write_csv(Path(sweep_dir) / "summary.csv", rows, None if rows else ["job"])


class SweepSummary(Callback):
    def on_multirun_end(self, config, **kwargs) -> None:
        sweep_dir = Path(config.hydra.sweep.dir)
        path = summarize(sweep_dir)
        print(f"sweep summary: {path.resolve()}")
        cells = [job for job in job_folders(sweep_dir, depth=1) if job.path != sweep_dir]
        failed = [job for job in cells if job.status()["status"] != COMPLETED]
        if failed:
            raise SystemExit(f"error: {len(failed)} of {len(cells)} cells failed (status and error in {path})")
