"""Which steps are checkpoints, and the callback that saves and evaluates the reranker at each of them."""

from pathlib import Path

import lightning as L

from rerank_lora.errors import InputError


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
    """At each scheduled step: save adapter + head to checkpoints/step-N, then rerank every eval split."""

    def __init__(self, steps: list[int], evaluator, out_dir: Path, info: dict):
        self.steps, self.evaluator, self.out_dir, self.info = set(steps), evaluator, Path(out_dir), info
        self.done: set[int] = set()

    def on_train_start(self, trainer, reranker) -> None:
        self._maybe_checkpoint(trainer, reranker)

    def on_train_batch_end(self, trainer, reranker, outputs, batch, batch_idx) -> None:
        self._maybe_checkpoint(trainer, reranker)

    def _maybe_checkpoint(self, trainer, reranker) -> None:
        step = trainer.global_step
        if step in self.steps and step not in self.done:
            self.done.add(step)
            reranker.save(self.out_dir / "checkpoints" / f"step-{step}", {**self.info, "step": step})
            self.evaluator.model(reranker, step)
