"""One tiny trained job shared by the ablation and probe tests: built once per test session, in pytest's
temporary folder (checkpoints at steps 0, 2 and 4; logger=csv). Tiny models run on one thread: on a shared
2-core machine a second torch thread makes them several times slower, not faster."""

from pathlib import Path

import torch

from conftest import TINY, job_dirs, run_module

ONE_THREAD = {"OMP_NUM_THREADS": "1", "TQDM_DISABLE": "1"}
_JOBS: dict[str, Path] = {}


def one_thread():
    """A fixture body: torch on one thread in this process for the fixture's scope."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def trained_tiny_job(tmp_path_factory) -> Path:
    if "job" not in _JOBS:
        cwd = tmp_path_factory.mktemp("trained-tiny")
        result = run_module("rerank_lora.run", [*TINY, "schedule.final=true"], cwd, env=ONE_THREAD)
        assert result.returncode == 0, result.stderr[-3000:]
        (_JOBS["job"],) = job_dirs(cwd)
    return _JOBS["job"]
