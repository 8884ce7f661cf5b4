"""A Hydra callback: when a multirun ends, gather every job's metrics.jsonl and status into one table,
and exit non-zero with a count if any cell failed."""

import csv
import json
import logging
from pathlib import Path

from hydra.experimental.callback import Callback
from omegaconf import OmegaConf

from rerank_lora.results import read_metrics

log = logging.getLogger(__name__)


def job_status(job_dir: Path) -> dict:
    """{"status": completed|failed|unfinished, "error": ...}; a job killed from outside wrote nothing."""
    path = Path(job_dir) / "status.json"
    return json.loads(path.read_text()) if path.exists() else {"status": "unfinished", "error": None}


def job_dirs(sweep_dir: Path) -> list[Path]:
    return sorted(p.parent for p in Path(sweep_dir).glob("*/.hydra"))


def summarize(sweep_dir: Path) -> Path:
    """Write summary.csv: one row per job, split, ranker and checkpoint step (one row for a job with
    no metrics), each with the job's status and error."""
    rows = []
    for job_dir in job_dirs(sweep_dir):
        cell = {"job": job_dir.name, "overrides": " ".join(OmegaConf.load(job_dir / ".hydra" / "overrides.yaml"))}
        cell |= job_status(job_dir)
        rows += [{**cell, **row} for row in read_metrics(job_dir)] or [cell]
    columns = list(dict.fromkeys(key for row in rows for key in row))
    path = Path(sweep_dir) / "summary.csv"
    with path.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=columns or ["job"])
        writer.writeheader()
        writer.writerows(rows)
    return path


class SweepSummary(Callback):
    def on_multirun_end(self, config, **kwargs) -> None:
        sweep_dir = Path(config.hydra.sweep.dir)
        path = summarize(sweep_dir)
        print(f"sweep summary: {path.resolve()}")
        cells = job_dirs(sweep_dir)
        failed = [d for d in cells if job_status(d)["status"] != "completed"]
        if failed:
            raise SystemExit(f"error: {len(failed)} of {len(cells)} cells failed (status and error in {path})")
