"""The job's Lightning logger, made by the entry point: one W&B (or CSV) run per job, grouped by sweep, tagged
by grid axis, with the resolved config attached."""

from pathlib import Path

from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from hydra.utils import instantiate
from lightning.pytorch.loggers import CSVLogger, WandbLogger
from omegaconf import DictConfig, OmegaConf

from rerank_lora import faults
from rerank_lora.disk import writing


def make_logger(cfg: DictConfig, out_dir: Path):
    """The configured Lightning logger, or False for logger=none."""
    if cfg.logger is None or cfg.logger.get("_target_") is None:
        return False
    hydra_cfg = HydraConfig.get()
    multirun = hydra_cfg.mode == RunMode.MULTIRUN
    group = Path(hydra_cfg.sweep.dir).name if multirun else out_dir.name
    name = hydra_cfg.job.override_dirname or cfg.model.name
    is_wandb = cfg.logger._target_.endswith("WandbLogger")
    schedule = hydra_cfg.runtime.choices.get("schedule", "custom")
    extra = {"group": group, "name": name, "tags": tags(cfg, schedule)} if is_wandb else {}
    logger = instantiate(cfg.logger, save_dir=str(out_dir), **extra)
    logger.log_hyperparams(OmegaConf.to_container(cfg, resolve=True))
    return logger


def tags(cfg: DictConfig, schedule: str) -> list[str]:
    """W&B tags for filtering a grid: model, rank, targets, schedule (the config group chosen), data. The same
    for a job's run and for the runs of its analysis tables (analysis/wandb_tables.py)."""
    targets = cfg.targets.modules if isinstance(cfg.targets.modules, str) else "+".join(cfg.targets.modules)
    return [f"model={cfg.model.name}", f"rank={cfg.lora.rank}", f"targets={targets}", f"schedule={schedule}",
            f"data={cfg.data.name}"]


def schedule_choice(job_dir: Path) -> str:
    """The schedule config group a finished job was composed with, from its .hydra/hydra.yaml."""
    path = job_dir / ".hydra" / "hydra.yaml"
    choices = OmegaConf.select(OmegaConf.load(path), "hydra.runtime.choices") if path.is_file() else None
    return str((choices or {}).get("schedule", "custom"))


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
