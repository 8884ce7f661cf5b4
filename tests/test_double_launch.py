"""One grid launched twice at once into the same sweep folder (two `-m` processes): each cell is trained by one
of them, the other skips it with a line naming the process that holds it, and summary.csv is written once, whole."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import TINY, summary_rows

pytestmark = pytest.mark.faults
GRID = ["-m", *TINY, "lora.rank=1,2", "hydra.sweep.dir=grid", "lock_wait_s=1"]


def launch(cwd: Path) -> subprocess.Popen:
    env = {**os.environ, "WANDB_MODE": "offline", "PYTHONUNBUFFERED": "1", "OMP_NUM_THREADS": "1"}
    return subprocess.Popen([sys.executable, "-m", "rerank_lora.run", *GRID], cwd=cwd, env=env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)


def test_a_grid_launched_twice_at_once_trains_each_cell_once_and_writes_one_summary(tmp_path):
    launchers = [launch(tmp_path), launch(tmp_path)]
    outputs = {proc.pid: proc.communicate(timeout=900)[0] for proc in launchers}
    assert all(proc.returncode == 0 for proc in launchers), outputs
    cells = sorted(p.parent.parent for p in (tmp_path / "grid").glob("*/.hydra/config.yaml"))
    assert len(cells) == 2
    for cell in cells:
        log = "".join(f.read_text() for f in cell.glob("*.log"))
        assert log.count("first training step") == 1, (cell, log[-3000:])  # one training run in the cell's log
    refused = [line for out in outputs.values() for line in out.splitlines() if "skipping: " in line]
    for line in refused:  # a cell the other launcher held: named by its pid
        assert any(f"being written by pid {pid} " in line for pid in outputs), line
    written = [line for out in outputs.values() for line in out.splitlines()
               if line.startswith("sweep summary: ") and line.endswith("summary.csv")]
    assert len(written) == 1, outputs
    rows = summary_rows(tmp_path / "grid")
    keys = [(r["job"], r["split"], r["step"], r["ranker"]) for r in rows]
    assert len(keys) == len(set(keys)) == 2 * 2 * 3  # cells x splits x (first stage, steps 0, 2)
    assert {r["status"] for r in rows} == {"completed"}
