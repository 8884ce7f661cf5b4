"""Which steps are checkpoints, and the callback that saves and evaluates the reranker at each of them."""

import os
from pathlib import Path

import lightning as L
from lightning.fabric.utilities.seed import _collect_rng_states, _set_rng_states

from rerank_lora.errors import InputError
from rerank_lora.resume import TRAINER_STATE


def checkpoint_steps(schedule_cfg, max_steps: int) -> list[int]:
    """Step 0, then every `every` steps and/or the listed `steps`, and the last step if `final`."""
    steps = {0}
    if schedule_cfg.get("every"):
        if schedule_cfg.every < 1:
            raise InputError(f"schedule.every={schedule_cfg.every}; accepted: an integer >= 1 or null")
        steps |= set(range(schedule_cfg.every, max_steps + 1, schedule_cfg.every))
    listed = list(schedule_cfg.get("steps") or [])
    beyond = [s for s in listed if not isinstance(s, int) or not 0 <= s <= max_steps]
    if beyond:
        raise InputError(
            f"schedule.steps {beyond} lie outside the run's length; accepted: integers 0..trainer.max_steps={max_steps}"
        )
    steps |= set(listed)
    if schedule_cfg.get("final"):
        steps.add(max_steps)
    return sorted(steps)


class CheckpointSchedule(L.Callback):
    """At each scheduled step: save adapter + head to checkpoints/step-N, rerank every eval split, then
    save the trainer state there (trainer.ckpt) so that a re-run can resume from it. Its own state holds
    the RNG, restored just before training resumes, so dropout draws the same masks."""

    def __init__(self, steps: list[int], evaluator, out_dir: Path, info: dict, resumed_step: int = -1):
        self.steps, self.evaluator, self.out_dir, self.info = set(steps), evaluator, Path(out_dir), info
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
            folder = self.out_dir / "checkpoints" / f"step-{step}"
            reranker.save(folder, {**self.info, "step": step})
            self.evaluator.model(reranker, step)
            partial = folder / f"{TRAINER_STATE}.partial"
            trainer.save_checkpoint(partial, weights_only=False)
            os.replace(partial, folder / TRAINER_STATE)  # only a whole file counts as resumable

    def state_dict(self) -> dict:
        return {"rng": _collect_rng_states(include_cuda=True)}

    def load_state_dict(self, state_dict: dict) -> None:
        self.restored_rng = state_dict["rng"]
