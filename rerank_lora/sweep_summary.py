"""A Hydra callback: when a multirun ends, gather every job's metrics.jsonl into one table."""

import csv
import logging
from pathlib import Path

from hydra.experimental.callback import Callback
from omegaconf import OmegaConf

from rerank_lora.results import read_metrics

log = logging.getLogger(__name__)


def summarize(sweep_dir: Path) -> Path:
    """Write summary.csv: one row per job, split, ranker and checkpoint step."""
    rows = []
    for job_dir in sorted(p.parent for p in Path(sweep_dir).glob("*/.hydra")):
        overrides = OmegaConf.load(job_dir / ".hydra" / "overrides.yaml")
        for row in read_metrics(job_dir):
            rows.append({"job": job_dir.name, "overrides": " ".join(overrides), **row})
    columns = list(dict.fromkeys(key for row in rows for key in row))
    path = Path(sweep_dir) / "summary.csv"
    with path.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=columns or ["job"])
        writer.writeheader()
        writer.writerows(rows)
    return path


class SweepSummary(Callback):
    def on_multirun_end(self, config, **kwargs) -> None:
        path = summarize(Path(config.hydra.sweep.dir))
        print(f"sweep summary: {path.resolve()}")
