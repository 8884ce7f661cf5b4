"""A job's offline W&B runs as wandb itself reads them: `wandb leet inspect --json RUN.wandb` prints every record
of the run's transaction log (run, config, history, summary, ...), one JSON object a line."""

import json
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

from rerank_lora.errors import InputError


@dataclass
class LoggedRun:
    path: Path  # the run's .wandb file
    name: str = ""
    group: str = ""
    job_type: str = ""
    tags: list[str] = field(default_factory=list)
    config: dict = field(default_factory=dict)  # flattened: {"lora.rank": 2, ...}
    history: list[dict] = field(default_factory=list)  # one dict per logged row
    summary: dict = field(default_factory=dict)  # the latest value of every key

    def values_at(self, key: str, step_key: str) -> list[tuple[object, object]]:
        """(step, value) of every history row that holds `key`."""
        return [(row.get(step_key), row[key]) for row in self.history if key in row]


def flatten(node: dict, prefix: str = "") -> dict:
    flat = {}
    for key, value in node.items():
        if isinstance(value, dict) and value:
            flat |= flatten(value, f"{prefix}{key}.")
        else:
            flat[f"{prefix}{key}"] = value
    return flat


def wandb_command() -> list[str]:
    """The wandb CLI of this interpreter's environment."""
    return [str(Path(sys.executable).with_name("wandb"))]


def records(path: Path) -> list[dict]:
    result = subprocess.run([*wandb_command(), "leet", "inspect", "--json", str(path)], capture_output=True, text=True)
    if result.returncode != 0:
        raise InputError(f"wandb leet inspect could not read {path}: {result.stderr.strip()[-300:]}")
    return [json.loads(line) for line in result.stdout.splitlines() if line.strip()]


def config_update(body: dict) -> dict:
    return flatten({k: v for k, v in body.get("update", {}).items() if k != "_wandb"})


def read_run(path: Path) -> LoggedRun:
    run = LoggedRun(path)
    for record in records(path):
        kind = record["type"]
        body = record.get(kind, {})
        if kind == "run":  # wandb.init's config comes with the run record, later updates as config records
            run.name, run.group = body.get("display_name", ""), body.get("run_group", "")
            run.job_type, run.tags = body.get("job_type", ""), list(body.get("tags", []))
            run.config |= config_update(body.get("config", {}))
        elif kind == "config":
            run.config |= config_update(body)
        elif kind == "history":
            run.history.append(body.get("item", {}))
        elif kind == "summary":
            run.summary |= body.get("update", {})
    return run


def run_files(job_dir: Path) -> list[Path]:
    """The .wandb files of a job's offline runs: its own and those of its analysis tables."""
    return sorted(job_dir.glob("wandb/offline-run-*/run-*.wandb"))


def job_runs(job_dir: Path) -> list[LoggedRun]:
    return [read_run(path) for path in run_files(job_dir)]
