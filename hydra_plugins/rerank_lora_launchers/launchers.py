"""hydra-submitit-launcher's SlurmLauncher and LocalLauncher, changed in three ways:

- Every cell is waited for, and a cell that fails outside Python (SLURM cancelled it, it ran out of memory or
  out of requeues after timeouts, its node failed, its process was killed) is a failed cell like any other:
  its status.json says {"status": "failed", "error": "SLURM job <id>: <state>"}, and the launcher returns
  normally, so that the sweep summary (rerank_lora.hydra_callbacks.SweepSummary) is written and the sweep exits non-zero
  with the count. The stock launcher raised at the first such job and left the others running unattended.
- The sweep folder is resolved once, in the sweep's process, and travels with each job: a job that submitit
  requeues after a timeout or preemption (it pickles this launcher again) runs in the same folder, where
  rerank_lora.run resumes it from its last trainer.ckpt.
- A SLURM job is over when slurmctld says so, not when sacct first does: accounting is written asynchronously
  (slurmdbd) and can show the run that SLURM has just requeued (preemption, or submitit's requeue at a timeout)
  as FAILED while the job waits to start again; submitit would keep that state for good and the cell would be
  reported failed while it reruns. sacct is trusted once slurmctld no longer knows the job (MinJobAge).

A data-parallel cell (trainer=ddp with tasks_per_node = trainer.devices > 1) is one SLURM job of several tasks,
each running the cell (Lightning takes their ranks from SLURM_PROCID): all of them in the cell's one folder, where
only task 0 writes .hydra/ and the job's files; task N logs to train_ddp_process_N.log there, as Lightning's own
DDP processes do. The cell's result is task 0's.
"""

import copy
import logging
import os
import re
import subprocess
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from hydra.core.hydra_config import HydraConfig
from hydra.core.singleton import Singleton
from hydra.core.utils import JobReturn, JobStatus, filter_overrides, run_job, setup_globals
from hydra_plugins.hydra_submitit_launcher import submitit_launcher as stock
from hydra_plugins.hydra_submitit_launcher.config import BaseQueueConf
from omegaconf import DictConfig, OmegaConf, open_dict, read_write
from submitit.slurm.slurm import SlurmJob

from hydra_plugins.rerank_lora_launchers import private_api
from rerank_lora.job_folder import COMPLETED, FAILED, JobFolder

log = logging.getLogger(__name__)
# SLURM states that say what happened; for others (FAILED, NODE_FAIL, ...) the error quotes the job's last stderr line
SELF_EXPLANATORY = ("CANCELLED", "TIMEOUT", "OUT_OF_MEMORY", "PREEMPTED", "DEADLINE")
# slurmctld's JobState of a job that is not over: a requeued job is COMPLETING its last run, then PENDING again
ALIVE = ("PENDING", "CONFIGURING", "RUNNING", "COMPLETING", "SUSPENDED", "RESIZING", "SIGNALING", "STAGE_OUT", "STOPPED")
ALIVE += ("REQUEUED", "REQUEUE_HOLD", "REQUEUE_FED", "PREEMPTED", "SPECIAL_EXIT", "RESV_DEL_HOLD", "UPDATE_DB")


