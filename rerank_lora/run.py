"""Train, checkpoint and evaluate one LoRA reranker: `python -m rerank_lora.run [overrides]`, `-m` for a grid.

The recipe: read the data, load the backbone and add LoRA, build the reranker, the data module, the evaluator
and the checkpoint schedule, then fit; every scheduled step is saved and evaluated. Config objects stop here:
each config group becomes the dataclass of the code it configures.
"""

import contextlib
import logging
import signal
import warnings

import hydra
import lightning as L
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from lightning.pytorch.utilities.exceptions import SIGTERMException
from omegaconf import DictConfig
from omegaconf.errors import MissingMandatoryValue

from rerank_lora import faults
from rerank_lora.configs import CONF_DIR, to_spec
from rerank_lora.data.collection import load_collection
from rerank_lora.data.datamodule import RerankDataModule
from rerank_lora.data.spec import DataSpec, check_int
from rerank_lora.disk import says_disk_full
from rerank_lora.errors import DiskFull, InputError, TrainingDiverged
from rerank_lora.evaluation.evaluator import Evaluator
from rerank_lora.evaluation.metrics import check_split_cutoffs
from rerank_lora.evaluation.selection import check_select_by, missing_held_out, score_held_out
from rerank_lora.evaluation.table import print_results
from rerank_lora.job_folder import COMPLETED, TRAINER_STATE, JobFolder, JobFolderBusy, writes_job_folder
from rerank_lora.model.backbone import ModelSpec, compile_layers, load_backbone
from rerank_lora.model.lora import LoraSpec, add_lora, target_modules
from rerank_lora.model.packing import use_packing
from rerank_lora.model.read_position import read_position
from rerank_lora.model.reranker import Optim, Reranker
from rerank_lora.train.callbacks import CheckpointSchedule, FirstStepTimer
from rerank_lora.train.loggers import finish, make_logger
from rerank_lora.train.precision import resolve_precision
from rerank_lora.train.probe_head import HeadInit, ProbeHead
from rerank_lora.train.schedule import checkpoint_steps
from rerank_lora.train.trainer import make_trainer

log = logging.getLogger(__name__)
# The training stream is indexed by the restored step (data/datamodule.py), so a mid-epoch resume is exact.
warnings.filterwarnings("ignore", message="You're resuming from a checkpoint that ended before the epoch ended")


def check_launcher(cfg: DictConfig) -> None:
    """A grid of data-parallel cells needs a launcher that starts each cell's ranks (SLURM's tasks): in one
    process (the basic launcher), Lightning would start every further rank on the whole grid's command line."""
    hydra_cfg = HydraConfig.get()
    basic = hydra_cfg.launcher._target_.endswith("BasicLauncher")
    if hydra_cfg.mode == RunMode.MULTIRUN and basic and str(cfg.trainer.get("strategy", "auto")).startswith("ddp"):
        raise InputError(
            f"trainer.strategy={cfg.trainer.strategy} in a grid (-m) with the basic launcher; accepted: "
            "hydra/launcher=slurm (one job of tasks_per_node ranks per cell), or one job at a time without -m"
        )


