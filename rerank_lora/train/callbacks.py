"""Lightning callbacks of a training job: save and evaluate at each scheduled step, and time the start-up."""

import json
import logging
import os
import time

import lightning as L
import torch
from lightning.fabric.utilities.seed import _collect_rng_states, _set_rng_states

from rerank_lora import faults
from rerank_lora.disk import writing
from rerank_lora.errors import TrainingDiverged
from rerank_lora.job_folder import INFO_FILE, TRAINER_STATE, JobFolder, write_atomic

log = logging.getLogger(__name__)
_IMPORTED = time.monotonic()


class CheckpointSchedule(L.Callback):
    """At each scheduled step: save adapter + head to checkpoints/step-N, rerank every eval split, then
    save the trainer state there (trainer.ckpt) so that a re-run can resume from it. Its own state holds
    the RNG, restored just before training resumes, so dropout draws the same masks. Under data parallelism
    the global rank 0 saves and reranks while the other ranks wait; every rank takes part in saving
    trainer.ckpt (Lightning's save_checkpoint is collective), which rank 0 writes."""

    def __init__(self, steps: list[int], evaluator, job: JobFolder, info: dict, resumed_step: int = -1):
        self.steps, self.evaluator, self.job, self.info = set(steps), evaluator, job, info
        self.done = {s for s in self.steps if s <= resumed_step}
        self.restored_rng: dict | None = None

    def on_train_start(self, trainer, reranker) -> None:
        if self.restored_rng is not None:
            _set_rng_states(self.restored_rng)
        self._maybe_checkpoint(trainer, reranker)

    def on_train_batch_end(self, trainer, reranker, outputs, batch, batch_idx) -> None:
        self._maybe_checkpoint(trainer, reranker)

    def _maybe_checkpoint(self, trainer, reranker) -> None:
        step = trainer.global_step
        if step in self.steps and step not in self.done:
            self.done.add(step)
            folder = self.job.checkpoint(step)
            if trainer.is_global_zero:
                check_finite(reranker, step)
                reranker.save(folder)  # the LightningModule itself, not the DDP wrapper
                write_atomic(folder / INFO_FILE, json.dumps({**self.info, "step": step}, indent=2))
                self.evaluator.evaluate_model(reranker, step)
            trainer.strategy.barrier("rank 0 reranks")
            faults.point("before_trainer_state")
            partial = folder / f"{TRAINER_STATE}.partial"
            with writing(folder / TRAINER_STATE, partial):
                trainer.save_checkpoint(partial, weights_only=False)  # every rank; returns once rank 0 has written it
            if trainer.is_global_zero:
                os.replace(partial, folder / TRAINER_STATE)  # only a whole file counts as resumable

    def state_dict(self) -> dict:
        return {"rng": _collect_rng_states(include_cuda=True)}

    def load_state_dict(self, state_dict: dict) -> None:
        self.restored_rng = state_dict["rng"]


def check_finite(reranker, step: int) -> None:
    """No checkpoint of non-finite weights is written as if it were a result."""
    bad = [name for name, p in reranker.named_parameters() if p.requires_grad and not torch.isfinite(p).all()]
    if bad:
        raise TrainingDiverged(f"{len(bad)} trained weight tensors are not finite at step {step} (e.g. {bad[0]})")


def seconds_since_process_start() -> float:
    """From the kernel's record of when this process began (Linux), else since this module loaded."""
    try:
        with open("/proc/self/stat") as stat, open("/proc/uptime") as uptime:
            started_ticks = int(stat.read().rsplit(")", 1)[1].split()[19])
            return float(uptime.read().split()[0]) - started_ticks / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError):
        return time.monotonic() - _IMPORTED


class FirstStepTimer(L.Callback):
    """Logs a job's fixed cost: seconds to its first training step, from the process start and (in a
    multirun, where one process runs many jobs) from this job's start."""

    def __init__(self):
        self.job_started, self.logged = time.monotonic(), False

    def on_train_batch_start(self, trainer, reranker, batch, batch_idx) -> None:
        if not self.logged:
            self.logged = True
            log.info(
                "first training step %.1f s after the job's process started (%.1f s after this job started)",
                seconds_since_process_start(), time.monotonic() - self.job_started,
            )

