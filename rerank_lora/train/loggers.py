"""The job's Lightning logger: one W&B (or CSV) run per job, grouped by sweep, tagged by grid axis, with the
resolved config attached. Made from plain values: the logger group's arguments and the run's names."""

from pathlib import Path

from hydra.utils import instantiate
from lightning.pytorch.loggers import CSVLogger, WandbLogger

from rerank_lora import faults
from rerank_lora.disk import writing


def make_logger(arguments: dict | None, out_dir: Path, name: str, group: str, tags: list[str], hyperparams: dict):
    """The logger `arguments` (the logger group: `_target_` and its keyword arguments) describe, or False for
    logger=none; a W&B run is named `name`, in `group`, with `tags`."""
    if not arguments or arguments.get("_target_") is None:
        return False
    is_wandb = arguments["_target_"].endswith("WandbLogger")
    extra = {"group": group, "name": name, "tags": tags} if is_wandb else {}
    logger = instantiate(arguments, save_dir=str(out_dir), **extra)
    logger.log_hyperparams(hyperparams)
    return logger


def tags(job: dict, schedule: str) -> list[str]:
    """W&B tags for filtering a grid: model, rank, targets, schedule (the config group chosen), data; `job`: the
    job's config as plain values. The same for a job's run and for the runs of its analysis tables
    (analysis/wandb_tables.py)."""
    modules = job["targets"]["modules"]
    targets = modules if isinstance(modules, str) else "+".join(modules)
    return [f"model={job['model']['name']}", f"rank={job['lora']['rank']}", f"targets={targets}",
            f"schedule={schedule}", f"data={job['data']['name']}"]


class CsvLogger(CSVLogger):
    """Lightning's CSV logger (logger=csv), its files written inside disk.writing: a full disk is one DiskFull
    naming the file, not a traceback from inside the training loop."""

    def log_hyperparams(self, params=None) -> None:
        with writing(Path(self.log_dir) / "hparams.yaml"):
            super().log_hyperparams(params)

    def save(self) -> None:
        faults.point("logger_save")
        with writing(Path(self.log_dir) / "metrics.csv"):
            super().save()


def finish(logger) -> None:
    """One W&B run per job, also when a multirun runs many jobs in one process."""
    if isinstance(logger, WandbLogger):
        logger.experiment.finish()