class _ReportingLauncher(stock.BaseSubmititLauncher):
    # the sweep folder, absolute and resolved (${now:}, ${run_token:}) in the sweep's process; set by launch()
    sweep_dir: str | None = None

    def __call__(
        self,
        sweep_overrides: list[str],
        job_dir_key: str,
        job_num: int,
        job_id: str,
        singleton_state: dict[type, Singleton],
    ) -> JobReturn:
        """One cell, in the job's process (also when a requeued job runs it again)."""
        import submitit

        Singleton.set_state(singleton_state)
        setup_globals()
        environment = submitit.JobEnvironment()
        config = self._cell_config(sweep_overrides, job_num, environment.job_id)
        if environment.global_rank > 0:  # another task of a data-parallel cell: same folder, no .hydra/, own log
            with open_dict(config.hydra):
                config.hydra.output_subdir = None
                config.hydra.job.name = f"train_ddp_process_{environment.global_rank}"
        return run_job(
            hydra_context=self.hydra_context,
            task_function=self.task_function,
            config=config,
            job_dir_key=job_dir_key,
            job_subdir_key="hydra.sweep.subdir",
        )

    def _cell_config(self, overrides: Sequence[str], job_num: int, job_id: str) -> DictConfig:
        """The cell's config, as the stock launcher builds it, with the sweep folder pinned."""
        assert self.hydra_context is not None and self.config is not None
        config = self.hydra_context.config_loader.load_sweep_config(self.config, list(overrides))
        with open_dict(config.hydra):
            if self.sweep_dir is not None:
                config.hydra.sweep.dir = self.sweep_dir
            config.hydra.job.id = job_id
            config.hydra.job.num = job_num
        return config

    def launch(self, job_overrides: Sequence[Sequence[str]], initial_job_idx: int) -> Sequence[JobReturn]:
        import submitit

        assert self.config is not None
        assert len(job_overrides) > 0
        executor = self._executor()
        log.info(f"Submitit '{self._EXECUTOR}' sweep output dir : {self.config.hydra.sweep.dir}")
        sweep_dir = Path(str(self.config.hydra.sweep.dir))
        sweep_dir.mkdir(parents=True, exist_ok=True)
        if "mode" in self.config.hydra.sweep:
            os.chmod(sweep_dir, mode=int(str(self.config.hydra.sweep.mode), 8))
        self.sweep_dir = str(sweep_dir.absolute())  # before map_array pickles this launcher into every job

        job_params: list[Any] = []
        for idx, overrides in enumerate(job_overrides, start=initial_job_idx):
            log.info(f"\t#{idx} : {' '.join(filter_overrides(overrides))}")
            job_params.append((list(overrides), "hydra.sweep.dir", idx, f"job_id_for_{idx}", Singleton.get_state()))
        jobs = executor.map_array(self, *zip(*job_params))
        _wait_all(jobs, refresh_s=60 if self._EXECUTOR == "slurm" else None)  # every cell, also after one failed
        _grace_for_results(jobs)
        returns = []
        for job, (overrides, _, idx, _, _) in zip(jobs, job_params):
            try:
                ret = job.results()[0]  # one result per task: task 0's is the cell's
            except submitit.core.utils.UncompletedJobError:  # killed from outside: no result
                returns.append(self._failed_cell(job, overrides, idx, _state(job)))
                continue
            except submitit.core.utils.FailedJobError as err:  # an exception outside the task function
                returns.append(self._failed_cell(job, overrides, idx, f"{_state(job)}: {_last_line(err)}"))
                continue
            if ret.status == JobStatus.FAILED:  # an exception escaped the task function
                error = private_api.job_exception(ret)
                returns.append(self._failed_cell(job, overrides, idx, f"{type(error).__name__}: {error}"))
                continue
            returns.append(ret)
        return returns

    def _executor(self) -> Any:
        """submitit's executor with this launcher's parameters (as the stock launcher builds it)."""
        import submitit

        specific_init_keys = {"max_num_timeout"}
        init_params = {"folder": self.params["submitit_folder"]}
        init_params |= {f"{self._EXECUTOR}_{k}": v for k, v in self.params.items() if k in specific_init_keys}
        executor = submitit.AutoExecutor(cluster=self._EXECUTOR, **init_params)
        base = set(OmegaConf.structured(BaseQueueConf).keys())
        skip = specific_init_keys | {"submitit_folder"}
        executor.update_parameters(
            **{k if k in base else f"{self._EXECUTOR}_{k}": v for k, v in self.params.items() if k not in skip}
        )
        return executor

    def _failed_cell(self, job: Any, overrides: list[str], idx: int, what: str) -> JobReturn:
        """Record a cell whose job failed (status.json, and .hydra/ if it never started) and return it as
        finished: the sweep goes on to its summary, which counts it as failed. SLURM's `what` is sacct's
        State: "CANCELLED by <uid>", "TIMEOUT", "OUT_OF_MEMORY", "NODE_FAIL", "FAILED", ..."""
        label = "SLURM job" if self._EXECUTOR == "slurm" else f"{self._EXECUTOR} job"
        error = f"{label} {job.job_id}: {what}"
        config = self._cell_config(overrides, idx, job.job_id)
        out_dir, ret = self._record_cell(config)
        job_folder = JobFolder(out_dir)
        previous = job_folder.status()
        if previous["status"] == COMPLETED:  # every result was written before SLURM's verdict: keep it
            return ret
        if previous.get("error"):
            error += f"; the job reported: {previous['error']}"
        elif not what.startswith(SELF_EXPLANATORY) and (line := _last_stderr_line(job)):  # e.g. a segfault
            error += f"; its stderr ends: {line}"
        job_folder.write_status(FAILED, error)
        log.error(f"error: #{idx} {' '.join(filter_overrides(overrides))}: {error} (logs: {job.paths.folder})")
        return ret

    def _record_cell(self, config: DictConfig) -> tuple[Path, JobReturn]:
        """The cell's folder, as run_job names it; .hydra/ is written there if the job never got to it."""
        hydra_config = HydraConfig.instance()
        sweep_cfg = hydra_config.cfg
        try:
            hydra_config.set_config(config)
            out_dir = Path(str(config.hydra.sweep.dir), str(config.hydra.sweep.subdir)).absolute()
            with read_write(config.hydra.runtime), open_dict(config.hydra.runtime):
                config.hydra.runtime.output_dir = str(out_dir)
            hydra_config.set_config(config)
            task_cfg = copy.deepcopy(config)
            with read_write(task_cfg), open_dict(task_cfg):
                del task_cfg["hydra"]
            ret = JobReturn(
                overrides=OmegaConf.to_container(config.hydra.overrides.task),
                cfg=task_cfg,
                hydra_cfg=copy.deepcopy(hydra_config.cfg),
                working_dir=os.getcwd(),
                task_name=str(config.hydra.job.name),
                status=JobStatus.COMPLETED,  # recorded as failed in status.json; the summary counts it
            )
            out_dir.mkdir(parents=True, exist_ok=True)
            if config.hydra.output_subdir is not None:
                hydra_output = out_dir / str(config.hydra.output_subdir)
                if not (hydra_output / "overrides.yaml").exists():
                    private_api.save_config(task_cfg, "config.yaml", hydra_output)
                    private_api.save_config(ret.hydra_cfg, "hydra.yaml", hydra_output)
                    private_api.save_config(config.hydra.overrides.task, "overrides.yaml", hydra_output)
        finally:
            hydra_config.cfg = sweep_cfg
        return out_dir, ret


