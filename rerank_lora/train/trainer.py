"""The Lightning Trainer of the `trainer` config group; the group's own keys (not Trainer arguments) are
read by the entry point and left out here."""

from pathlib import Path

import lightning as L
from omegaconf import DictConfig, OmegaConf

from rerank_lora.train.precision import resolve_precision

OWN_KEYS = ("gradient_checkpointing", "length_chunks", "packed", "compile")  # how the model runs: run.build_reranker reads them


def make_trainer(trainer_cfg: DictConfig, logger, callbacks: list, out_dir: Path, precision: str | None = None) -> L.Trainer:
    """`precision`: trainer.precision resolved (train/precision.py: `auto` is not a Lightning value); None: resolved here."""
    arguments = {k: v for k, v in OmegaConf.to_container(trainer_cfg, resolve=True).items() if k not in OWN_KEYS}
    declared = arguments.get("precision", "32-true")
    arguments["precision"] = precision or resolve_precision(declared, arguments.get("accelerator", "cpu"))
    arguments.pop("_target_", None)
    # A resumed run's first epoch ends early (Lightning counts the restored batches); reloading then
    # restarts the training stream at the current step.
    return L.Trainer(
        **arguments, logger=logger, callbacks=callbacks, default_root_dir=out_dir, reload_dataloaders_every_n_epochs=1
    )
