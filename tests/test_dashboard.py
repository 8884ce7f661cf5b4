"""The sweep dashboard on a tiny 2 x 2 grid (rank 1, 2 x attention, MLP LoRA; dev evaluated at every checkpoint,
test held out) logged to W&B offline, with ablations, probes, attention features and adapter statistics: the
workspace and report specs load back with wandb-workspaces, and every key a panel names is in the sweep's runs as
wandb's own reader (`wandb leet inspect --json`) reads them, where every metrics.jsonl row is logged at its step."""

import json
import shutil
import sys

import pytest
import wandb
from omegaconf import OmegaConf

from conftest import ONE_THREAD, TINY, job_dirs, metrics_rows, run_module
from rerank_lora import ablate, adapter_stats, attention, dashboard, probe
from rerank_lora.dashboards import keys, spec
from rerank_lora.dashboards.logged_runs import LoggedRun, job_runs, read_run
from rerank_lora.evaluation.selection import chosen_step

WANDB_TINY = [a for a in TINY if not a.startswith("logger")] + ["logger=wandb"]
HELD_OUT = ["data.eval_splits=[dev]", "data.held_out_splits=[test]"]
MEASURES = ("nDCG@10", "RR(rel=2)@10")


@pytest.fixture(scope="module")
def sweep(tmp_path_factory):
    cwd = tmp_path_factory.mktemp("wandb-sweep")
    args = ["-m", *WANDB_TINY, *HELD_OUT, "lora.rank=1,2", "targets=attn,mlp", "hydra.sweep.dir=outputs/grid"]
    result = run_module("rerank_lora.run", args, cwd, ONE_THREAD)
    assert result.returncode == 0, result.stderr[-3000:]
    jobs = job_dirs(cwd)
    assert len(jobs) == 4
    ablate.ablate([f"checkpoint={jobs[0]}", "ablation=[modules,layers]"])  # logger=job: W&B, as the job
    probe.probe([f"checkpoint={jobs[0]}"])
    attention.attention([f"checkpoint={jobs[2]}", "queries=3"])
    adapter_stats.adapter_stats([f"checkpoint={jobs[1]}"])
    return jobs[0].parent


@pytest.fixture(scope="module")
def made(sweep):
    written = dashboard.dashboard([f"sweep={sweep}", "save=false"])
    assert written == [sweep / spec.WORKSPACE_FILE, sweep / spec.REPORT_FILE]
    return written


@pytest.fixture(scope="module")
def runs(sweep) -> dict:
    """Every job's W&B runs as wandb reads them, by job folder."""
    return {job: job_runs(job) for job in job_dirs(sweep.parent.parent)}


def model_run(job_runs_of_job: list[LoggedRun]) -> LoggedRun:
    (found,) = [r for r in job_runs_of_job if not r.job_type]  # the job's own run; table runs have a job_type
    return found


def without_layout(node):
    """A spec without the panels' grid positions, which the library places anew on each serialisation."""
    if isinstance(node, dict):
        return {k: without_layout(v) for k, v in node.items() if k != "layout"}
    return [without_layout(v) for v in node] if isinstance(node, list) else node


def test_the_specs_load_back_with_wandb_workspaces(made):
    workspace_file, report_file = made
    workspace = spec.load_workspace(workspace_file)
    again = json.loads(spec.workspace_json(workspace))
    assert without_layout(again) == without_layout(json.loads(workspace_file.read_text()))  # nothing lost
    report = spec.load_report(report_file)
    assert without_layout(json.loads(spec.report_json(report))) == without_layout(json.loads(report_file.read_text()))
    sections = {s.name: s for s in workspace.sections}
    assert {"Learning curves on dev", "Learning curves on test"} <= set(sections)
    tables = {p.table_name for s in workspace.sections for p in s.panels if hasattr(p, "table_name")}
    assert tables == {"ablation-modules", "ablation-layers", "probe", "attention", "adapter-stats"}
    curves = [p for p in sections["Learning curves on test"].panels]
    assert [p.y[1].name for p in curves] == [keys.first_stage("test", m) for m in MEASURES]
    assert "'grid'" in str(workspace.runset_settings.filters)


