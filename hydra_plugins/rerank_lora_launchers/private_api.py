"""Every private attribute of submitit and Hydra that our launchers use, and a check of them at import.

The launchers need a few things that neither library makes public: how long ago submitit's SLURM watcher last
called sacct, a way to make it forget a finished state that sacct showed too early, a local job's process,
submitit's wait for a result file, the exception in a failed JobReturn, and Hydra's writer of .hydra/*.yaml. A
release may rename or drop any of them without notice; pyproject.toml pins the versions tested (TESTED), and
importing this module fails with an ImportError that names the missing attribute, instead of a sweep that breaks
at its end or, worse, silently.
"""

import time
from dataclasses import dataclass
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

import hydra.core.utils
import submitit.core.core
import submitit.local.local
import submitit.slurm.slurm
from hydra.core.utils import JobReturn

# the versions these accesses were checked against, as pyproject.toml pins them
TESTED = {"submitit": ">=1.5.4,<1.6", "hydra-core": ">=1.3.8,<1.4"}


@dataclass(frozen=True)
class Private:
    """A private attribute we use: `name` on `owner` (a module or a class), from the distribution `package`."""

    package: str
    owner: Any
    name: str

    def present(self) -> bool:
        """On the owner, or, for an attribute set per instance, assigned by the owner's __init__."""
        if hasattr(self.owner, self.name):
            return True
        init_code = getattr(getattr(self.owner, "__init__", None), "__code__", None)
        return init_code is not None and self.name in init_code.co_names

    def where(self) -> str:
        qualname = getattr(self.owner, "__qualname__", None)
        owner = f"{self.owner.__module__}.{qualname}" if qualname else self.owner.__name__
        return f"{owner}.{self.name}"


USED = (
    Private("submitit", submitit.core.core.InfoWatcher, "_last_status_check"),  # seconds_since_status_check
    Private("submitit", submitit.core.core.InfoWatcher, "_finished"),  # unfinish
    Private("submitit", submitit.core.core.InfoWatcher, "_info_dict"),  # unfinish
    Private("submitit", submitit.local.local.LocalJob, "_process"),  # process_returncode
    Private("submitit", submitit.core.core.Job, "_results_timeout_s"),  # stop_waiting_for_result
    Private("hydra-core", JobReturn, "_return_value"),  # job_exception
    Private("hydra-core", hydra.core.utils, "_save_config"),  # save_config
)


def installed_version(package: str) -> str:
    try:
        return version(package)
    except PackageNotFoundError:
        return "(not installed)"


def check_private_api(used: tuple[Private, ...] = USED) -> None:
    """Raise an ImportError naming every private attribute in `used` that the installed release lacks."""
    missing = [private for private in used if not private.present()]
    if not missing:
        return
    lines = [
        f"{private.where()} is missing from {private.package} {installed_version(private.package)} "
        f"(tested: {private.package}{TESTED[private.package]})"
        for private in missing
    ]
    pins = " ".join(f"'{package}{TESTED[package]}'" for package in sorted({private.package for private in missing}))
    raise ImportError(
        "rerank-lora's launchers use private attributes that the installed release does not have:\n  "
        + "\n  ".join(lines)
        + f"\nInstall a tested version (pip install {pins}) or update {__name__}."
    )


check_private_api()


def seconds_since_status_check(watcher: submitit.core.core.InfoWatcher) -> float:
    """Seconds since the watcher last asked the cluster (sacct) about its jobs."""
    return time.time() - watcher._last_status_check


def unfinish(watcher: submitit.core.core.InfoWatcher, job_id: str, state: str) -> None:
    """Make the watcher forget that `job_id` is finished (it keeps a finished state for good, also one that sacct
    showed for a run that SLURM has since requeued) and say `state` for it until its next sacct call."""
    watcher._finished.discard(job_id)
    watcher._info_dict[job_id] = {**watcher._info_dict.get(job_id, {}), "State": state}


def process_returncode(job: submitit.core.core.Job) -> int | None:
    """A local job's exit code; None while its process runs, and for a job without a process (SLURM's)."""
    return getattr(getattr(job, "_process", None), "returncode", None)


def stop_waiting_for_result(job: submitit.core.core.Job) -> None:
    """job.results() raises at once if the result file is missing, instead of polling for it 15 s."""
    job._results_timeout_s = 0


def job_exception(job_return: JobReturn) -> BaseException:
    """The exception that escaped the task function of a failed cell (`return_value` would raise it)."""
    return job_return._return_value


def save_config(cfg: Any, filename: str, output_dir: Path) -> None:
    """Write `cfg` as Hydra writes .hydra/config.yaml, hydra.yaml and overrides.yaml."""
    hydra.core.utils._save_config(cfg, filename, output_dir)
