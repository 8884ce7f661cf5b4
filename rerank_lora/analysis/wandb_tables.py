"""The second record of an ablation, probe or adapter-stats table: a W&B run (offline unless WANDB_MODE says
otherwise) in the job's folder and W&B group, holding the rows as W&B Tables and a chart of each."""

import logging
import os
from dataclasses import dataclass
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from rerank_lora.errors import InputError

log = logging.getLogger(__name__)
LOGGER_CHOICES = ("job", "wandb", "none")


@dataclass
class Chart:
    table: str  # key of the table it draws
    kind: str  # "line" or "bar"
    x: str
    y: str
    stroke: str | None = None  # line charts: one line per value of this column
    rows: str | None = None  # only rows whose "variant" starts with this prefix (None: all)


def wanted(choice: str, job_cfg: DictConfig) -> bool:
    """Whether to log to W&B: `job` follows the job's own logger, `wandb` always, `none` never."""
    if choice not in LOGGER_CHOICES:
        raise InputError(f"logger={choice!r}; accepted: {', '.join(LOGGER_CHOICES)}")
    if choice == "job":
        target = OmegaConf.select(job_cfg, "logger._target_") or ""
        return target.endswith("WandbLogger")
    return choice == "wandb"


def job_group(job_dir: Path) -> str:
    """The job's W&B group, as run.py names it: the sweep folder in a multirun, else the job folder."""
    return job_dir.parent.name if (job_dir.parent / "multirun.yaml").is_file() else job_dir.name


def log_tables(
    job_cfg: DictConfig, job_dir: Path, name: str, tables: dict[str, list[dict]], charts: dict[str, Chart], config: dict
) -> None:
    import wandb

    project = OmegaConf.select(job_cfg, "logger.project") or "rerank-lora"
    mode = os.environ.get("WANDB_MODE") or OmegaConf.select(job_cfg, "logger.mode") or "offline"
    run = wandb.init(
        project=project,
        mode=mode,
        dir=str(job_dir),
        group=job_group(job_dir),
        job_type=name.split("/")[0],
        name=f"{job_dir.name}/{name}",
        config={**config, "job": OmegaConf.to_container(job_cfg, resolve=False)},
        reinit="create_new",
    )
    try:
        logged, made = {}, {}
        for key, rows in tables.items():
            columns = list(dict.fromkeys(k for row in rows for k in row))
            made[key] = rows, columns
            logged[key] = wandb.Table(columns=columns, data=[[row.get(c) for c in columns] for row in rows])
        for key, chart in charts.items():
            rows, columns = made[chart.table]
            if chart.rows:
                rows = [r for r in rows if str(r.get("variant", "")).startswith(chart.rows)]
            table = wandb.Table(columns=columns, data=[[row.get(c) for c in columns] for row in rows])
            title = f"{job_dir.name} {key}"
            if chart.kind == "bar":
                logged[key] = wandb.plot.bar(table, chart.x, chart.y, title=title)
            else:
                logged[key] = wandb.plot.line(table, chart.x, chart.y, stroke=chart.stroke, title=title)
        run.log(logged)
    finally:
        run.finish()
    log.info("logged %s to W&B (%s, group %s)", ", ".join(tables), mode, job_group(job_dir))
