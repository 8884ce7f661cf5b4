"""Train, checkpoint and evaluate one LoRA reranker: `python -m rerank_lora.run [overrides]`, `-m` for a grid.

The recipe: the job's specs (configs.job_spec: where config objects stop), its data, the reranker (the backbone
with LoRA and a score head) and the data module from the builders, the logger, the evaluator and the checkpoint
schedule, then fit; every scheduled step is saved and evaluated.
"""

import contextlib
import logging
import signal
import warnings
from dataclasses import dataclass
from pathlib import Path

import hydra
import lightning as L
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from lightning.pytorch.utilities.exceptions import SIGTERMException
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import MissingMandatoryValue

from rerank_lora import faults
from rerank_lora.configs import CONF_DIR, job_spec
from rerank_lora.data.collection import load_collection
from rerank_lora.disk import says_disk_full
from rerank_lora.errors import DiskFull, InputError, TrainingDiverged
from rerank_lora.evaluation.evaluator import Evaluator
from rerank_lora.evaluation.metrics import check_split_cutoffs
from rerank_lora.evaluation.selection import check_select_by, missing_held_out, score_held_out
from rerank_lora.evaluation.table import print_results
from rerank_lora.job.builders import build_data, build_reranker
from rerank_lora.job.spec import JobSpec
from rerank_lora.job_folder import COMPLETED, TRAINER_STATE, JobFolder, JobFolderBusy, writes_job_folder
from rerank_lora.train.callbacks import CheckpointSchedule, FirstStepTimer
from rerank_lora.train.loggers import finish, make_logger, tags
from rerank_lora.train.probe_head import ProbeHead
from rerank_lora.train.trainer import make_trainer

log = logging.getLogger(__name__)
# The training stream is indexed by the restored step (data/datamodule.py), so a mid-epoch resume is exact.
warnings.filterwarnings("ignore", message="You're resuming from a checkpoint that ended before the epoch ended")


@dataclass(frozen=True)
class RunContext:
    """How the job was launched (Hydra's runtime, read once by `main`) and what its logger gets: the `logger`
    group's arguments, the W&B run's name, group and tags, and the resolved config as its hyperparameters."""

    multirun: bool = False
    basic_launcher: bool = True
    logger: dict | None = None
    name: str = "job"
    group: str = "job"
    tags: tuple[str, ...] = ()
    hyperparams: dict | None = None


def run_context(cfg: DictConfig, folder: Path) -> RunContext:
    hydra_cfg = HydraConfig.get()
    multirun = hydra_cfg.mode == RunMode.MULTIRUN
    values = OmegaConf.to_container(cfg, resolve=True)
    return RunContext(
        multirun=multirun,
        basic_launcher=hydra_cfg.launcher._target_.endswith("BasicLauncher"),
        logger=values.get("logger"),
        name=hydra_cfg.job.override_dirname or cfg.model.name,
        group=Path(hydra_cfg.sweep.dir).name if multirun else folder.name,
        tags=tuple(tags(values, hydra_cfg.runtime.choices.get("schedule", "custom"))),
        hyperparams=values,
    )


@hydra.main(config_path=str(CONF_DIR), config_name="config", version_base=None)
def main(cfg: DictConfig) -> None:
    job = JobFolder(HydraConfig.get().runtime.output_dir)
    multirun = HydraConfig.get().mode == RunMode.MULTIRUN
    try:
        one_writer = job.writer(cfg.lock_wait_s) if writes_job_folder() else contextlib.nullcontext()
        with one_writer:
            run_job(cfg, job, multirun)
    except JobFolderBusy as err:  # the folder is another process's: write nothing into it
        if multirun:  # the same grid launched twice: the holder trains this cell
            log.warning("skipping: %s", err)
            return
        raise SystemExit(f"error: {err}") from None


def check_launcher(spec: JobSpec, context: RunContext) -> None:
    """A grid of data-parallel cells needs a launcher that starts each cell's ranks (SLURM's tasks): in one
    process (the basic launcher), Lightning would start every further rank on the whole grid's command line."""
    strategy = str(spec.trainer.get("strategy", "auto"))
    if context.multirun and context.basic_launcher and strategy.startswith("ddp"):
        raise InputError(
            f"trainer.strategy={strategy} in a grid (-m) with the basic launcher; accepted: "
            "hydra/launcher=slurm (one job of tasks_per_node ranks per cell), or one job at a time without -m"
        )


