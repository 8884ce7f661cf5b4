"""A job's fixed cost: seconds from its process start (imports, config, model and data loading, the
step-0 evaluation) to its first training step, logged once per job."""

import logging
import os
import time

import lightning as L

log = logging.getLogger(__name__)
_IMPORTED = time.monotonic()


def seconds_since_process_start() -> float:
    """From the kernel's record of when this process began (Linux), else since this module loaded."""
    try:
        with open("/proc/self/stat") as stat, open("/proc/uptime") as uptime:
            started_ticks = int(stat.read().rsplit(")", 1)[1].split()[19])
            return float(uptime.read().split()[0]) - started_ticks / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError):
        return time.monotonic() - _IMPORTED


class FirstStepTimer(L.Callback):
    """Logs the seconds to the first training step, from the process start and (in a multirun, where one
    process runs many jobs) from this job's start."""

    def __init__(self):
        self.job_started, self.logged = time.monotonic(), False

    def on_train_batch_start(self, trainer, reranker, batch, batch_idx) -> None:
        if not self.logged:
            self.logged = True
            log.info(
                "first training step %.1f s after the job's process started (%.1f s after this job started)",
                seconds_since_process_start(), time.monotonic() - self.job_started,
            )
