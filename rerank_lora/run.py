"""Train, checkpoint and evaluate one LoRA reranker: `python -m rerank_lora.run [overrides]`, `-m` for a grid."""

import json
import logging
import warnings
from pathlib import Path

import hydra
import lightning as L
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from hydra.utils import instantiate
from lightning.pytorch.loggers import WandbLogger
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import MissingMandatoryValue

from rerank_lora import resume
from rerank_lora.adapters import add_lora
from rerank_lora.backbone import load_backbone
from rerank_lora.data.collection import load_collection
from rerank_lora.data.datamodule import RerankDataModule
from rerank_lora.errors import InputError
from rerank_lora.evaluation import Evaluator
from rerank_lora.reranker import Reranker
from rerank_lora.results import print_results
from rerank_lora.schedule import CheckpointSchedule, checkpoint_steps
from rerank_lora.startup import FirstStepTimer

log = logging.getLogger(__name__)
# The training stream is indexed by the restored step (data/datamodule.py), so a mid-epoch resume is exact.
warnings.filterwarnings("ignore", message="You're resuming from a checkpoint that ended before the epoch ended")
CONF_DIR = Path(__file__).resolve().parent.parent / "conf"


def train_and_evaluate(cfg: DictConfig, out_dir: Path) -> None:
    timer = FirstStepTimer()
    L.seed_everything(cfg.seed, workers=True)
    collection = load_collection(cfg.data)  # bad data fails here, before any model loads
    steps = checkpoint_steps(cfg.schedule, cfg.trainer.max_steps)
    if resume.is_complete(out_dir, steps, cfg.data.eval_splits):
        log.info("every checkpoint of %s is evaluated already: skipping", out_dir)
        return
    trainer_state, resumed_step = resume.last_trainer_state(out_dir)
    if trainer_state:
        log.info("resuming from %s", trainer_state)
    resume.keep_metrics_until(out_dir, resumed_step)  # also a job killed before its first checkpoint
    backbone, tokenizer = load_backbone(cfg.model)
    reranker = Reranker(add_lora(backbone, cfg.lora, cfg.targets, cfg.model), cfg.data.group_size, cfg.optim)
    data = RerankDataModule(collection, tokenizer, cfg.data, cfg.seed)
    logger = make_logger(cfg, out_dir)
    evaluator = Evaluator(data, out_dir, cfg.measures, logger or None)
    evaluator.first_stage()
    info = {"model": cfg.model.name, "config": "../../.hydra/config.yaml"}
    schedule = CheckpointSchedule(steps, evaluator, out_dir, info, resumed_step)
    # A resumed run's first epoch ends early (Lightning counts the restored batches); reloading then
    # restarts the training stream at the current step.
    trainer = instantiate(
        cfg.trainer, logger=logger, callbacks=[schedule, timer], default_root_dir=out_dir,
        reload_dataloaders_every_n_epochs=1,
    )
    try:
        # weights_only=False: our own trainer.ckpt holds RNG states (numpy objects) beside the tensors
        trainer.fit(reranker, datamodule=data, ckpt_path=trainer_state, weights_only=False)
    finally:
        if isinstance(logger, WandbLogger):
            logger.experiment.finish()  # one W&B run per job, also in a multirun in one process


def make_logger(cfg: DictConfig, out_dir: Path):
    """The configured Lightning logger (or False), one run per job, grouped by sweep, config attached."""
    if cfg.logger is None or cfg.logger.get("_target_") is None:
        return False
    hydra_cfg = HydraConfig.get()
    multirun = hydra_cfg.mode == RunMode.MULTIRUN
    group = Path(hydra_cfg.sweep.dir).name if multirun else out_dir.name
    name = hydra_cfg.job.override_dirname or cfg.model.name
    is_wandb = cfg.logger._target_.endswith("WandbLogger")
    extra = {"group": group, "name": name, "tags": tags(cfg)} if is_wandb else {}
    logger = instantiate(cfg.logger, save_dir=str(out_dir), **extra)
    logger.log_hyperparams(OmegaConf.to_container(cfg, resolve=True))
    return logger


def tags(cfg: DictConfig) -> list[str]:
    """W&B tags for filtering a grid: model, rank, targets, schedule, data."""
    targets = cfg.targets.modules if isinstance(cfg.targets.modules, str) else "+".join(cfg.targets.modules)
    schedule = HydraConfig.get().runtime.choices.get("schedule", "custom")
    return [f"model={cfg.model.name}", f"rank={cfg.lora.rank}", f"targets={targets}", f"schedule={schedule}",
            f"data={cfg.data.name}"]


def write_status(out_dir: Path, status: str, error: str | None = None) -> None:
    (out_dir / "status.json").write_text(json.dumps({"status": status, "error": error}) + "\n")


@hydra.main(config_path=str(CONF_DIR), config_name="config", version_base=None)
def main(cfg: DictConfig) -> None:
    out_dir = Path(HydraConfig.get().runtime.output_dir)
    try:
        train_and_evaluate(cfg, out_dir)
    except Exception as err:
        expected = isinstance(err, InputError | MissingMandatoryValue)
        message = explain(err) if expected else f"{type(err).__name__}: {err}"
        write_status(out_dir, "failed", message)
        if HydraConfig.get().mode == RunMode.MULTIRUN:  # the other cells go on; the summary counts this one
            log.error("error: %s", message, exc_info=not expected)
            return
        if expected:
            raise SystemExit(f"error: {message}") from None
        raise
    except BaseException as err:  # interrupted: never leave a folder that looks finished
        write_status(out_dir, "failed", type(err).__name__)
        raise
    write_status(out_dir, "completed")
    print_results(out_dir)


def explain(err: Exception) -> str:
    if isinstance(err, MissingMandatoryValue):
        return f"{err.full_key} is required and has no value; give it, e.g. {err.full_key}=PATH"
    return str(err)


if __name__ == "__main__":
    main()