def train_and_evaluate(spec: JobSpec, job: JobFolder, context: RunContext) -> None:
    check_launcher(spec, context)
    timer = FirstStepTimer()
    L.seed_everything(spec.seed, workers=True)
    data_spec, held_out = spec.data, spec.data.held_out_splits
    check_select_by(spec.select_by, spec.measures, held_out)
    check_split_cutoffs(spec.measures, data_spec, [*data_spec.eval_splits, *held_out])
    collection = load_collection(data_spec)  # bad data fails here, before any model loads
    if is_finished(job, spec.steps, data_spec, spec.select_by):
        log.info("every checkpoint of %s is evaluated already: skipping", job.path)
        return
    trainer_state, resumed_step = job.last_trainer_state()
    if trainer_state:
        log.info("resuming from %s", trainer_state)
    if writes_job_folder():  # trainer=ddp: every rank runs this job in this folder; rank 0 writes it
        job.keep_metrics_until(resumed_step)  # also a job killed before its first checkpoint

    reranker, tokenizer = build_reranker(spec)
    data = build_data(spec.data, spec.seed, tokenizer, collection)
    logger = make_logger(context.logger, job.path, context.name, context.group, list(context.tags), context.hyperparams)
    evaluator = Evaluator(data, job, list(spec.measures), logger or None, held_out=held_out)
    evaluator.evaluate_first_stage()
    info = {"model": spec.model.name, "config": "../../.hydra/config.yaml", "precision": spec.compute.precision,
            **reranker.read.to_json()}
    callbacks = [CheckpointSchedule(list(spec.steps), evaluator, job, info, resumed_step), timer]
    head = spec.head
    if head.init == "probe" and not trainer_state:  # a resumed run restores its head
        callbacks.append(ProbeHead(data.train_set, head.probe_groups, head.probe_l2, data.pad_id, data_spec.eval_batch_size))
    trainer = make_trainer(spec.trainer, logger, callbacks, job.path)
    try:
        # weights_only=False: our own trainer.ckpt holds RNG states (numpy objects) beside the tensors
        trainer.fit(reranker, datamodule=data, ckpt_path=trainer_state, weights_only=False)
        if held_out and writes_job_folder():
            score_held_out(reranker, evaluator, job, held_out, data_spec.eval_splits[0], spec.select_by)
    finally:
        finish(logger)


def is_finished(job: JobFolder, steps, data_spec, select_by: str) -> bool:
    """Completed, every checkpoint evaluated, and the held-out splits scored at step 0 and the chosen one."""
    if not job.is_complete(list(steps), data_spec.eval_splits):
        return False
    held_out = data_spec.held_out_splits
    return not (held_out and missing_held_out(job, held_out, data_spec.eval_splits[0], select_by))


def run_job(cfg: DictConfig, job: JobFolder, multirun: bool) -> None:
    """Train and evaluate, then mark the job completed; on any error or interruption, mark it failed."""
    try:
        if writes_job_folder():
            job.remove_partials()
        spec = job_spec(cfg)
        train_and_evaluate(spec, job, run_context(cfg, job.path))
        if writes_job_folder():
            faults.point("before_status")
            job.write_status(COMPLETED)
    except Exception as err:
        if says_disk_full(err) and not isinstance(err, DiskFull):  # a writer outside disk.writing (W&B's, Hydra's)
            err = DiskFull(getattr(err, "filename", None) or job.path)
        expected = isinstance(err, InputError | MissingMandatoryValue | TrainingDiverged | DiskFull)
        message = explain(err, job) if expected else f"{type(err).__name__}: {err}"
        if writes_job_folder():
            job.mark_failed(message)
        if multirun:  # the other cells go on; the summary counts this one
            log.error("error: %s", message, exc_info=not expected)
            return
        if expected:
            raise SystemExit(f"error: {message}") from None
        raise
    except BaseException as err:  # interrupted: never leave a folder that looks finished
        if writes_job_folder():
            job.mark_failed(type(err).__name__)
        if isinstance(err, SIGTERMException):  # Lightning stops at the next step, as a SystemExit with status 0
            raise SystemExit(128 + signal.SIGTERM) from None
        raise
    if writes_job_folder():
        print_results(job, spec.data, spec.select_by)


def explain(err: Exception, job: JobFolder) -> str:
    if isinstance(err, MissingMandatoryValue):
        return f"{err.full_key} is required and has no value; give it, e.g. {err.full_key}=PATH"
    if isinstance(err, TrainingDiverged):
        saved = [folder for _, folder in job.checkpoints() if (folder / TRAINER_STATE).is_file()]
        last = f"the last good checkpoint is {saved[-1]}" if saved else "no checkpoint was saved before it"
        return f"training diverged: {err}; {last}"
    return str(err)


if __name__ == "__main__":
    main()
