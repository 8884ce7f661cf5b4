"""The job folder, the project's output contract: every reader and writer of a job's files goes through here.

    <job>/.hydra/config.yaml            the resolved job config (overrides.yaml beside it)
    <job>/status.json                   {"status": completed | failed, "error": ...}; absent: unfinished
    <job>/metrics.jsonl                 one row per evaluation (`metrics_row`)
    <job>/runs/<split>-step<N>.trec     the reranked run at each checkpoint; <split>-first-stage.trec the baseline
    <job>/checkpoints/step-<N>/         adapter, head, reranker.json, trainer.ckpt, and the analysis tables

A data-parallel job (trainer=ddp) is several processes running the same job in the same folder: only the global
rank 0 writes it (`writes_job_folder`).
"""

import json
import os
import re
from dataclasses import dataclass
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

COMPLETED, FAILED, UNFINISHED = "completed", "failed", "unfinished"
FIRST_STAGE, MODEL = "first-stage", "model"  # the two kinds of ranker a metrics row describes
INFO_FILE = "reranker.json"  # in a checkpoint folder: its step and where the job's config is
TRAINER_STATE = "trainer.ckpt"  # in a checkpoint folder: what a re-run resumes from
STEP_FOLDER = re.compile(r"step-(\d+)")


def writes_job_folder() -> bool:
    """Whether this process writes the job folder: always in a single-process job; in a data-parallel one only
    the global rank 0. The rank is Lightning's: the one its Trainer sets up, and before that the one the launcher
    put in the environment (LOCAL_RANK for Lightning's own processes, SLURM_PROCID for SLURM's tasks, RANK for
    torchrun), with NODE_RANK > 0 for a process of another node that Lightning launched there."""
    from lightning.fabric.utilities.rank_zero import rank_zero_only  # imported here: it sets the rank (and loads torch)

    return rank_zero_only.rank == 0 and int(os.environ.get("NODE_RANK") or 0) == 0


def checkpoint_name(step: int) -> str:
    return f"step-{step}"


def step_of_name(name: str) -> int | None:
    """The step of a checkpoint folder named `step-N`, else None."""
    match = STEP_FOLDER.fullmatch(name)
    return int(match.group(1)) if match else None


def metrics_row(step: int | None, split: str, ranker: str, values: dict[str, float]) -> dict:
    """One line of metrics.jsonl: the first stage has step None."""
    return {"step": step, "split": split, "ranker": ranker, **values}


def write_atomic(path: Path, text: str) -> None:
    """Write under a temporary name, then rename: a file with the final name is always complete."""
    partial = path.with_name(f".{path.name}.partial-{os.getpid()}")
    partial.write_text(text, encoding="utf-8")
    os.replace(partial, path)


@dataclass(frozen=True)
class JobFolder:
    path: Path

    def __post_init__(self):
        object.__setattr__(self, "path", Path(self.path))

    # --- where things are ---
    @property
    def config_file(self) -> Path:
        return self.path / ".hydra" / "config.yaml"

    @property
    def overrides_file(self) -> Path:
        return self.path / ".hydra" / "overrides.yaml"

    @property
    def status_file(self) -> Path:
        return self.path / "status.json"

    @property
    def metrics_file(self) -> Path:
        return self.path / "metrics.jsonl"

    def run_file(self, split: str, step: int | None) -> Path:
        """The TREC run of `split` at `step` (None: the first stage)."""
        return self.path / "runs" / (f"{split}-first-stage.trec" if step is None else f"{split}-step{step}.trec")

    def checkpoint(self, step: int) -> Path:
        return self.path / "checkpoints" / checkpoint_name(step)

    def checkpoints(self) -> list[tuple[int, Path]]:
        """(step, folder) of every checkpoint folder, by step."""
        found = [(step_of_name(f.name), f) for f in (self.path / "checkpoints").glob("step-*") if f.is_dir()]
        return sorted((step, f) for step, f in found if step is not None)

    def last_trainer_state(self) -> tuple[Path | None, int]:
        """The newest checkpoints/step-N/trainer.ckpt and its step, or (None, -1)."""
        saved = [(step, f / TRAINER_STATE) for step, f in self.checkpoints() if (f / TRAINER_STATE).is_file()]
        return (saved[-1][1], saved[-1][0]) if saved else (None, -1)

    # --- status ---
    def status(self) -> dict:
        """{"status": completed | failed | unfinished, "error": ...}; a job killed from outside wrote nothing."""
        if not self.status_file.is_file():
            return {"status": UNFINISHED, "error": None}
        return {"status": UNFINISHED, "error": None} | json.loads(self.status_file.read_text())

    def write_status(self, status: str, error: str | None = None) -> None:
        assert status in (COMPLETED, FAILED), status
        self.path.mkdir(parents=True, exist_ok=True)
        write_atomic(self.status_file, json.dumps({"status": status, "error": error}) + "\n")

    def config(self) -> DictConfig:
        return OmegaConf.load(self.config_file)

    def overrides(self) -> list[str]:
        return list(OmegaConf.load(self.overrides_file)) if self.overrides_file.is_file() else []

    # --- metrics ---
    def metrics(self) -> list[dict]:
        if not self.metrics_file.is_file():
            return []
        return [json.loads(line) for line in self.metrics_file.read_text().splitlines() if line.strip()]

    def append_metrics(self, row: dict) -> None:
        with self.metrics_file.open("a") as handle:
            handle.write(json.dumps(row) + "\n")

    def model_metrics(self) -> dict[tuple[str, int], dict]:
        """The model's rows by (split, step)."""
        return {(r["split"], r["step"]): r for r in self.metrics() if r["ranker"] == MODEL}

    def keep_metrics_until(self, step: int) -> None:
        """Drop what a resumed job will write again: the baseline and evaluations after `step` (-1: all)."""
        if self.metrics_file.is_file():
            kept = [r for r in self.metrics() if r["ranker"] == MODEL and r["step"] <= step]
            write_atomic(self.metrics_file, "".join(json.dumps(r) + "\n" for r in kept))

    def is_complete(self, steps: list[int], splits) -> bool:
        """Completed, with every scheduled step evaluated on every split."""
        if self.status()["status"] != COMPLETED:
            return False
        return {(split, step) for split in splits for step in steps} <= set(self.model_metrics())


def job_folders(root: Path, depth: int = 1) -> list[JobFolder]:
    """The job folders (with .hydra/config.yaml) at `root` and up to `depth` levels below it."""
    root, found = Path(root), set()
    for level in range(depth + 1):
        found |= {p.parent.parent for p in root.glob("*/" * level + ".hydra/config.yaml")}
    return [JobFolder(p) for p in sorted(found)]