def train_and_evaluate(cfg: DictConfig, job: JobFolder) -> None:
    check_launcher(cfg)
    timer = FirstStepTimer()
    L.seed_everything(cfg.seed, workers=True)
    model, data_spec = to_spec(ModelSpec, cfg.model, "model"), to_spec(DataSpec, cfg.data, "data")
    head = to_spec(HeadInit, cfg.head, "head")
    check_select_by(cfg.select_by, cfg.measures, data_spec.held_out_splits)
    check_split_cutoffs(cfg.measures, data_spec, [*data_spec.eval_splits, *data_spec.held_out_splits])
    collection = load_collection(data_spec)  # bad data fails here, before any model loads
    steps = checkpoint_steps(cfg.trainer.max_steps, **cfg.schedule)
    if is_finished(job, steps, data_spec, cfg.select_by):
        log.info("every checkpoint of %s is evaluated already: skipping", job.path)
        return
    trainer_state, resumed_step = job.last_trainer_state()
    if trainer_state:
        log.info("resuming from %s", trainer_state)
    if writes_job_folder():  # trainer=ddp: every rank runs this job in this folder; rank 0 writes it
        job.keep_metrics_until(resumed_step)  # also a job killed before its first checkpoint

    reranker, tokenizer = build_reranker(cfg)
    data = RerankDataModule(collection, tokenizer, data_spec, cfg.seed)
    logger = make_logger(cfg, job.path)
    precision = resolve_precision(cfg.trainer.precision, cfg.trainer.accelerator)
    held_out = data_spec.held_out_splits
    reranker.precision = precision  # evaluation, and every tool that re-scores this job, compute in it
    evaluator = Evaluator(data, job, cfg.measures, logger or None, held_out=held_out)
    evaluator.first_stage()
    info = {"model": model.name, "config": "../../.hydra/config.yaml", "precision": precision, **reranker.read.to_json()}
    callbacks = [CheckpointSchedule(steps, evaluator, job, info, resumed_step), timer]
    if head.init == "probe" and not trainer_state:  # a resumed run restores its head
        callbacks.append(ProbeHead(data.train_set, head.probe_groups, head.probe_l2, data.pad_id, data_spec.eval_batch_size))
    trainer = make_trainer(cfg.trainer, logger, callbacks, job.path, precision)
    try:
        # weights_only=False: our own trainer.ckpt holds RNG states (numpy objects) beside the tensors
        trainer.fit(reranker, datamodule=data, ckpt_path=trainer_state, weights_only=False)
        if held_out and writes_job_folder():
            score_held_out(reranker, evaluator, job, held_out, data_spec.eval_splits[0], cfg.select_by)
    finally:
        finish(logger)


def is_finished(job: JobFolder, steps: list[int], data_spec: DataSpec, select_by: str) -> bool:
    """Completed, every checkpoint evaluated, and the held-out splits scored at step 0 and the chosen one."""
    if not job.is_complete(steps, data_spec.eval_splits):
        return False
    held_out = data_spec.held_out_splits
    return not (held_out and missing_held_out(job, held_out, data_spec.eval_splits[0], select_by))


def build_reranker(cfg: DictConfig) -> tuple[Reranker, object]:
    """The backbone with LoRA on the chosen projections and a fresh score head, and its tokenizer."""
    model, lora = to_spec(ModelSpec, cfg.model, "model"), to_spec(LoraSpec, cfg.lora, "lora")
    projections = target_modules(cfg.targets.modules, model.modules)  # bad values fail before the model loads
    backbone, tokenizer = load_backbone(model, cfg.trainer.get("gradient_checkpointing", False))
    packed = cfg.trainer.get("packed", False)
    if packed:
        use_packing(backbone)
    backbone = add_lora(backbone, lora, projections)
    if cfg.trainer.get("compile", False):
        compile_layers(backbone)
    optim, chunks = to_spec(Optim, cfg.optim, "optim"), cfg.trainer.get("length_chunks")
    if chunks is not None:
        check_int("trainer.length_chunks", chunks, 1, "pairs scored at a time in training; null: the whole batch")
    read = read_position(cfg.data.template, tokenizer)
    return Reranker(backbone, cfg.data.group_size, optim, chunks, packed, read), tokenizer


@hydra.main(config_path=str(CONF_DIR), config_name="config", version_base=None)
def main(cfg: DictConfig) -> None:
    job = JobFolder(HydraConfig.get().runtime.output_dir)
    try:
        one_writer = job.writer(cfg.lock_wait_s) if writes_job_folder() else contextlib.nullcontext()
        with one_writer:
            run_job(cfg, job)
    except JobFolderBusy as err:  # the folder is another process's: write nothing into it
        if HydraConfig.get().mode == RunMode.MULTIRUN:  # the same grid launched twice: the holder trains this cell
            log.warning("skipping: %s", err)
            return
        raise SystemExit(f"error: {err}") from None


def run_job(cfg: DictConfig, job: JobFolder) -> None:
    """Train and evaluate, then mark the job completed; on any error or interruption, mark it failed."""
    try:
        if writes_job_folder():
            job.remove_partials()
        train_and_evaluate(cfg, job)
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
        if HydraConfig.get().mode == RunMode.MULTIRUN:  # the other cells go on; the summary counts this one
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
        print_results(job, to_spec(DataSpec, cfg.data, "data"), cfg.select_by)


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
