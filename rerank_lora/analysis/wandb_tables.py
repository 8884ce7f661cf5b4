"""The second record of an ablation, probe or adapter-stats table: a W&B run (offline unless WANDB_MODE says
otherwise) in the job's folder and W&B group, holding the rows as a W&B Table and a chart of them. The run is
logged as the job's own run is (train/loggers.py): the resolved job config at the top level (`lora.rank`,
`targets.modules`, ...), the job's tags, `trainer/global_step` as the step axis, so a dashboard filters and
groups every run of a sweep alike; the command's settings go under `analysis`."""

import logging
import os
from dataclasses import dataclass
from pathlib import Path

from rerank_lora.configs import schedule_choice
from rerank_lora.errors import InputError
from rerank_lora.job_folder import checkpoint_name
from rerank_lora.train.loggers import tags

STEP_AXIS = "trainer/global_step"  # Lightning's WandbLogger logs the job's metrics against it

log = logging.getLogger(__name__)
LOGGER_CHOICES = ("job", "wandb", "none")


@dataclass
class Chart:
    kind: str  # "line" or "bar"
    x: str
    y: str
    stroke: str | None = None  # line charts: one line per value of this column
    rows_with: str | None = None  # only the rows with a value in this column (None: all)


def wanted(choice: str, job_cfg: dict) -> bool:
    """Whether to log to W&B: `job` follows the job's own logger, `wandb` always, `none` never."""
    if choice not in LOGGER_CHOICES:
        raise InputError(f"logger={choice!r}; accepted: {', '.join(LOGGER_CHOICES)}")
    if choice == "job":
        target = (job_cfg.get("logger") or {}).get("_target_") or ""
        return target.endswith("WandbLogger")
    return choice == "wandb"


def job_group(job_dir: Path) -> str:
    """The job's W&B group, as run.py names it: the sweep folder in a multirun, else the job folder."""
    return job_dir.parent.name if (job_dir.parent / "multirun.yaml").is_file() else job_dir.name


def log_table(job_cfg: dict, job_dir: Path, table: str, step: int, rows: list[dict], chart: Chart, settings: dict) -> None:
    """One W&B run `<job>/<table>/step-N` holding `rows` as the W&B Table `table` and `chart` of them as
    `<table>-chart`; `settings`: the command's own, recorded in the run's config with the step."""
    import wandb

    name = f"{table}/{checkpoint_name(step)}"
    project = (job_cfg.get("logger") or {}).get("project") or "rerank-lora"
    mode = os.environ.get("WANDB_MODE") or (job_cfg.get("logger") or {}).get("mode") or "offline"
    run = wandb.init(
        project=project,
        mode=mode,
        dir=str(job_dir),
        group=job_group(job_dir),
        job_type=table,
        name=f"{job_dir.name}/{name}",
        tags=tags(job_cfg, schedule_choice(job_dir)),
        config={**job_cfg, "analysis": {"table": table, "step": step, **settings}},
        reinit="create_new",
    )
    run.define_metric("*", step_metric=STEP_AXIS)
    try:
        columns = list(dict.fromkeys(k for row in rows for k in row))

        def as_table(chosen: list[dict]):
            return wandb.Table(columns=columns, data=[[row.get(c) for c in columns] for row in chosen])

        drawn = as_table([r for r in rows if chart.rows_with is None or r.get(chart.rows_with) is not None])
        title = f"{job_dir.name} {table}-chart"
        if chart.kind == "bar":
            plot = wandb.plot.bar(drawn, chart.x, chart.y, title=title)
        else:
            plot = wandb.plot.line(drawn, chart.x, chart.y, stroke=chart.stroke, title=title)
        run.log({STEP_AXIS: step, table: as_table(rows), f"{table}-chart": plot})
    finally:
        run.finish()
    log.info("logged %s to W&B (%s, group %s)", table, mode, job_group(job_dir))
