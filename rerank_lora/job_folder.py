"""The job folder, the project's output contract: every reader and writer of a job's files goes through here.

    <job>/.hydra/config.yaml            the resolved job config (overrides.yaml beside it)
    <job>/status.json                   {"status": completed | failed, "error": ...}; absent: unfinished
    <job>/metrics.jsonl                 one row per evaluation (`metrics_row`)
    <job>/runs/<split>-step<N>.trec     the reranked run at each checkpoint; <split>-first-stage.trec the baseline;
                                        <split>.qrels the judgments they are evaluated against
    <job>/checkpoints/step-<N>/         adapter, head, reranker.json, trainer.ckpt, and the analysis tables

A data-parallel job (trainer=ddp) is several processes running the same job in the same folder: only the global
rank 0 writes it (`writes_job_folder`).
"""

import contextlib
import json
import logging
import os
import re
import socket
import time
from dataclasses import dataclass
from pathlib import Path

from rerank_lora import faults
from rerank_lora.disk import alive, remove_partials, write_atomic, writing
from rerank_lora.errors import DiskFull, InputError

log = logging.getLogger(__name__)


class JobFolderBusy(InputError):
    """Another process holds the job folder's writer lock."""
COMPLETED, FAILED, UNFINISHED = "completed", "failed", "unfinished"
FIRST_STAGE, MODEL = "first-stage", "model"  # the two kinds of ranker a metrics row describes
INFO_FILE = "reranker.json"  # in a checkpoint folder: its step and where the job's config is
ADAPTER_FILE, ADAPTER_CONFIG = "adapter_model.safetensors", "adapter_config.json"  # in a checkpoint folder: peft's names
HEAD_FILE = "head.safetensors"  # in a checkpoint folder: the score head
TRAINER_STATE = "trainer.ckpt"  # in a checkpoint folder: what a re-run resumes from
WRITER_LOCK = ".writer.lock"  # in a job folder while a process writes it: {"pid", "host", "since"}
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

    def qrels_file(self, split: str) -> Path:
        """The judgments of `split`'s reranked queries, as TREC qrels (what the runs are evaluated against)."""
        return self.path / "runs" / f"{split}.qrels"

    def checkpoint(self, step: int) -> Path:
        return self.path / "checkpoints" / checkpoint_name(step)

    def checkpoints(self) -> list[tuple[int, Path]]:
        """(step, folder) of every checkpoint folder, by step."""
        found = [(step_of_name(f.name), f) for f in (self.path / "checkpoints").glob("step-*") if f.is_dir()]
        return sorted((step, f) for step, f in found if step is not None)

    def last_trainer_state(self) -> tuple[Path | None, int]:
        """The newest intact checkpoints/step-N/trainer.ckpt and its step, or (None, -1). A checkpoint with a
        damaged file (a full disk, a kill while the adapter was written) is passed over for the one before it,
        which re-saves it; when every saved checkpoint is damaged, one error names the files."""
        saved = [(step, f) for step, f in self.checkpoints() if (f / TRAINER_STATE).is_file()]
        damaged = []
        for step, folder in reversed(saved):
            problem = damage(folder)
            if problem is None:
                return folder / TRAINER_STATE, step
            log.warning("passing over the checkpoint at step %d: %s", step, problem)
            damaged.append(problem)
        if damaged:
            raise InputError(
                f"{self.path}: every saved checkpoint is damaged ({'; '.join(damaged)}); remove the checkpoints "
                f"folder (or the whole job folder) to train from scratch"
            )
        return None, -1

    # --- one writer ---
    @property
    def lock_file(self) -> Path:
        return self.path / WRITER_LOCK

    @contextlib.contextmanager
    def writer(self, wait_s: float = 30.0):
        """Hold the job folder's writer lock (pid and host in `.writer.lock`) while the block runs. Another live
        holder is waited for up to `wait_s` seconds (a requeued job whose predecessor still flushes), then
        refused with JobFolderBusy naming it; a lock whose process is gone (same host) is taken over."""
        self.path.mkdir(parents=True, exist_ok=True)
        deadline, waiting = time.monotonic() + wait_s, False
        while not self._take_lock():
            holder = self._lock_holder()
            if not waiting and wait_s > 0:
                waiting = True
                log.info("waiting up to %ss for %s: being written by pid %s on %s", wait_s, self.path,
                         holder.get("pid"), holder.get("host"))
            if time.monotonic() >= deadline:
                raise JobFolderBusy(
                    f"{self.path} is being written by pid {holder.get('pid')} on {holder.get('host')} (since "
                    f"{holder.get('since')}); run it when that process has ended, or remove {self.lock_file} if it is gone"
                )
            time.sleep(0.5)
        try:
            yield
        finally:
            self.lock_file.unlink(missing_ok=True)

    def _take_lock(self) -> bool:
        me = {"pid": os.getpid(), "host": socket.gethostname(), "since": time.strftime("%Y-%m-%d %H:%M:%S")}
        try:
            fd = os.open(self.lock_file, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
        except FileExistsError:
            holder = self._lock_holder()
            cut_short = not holder and time.time() - self.lock_file.stat().st_mtime > 5  # a writer killed mid-write
            if cut_short or (holder.get("host") == me["host"] and not alive(holder.get("pid"))):
                log.warning("taking over %s from pid %s, which is gone", self.lock_file, holder.get("pid"))
                self.lock_file.unlink(missing_ok=True)
                return self._take_lock()
            return False
        with os.fdopen(fd, "w") as handle:
            json.dump(me, handle)
        return True

    def live_holder(self) -> dict | None:
        """The lock's holder ({"pid", "host", "since"}) while another process that is not gone holds it, else None."""
        holder = self._lock_holder()
        if not holder or holder.get("pid") == os.getpid():
            return None
        same_host = holder.get("host") == socket.gethostname()
        return None if same_host and not alive(holder.get("pid")) else holder

    def _lock_holder(self) -> dict:
        try:
            return json.loads(self.lock_file.read_text())
        except (OSError, ValueError):
            return {}  # being written this instant, or just removed

    # --- status ---
    def status(self) -> dict:
        """{"status": completed | failed | unfinished, "error": ...}; a job killed from outside wrote nothing."""
        if not self.status_file.is_file():
            return {"status": UNFINISHED, "error": None}
        return {"status": UNFINISHED, "error": None} | json.loads(self.status_file.read_text())

    def write_status(self, status: str, error: str | None = None) -> None:
        assert status in (COMPLETED, FAILED), status
        if self.status_file.is_file() and self.status() == {"status": status, "error": error}:
            return  # a skipped re-run changes nothing: the sweep summary stays current (hydra_callbacks.py)
        self.path.mkdir(parents=True, exist_ok=True)
        write_atomic(self.status_file, json.dumps({"status": status, "error": error}) + "\n")

    def mark_failed(self, error: str) -> None:
        """Status failed; on a disk too full even for that, no status at all (unfinished), never an old one."""
        try:
            self.write_status(FAILED, error)
        except DiskFull:
            self.status_file.unlink(missing_ok=True)

    def remove_partials(self) -> None:
        """What writes cut short left here (kills, a full disk): run by the lock's holder, so none is being written."""
        for path in remove_partials(self.path):
            log.info("removed %s, left by an interrupted write", path)

    # --- metrics ---
    def metrics(self) -> list[dict]:
        """The rows of metrics.jsonl. A last line cut short (a kill or a full disk while it was appended) is left
        out; a damaged line before it is one error naming the file and line."""
        if not self.metrics_file.is_file():
            return []
        lines = self.metrics_file.read_text(encoding="utf-8", errors="replace").split("\n")
        rows = []
        for number, line in enumerate(lines, start=1):
            if not line.strip():
                continue
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError:
                if number == len(lines):  # no newline after it: the append never finished
                    log.warning("%s:%d: a metrics line cut short is left out", self.metrics_file, number)
                    continue
                raise InputError(f"{self.metrics_file}:{number}: damaged metrics line {line[:80]!r}; remove the line") from None
        return rows

    def append_metrics(self, row: dict) -> None:
        """One line, written whole: a line a kill cut short before is dropped first (metrics() leaves it out)."""
        text = self.metrics_file.read_bytes() if self.metrics_file.is_file() else b""
        if text and not text.endswith(b"\n"):
            write_atomic(self.metrics_file, "".join(json.dumps(r) + "\n" for r in self.metrics()))
        line, size = json.dumps(row) + "\n", len(text)
        try:
            with writing(self.metrics_file), self.metrics_file.open("a") as handle:
                handle.write(line[: len(line) // 2])
                handle.flush()
                faults.point("metrics_line")  # a kill here leaves half a line, as one mid-write does
                handle.write(line[len(line) // 2 :])
        except DiskFull:
            os.truncate(self.metrics_file, size)  # the file as it was: freeing space needs no space
            raise

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


def damage(folder: Path) -> str | None:
    """What is wrong with a saved checkpoint folder's files, or None when every one reads whole."""
    import torch
    from safetensors.torch import load_file

    try:
        json.loads((folder / INFO_FILE).read_text())
    except (OSError, ValueError):
        return f"{folder / INFO_FILE} is missing or not JSON"
    for name in (ADAPTER_FILE, HEAD_FILE):
        try:
            load_file(folder / name)
        except Exception as err:  # safetensors' own error types for a short or garbled file
            return f"{folder / name} does not read ({type(err).__name__})"
    try:
        torch.load(folder / TRAINER_STATE, map_location="cpu", weights_only=False, mmap=True)  # our own file
    except Exception as err:  # a zip archive cut short, or zero bytes
        return f"{folder / TRAINER_STATE} does not read ({type(err).__name__})"
    return None


def job_folders(root: Path, depth: int = 1) -> list[JobFolder]:
    """The job folders (with .hydra/config.yaml) at `root` and up to `depth` levels below it."""
    root, found = Path(root), set()
    for level in range(depth + 1):
        found |= {p.parent.parent for p in root.glob("*/" * level + ".hydra/config.yaml")}
    return [JobFolder(p) for p in sorted(found)]