def test_every_key_a_panel_names_is_in_the_runs_as_wandb_reads_them(made, runs):
    everything = [run for found in runs.values() for run in found]
    assert {run.group for run in everything} == {"grid"}  # the workspace's filter holds every run
    logged = {("history", k) for run in everything for row in run.history for k in row}
    logged |= {("summary", k) for run in everything for k in run.summary}
    logged |= {("summary", k.split(".")[0]) for run in everything for k in run.summary if "._type" in k}  # a Table
    for kind, key in spec.workspace_keys(spec.load_workspace(made[0])):
        if kind == "config":
            assert all(key in run.config for run in everything), key  # job and table runs alike
        else:
            assert (kind, key) in logged, (kind, key)
    tags = {tag.split("=")[0] for run in everything for tag in run.tags}
    assert all(len(run.tags) == 5 for run in everything) and tags == {"model", "rank", "targets", "schedule", "data"}


def missing_rows(rows: list[dict], run: LoggedRun) -> list[dict]:
    """The metrics.jsonl rows not logged at their step: a model row as `<split>/<measure>` at
    `trainer/global_step` = its step, a first-stage row as `<split>/first-stage/<measure>`."""
    missing = []
    for row in rows:
        for m in MEASURES:
            if row["ranker"] == "model":
                found = (row["step"], row[m]) in run.values_at(keys.metric(row["split"], m), keys.STEP_AXIS)
            else:
                found = any(v == row[m] for _, v in run.values_at(keys.first_stage(row["split"], m), keys.STEP_AXIS))
            if not found:
                missing.append(row)
                break
    return missing


def test_every_metrics_row_is_logged_at_its_step(runs):
    for job, found in runs.items():
        run, rows = model_run(found), metrics_rows(job)
        chosen = chosen_step(rows, "dev", "nDCG@10")
        assert len(rows) == 2 + 2 + len({0, chosen})  # first stage; dev at 0 and 2; test at 0 and the chosen step
        assert not missing_rows(rows, run)
        held_out = [r for r in rows if r["split"] == "test" and r["step"] == chosen]
        assert run.summary[keys.metric("test", "nDCG@10")] == held_out[0]["nDCG@10"]  # the dashboard's value


def test_a_row_logged_at_the_wrong_step_fails_the_check(runs, tmp_path):
    job = next(iter(runs))
    rows = metrics_rows(job)
    model_rows = [r for r in rows if r["ranker"] == "model"]
    run = wandb.init(project="broken", mode="offline", dir=str(tmp_path), reinit="create_new")
    run.define_metric("*", step_metric=keys.STEP_AXIS)
    for k, row in enumerate(model_rows):
        step = row["step"] + (1 if k == 0 else 0)  # the first row one step late
        run.log({keys.STEP_AXIS: step} | {keys.metric(row["split"], m): row[m] for m in MEASURES})
    run.finish()
    (path,) = tmp_path.glob("wandb/offline-run-*/run-*.wandb")
    broken = read_run(path)
    assert missing_rows(model_rows, broken) == [model_rows[0]]
    assert missing_rows(model_rows[1:], broken) == []


@pytest.mark.parametrize("case,phrase", [("empty", "no job folders"), ("csv", "did not log to W&B")])
def test_bad_input_is_one_error_line(case, phrase, sweep, monkeypatch, tmp_path):
    target = tmp_path / "sweep"
    target.mkdir()
    if case == "csv":  # a sweep logged with logger=csv: its job's config says so
        job = target / "0_job"
        shutil.copytree(next(p for p in sweep.iterdir() if p.is_dir()), job, ignore=shutil.ignore_patterns("wandb"))
        config = OmegaConf.load(job / ".hydra" / "config.yaml")
        config.logger = {"_target_": "lightning.pytorch.loggers.CSVLogger", "name": "csv"}
        OmegaConf.save(config, job / ".hydra" / "config.yaml")
    monkeypatch.setattr(sys, "argv", ["dashboard", f"sweep={target}"])
    with pytest.raises(SystemExit) as exit_info:
        dashboard.main()
    message = str(exit_info.value.code)
    assert message.startswith("error: ") and phrase in message and "\n" not in message
