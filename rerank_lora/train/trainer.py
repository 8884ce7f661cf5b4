"""The Lightning Trainer of a job, from the Trainer's own arguments (JobSpec.trainer: the `trainer` group less the
keys that say how the model computes, precision resolved)."""

from pathlib import Path

import lightning as L


def make_trainer(arguments: dict, logger, callbacks: list, out_dir: Path) -> L.Trainer:
    # A resumed run's first epoch ends early (Lightning counts the restored batches); reloading then
    # restarts the training stream at the current step.
    return L.Trainer(
        **arguments, logger=logger, callbacks=callbacks, default_root_dir=out_dir, reload_dataloaders_every_n_epochs=1
    )
