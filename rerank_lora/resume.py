"""Re-running a job in the same folder: skip it when every checkpoint is evaluated, else resume it from
its last saved trainer state (weights, optimizer, scheduler, step, data position, RNG)."""

import json
import re
from pathlib import Path

from rerank_lora.results import read_metrics

TRAINER_STATE = "trainer.ckpt"


def is_complete(out_dir: Path, steps: list[int], splits) -> bool:
    status = Path(out_dir) / "status.json"
    if not status.exists() or json.loads(status.read_text()).get("status") != "completed":
        return False
    evaluated = {(r["split"], r["step"]) for r in read_metrics(out_dir) if r["ranker"] == "model"}
    return {(split, step) for split in splits for step in steps} <= evaluated


def last_trainer_state(out_dir: Path) -> tuple[Path | None, int]:
    """The newest checkpoints/step-N/trainer.ckpt and its step, or (None, -1)."""
    found = []
    for path in Path(out_dir).glob(f"checkpoints/step-*/{TRAINER_STATE}"):
        match = re.fullmatch(r"step-(\d+)", path.parent.name)
        if match:
            found.append((int(match.group(1)), path))
    if not found:
        return None, -1
    step, path = max(found)
    return path, step


def keep_metrics_until(out_dir: Path, step: int) -> None:
    """Drop what a resumed job will write again: the baseline and evaluations after `step` (-1: all)."""
    path = Path(out_dir) / "metrics.jsonl"
    if not path.exists():
        return
    rows = [r for r in read_metrics(out_dir) if r["ranker"] == "model" and r["step"] <= step]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
