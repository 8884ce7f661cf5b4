"""Named fault points, where the fault-injection tests (tests/test_faults.py, scripts/fault_soak.py) kill a job at
the moments a cluster's kills and full disks hit hardest. With RERANK_LORA_FAULT=<point>[@<hit>][:<signal>] in the
environment, the process sends itself <signal> (KILL or TERM; default KILL) the <hit>-th time (default 1) it
passes <point>. Without the variable, a point is one dictionary lookup."""

import os
import signal

POINTS = (
    "first_stage",  # the baseline run written, its metrics not yet
    "adapter_saved",  # a checkpoint's adapter written by save_pretrained, its head not yet
    "before_trainer_state",  # a checkpoint saved and evaluated, its trainer.ckpt not yet
    "metrics_line",  # half of a metrics line appended
    "evaluation",  # a checkpoint's first split scored, the next not yet
    "table_write",  # a table (summary.csv) written under its temporary name, not yet renamed
)
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
    if _passed[name] == int(hit or 1):
        os.kill(os.getpid(), signal.SIGTERM if how == "TERM" else signal.SIGKILL)