def _wait_all(jobs: list[Any], refresh_s: float | None) -> None:
    """Wait until every job is done. submitit's SLURM watcher asks sacct less often as the sweep ages (every
    10 minutes at most); asking at least every `refresh_s` notices a job killed from outside within a minute."""
    pending = list(jobs)
    while pending:
        watcher = pending[0].watcher
        if refresh_s is not None and private_api.seconds_since_status_check(watcher) > refresh_s:
            watcher.update()  # one sacct call for every job of the sweep
        pending = [job for job in pending if not _done(job)]
        if pending:
            time.sleep(1)


def _done(job: Any) -> bool:
    """job.done(), except for a SLURM job without a result file that slurmctld still runs or will run again
    (sacct showed the run it requeued): submitit's watcher is made to forget the finished state it cached."""
    if not job.done():
        return False
    if not isinstance(job, SlurmJob) or job.paths.result_pickle.exists():
        return True
    live = _slurmctld_view(job.job_id)
    if live is None or live[0] not in ALIVE:
        return True
    state, restarts = live
    log.info(
        f"SLURM job {job.job_id}: sacct says {job.watcher.get_state(job.job_id, mode='cache')}, slurmctld says "
        f"{state} after {restarts} restart(s): still waiting for it"
    )
    private_api.unfinish(job.watcher, job.job_id, state)
    return False


def _slurmctld_view(job_id: str) -> tuple[str, int] | None:
    """slurmctld's JobState and Restarts of a job (scontrol show job); None where slurmctld no longer knows it
    (MinJobAge after it ended: sacct is right by then) or cannot be asked."""
    try:
        shown = subprocess.run(["scontrol", "show", "job", "-o", job_id], capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.SubprocessError) as err:
        log.warning(f"SLURM job {job_id}: scontrol show job failed ({err}); going by sacct")
        return None
    state, restarts = re.search(r"\bJobState=(\S+)", shown.stdout), re.search(r"\bRestarts=(\d+)", shown.stdout)
    if shown.returncode != 0 or state is None:
        if "Invalid job id" not in shown.stderr:
            log.warning(f"SLURM job {job_id}: scontrol show job failed ({shown.stderr.strip()}); going by sacct")
        return None
    return state.group(1), int(restarts.group(1)) if restarts else 0


def _grace_for_results(jobs: list[Any], seconds: float = 15) -> None:
    """Once every job is done, give their result files `seconds` to appear (a slow shared file system), all
    together: submitit would wait that long for each job killed from outside, which never writes one."""
    deadline = time.monotonic() + seconds
    missing = [job for job in jobs if not job.paths.result_pickle.exists()]
    while missing and time.monotonic() < deadline:
        time.sleep(1)
        missing = [job for job in missing if not job.paths.result_pickle.exists()]
    for job in missing:
        private_api.stop_waiting_for_result(job)


def _state(job: Any) -> str:
    """SLURM: sacct's State. Local: submitit's FINISHED or INTERRUPTED, with the process's exit code."""
    state = str(job.state)
    returncode = private_api.process_returncode(job)
    return state if returncode is None else f"{state}, exit code {returncode}"


def _last_line(err: BaseException) -> str:
    """The exception line of the job's traceback in submitit's FailedJobError ("...trace:\n---\n<trace>\n---\n...")."""
    parts = str(err).split("----------------------\n")
    trace = parts[1] if len(parts) >= 3 else str(err)
    lines = [line.strip() for line in trace.splitlines() if line.strip()]
    return lines[-1] if lines else type(err).__name__


def _last_stderr_line(job: Any) -> str:
    try:
        lines = [line.strip() for line in job.paths.stderr.read_text(errors="replace").splitlines() if line.strip()]
    except OSError:
        return ""
    return lines[-1][:500] if lines else ""


class SlurmLauncher(_ReportingLauncher, stock.SlurmLauncher):
    _EXECUTOR = "slurm"


class LocalLauncher(_ReportingLauncher, stock.LocalLauncher):
    _EXECUTOR = "local"
