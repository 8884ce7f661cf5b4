"""Named fault points, where the fault-injection tests (tests/test_faults.py, scripts/fault_soak.py) kill a job at
the moments a cluster's kills and full disks hit hardest. With RERANK_LORA_FAULT=<point>[@<hit>][:<signal>] in the
environment, the process sends itself <signal> (KILL or TERM; default KILL) the <hit>-th time (default 1) it
passes <point>; with FILL for <signal> it fills the filesystem of its working directory instead (a `.ballast` file
there), so that the writes after the point meet a real full disk. Without the variable, a point is one dictionary
lookup."""

import errno
import os
import signal

POINTS = (
    "first_stage",  # the baseline run written, its metrics not yet
    "adapter_saved",  # a checkpoint's adapter written by save_pretrained, its head not yet
    "before_trainer_state",  # a checkpoint saved and evaluated, its trainer.ckpt not yet
    "metrics_line",  # half of a metrics line appended
    "evaluation",  # a checkpoint's first split scored, the next not yet
    "table_write",  # a table (summary.csv) written under its temporary name, not yet renamed
    "logger_save",  # the CSV logger about to write its metrics.csv
    "before_status",  # a job done, its status.json not yet written
    "before_summary",  # a sweep's cells done, its summary.csv not yet written
)
BALLAST = ".ballast"
_passed: dict[str, int] = {}


def point(name: str) -> None:
    """Kill this process here if RERANK_LORA_FAULT names this point and this is the chosen pass."""
    spec = os.environ.get("RERANK_LORA_FAULT")
    if not spec:
        return
    where, _, how = spec.partition(":")
    wanted, _, hit = where.partition("@")
    if wanted != name:
        return
    _passed[name] = _passed.get(name, 0) + 1
    if _passed[name] != int(hit or 1):
        return
    if how == "FILL":
        fill_disk()
    else:
        os.kill(os.getpid(), signal.SIGTERM if how == "TERM" else signal.SIGKILL)


def fill_disk() -> None:
    """Write `.ballast` in the working directory until its filesystem has no block left."""
    with open(BALLAST, "ab", buffering=0) as handle:
        for chunk in (1 << 20, 1 << 12, 1):
            try:
                while True:
                    handle.write(b"\0" * chunk)
            except OSError as err:
                if err.errno != errno.ENOSPC:
                    raise
