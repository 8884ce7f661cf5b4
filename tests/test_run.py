"""The Hydra entry point end to end on tiny models: train, checkpoint, evaluate, log, reload, multirun."""

import csv
import json

import pytest
import torch
from omegaconf import OmegaConf

from conftest import TINY, job_dirs, job_of, metrics_rows, run_in_process, specs
from rerank_lora.data.collection import load_collection
from rerank_lora.data.datamodule import RerankDataModule
from rerank_lora.data.trec_files import read_run
from rerank_lora.evaluation.evaluator import score
from rerank_lora.job_folder import JobFolder
from rerank_lora.model.backbone import load_backbone
from rerank_lora.model.lora import LoraSpec, add_lora, target_modules
from rerank_lora.model.reranker import Reranker
from rerank_lora.run import RunContext, train_and_evaluate


@pytest.fixture(scope="module")
def tiny_job(tmp_path_factory):
    """One tiny-llama job: 4 steps, checkpoints at 0, 2 and 4 (final), W&B offline."""
    cwd = tmp_path_factory.mktemp("job")
    args = [a for a in TINY if not a.startswith("logger")] + ["schedule.final=true", "logger=wandb"]
    printed = run_in_process(args, cwd)
    (job,) = job_dirs(cwd)
    return job, printed


def test_job_writes_the_output_contract(tiny_job):
    job, printed = tiny_job
    assert json.loads((job / "status.json").read_text())["status"] == "completed"
    assert OmegaConf.load(job / ".hydra" / "config.yaml").model.name == "tiny_llama"
    rows = metrics_rows(job)
    model_rows = {(r["split"], r["step"]) for r in rows if r["ranker"] == "model"}
    assert model_rows == {(s, n) for s in ("dev", "test") for n in (0, 2, 4)}
    baseline = [r for r in rows if r["ranker"] == "first-stage"]
    assert {r["split"] for r in baseline} == {"dev", "test"} and all(r["step"] is None for r in baseline)
    # at depth 10, the first-stage nDCG@10 is BM25's published figure
    assert {r["split"]: round(r["nDCG@10"], 4) for r in baseline} == {"dev": 0.5058, "test": 0.4796}
    for row in rows:
        assert 0.0 <= row["nDCG@10"] <= 1.0 and 0.0 <= row["RR(rel=2)@10"] <= 1.0
    for split in ("dev", "test"):
        for step in (0, 2, 4):
            run = read_run(job / "runs" / f"{split}-step{step}.trec")
            assert len(run) == {"dev": 43, "test": 54}[split] and all(len(s) == 10 for s in run.values())
            assert (job / "checkpoints" / f"step-{step}" / "adapter_model.safetensors").is_file()
    assert str(job) in printed  # says where the results are


def test_the_printed_table_carries_paired_p_values_against_step_0_and_the_first_stage(tiny_job):
    from rerank_lora.data.trec_files import read_qrels
    from rerank_lora.evaluation.significance import paired_t, per_query

    job, printed = tiny_job
    assert "p(step0)" in printed and "p(first)" in printed
    qrels = read_qrels(job / "runs" / "dev.qrels")
    assert len(qrels) == 43  # the judgments of the reranked DL19 queries, beside the runs
    step4, step0 = (per_query(qrels, read_run(job / "runs" / f"dev-step{n}.trec"), ["nDCG@10"])["nDCG@10"] for n in (4, 0))
    first = per_query(qrels, read_run(job / "runs" / "dev-first-stage.trec"), ["nDCG@10"])["nDCG@10"]
    (line,) = [row for row in printed.splitlines() if row.split()[:3] == ["dev", "model", "4"]]
    assert line.split()[4:6] == [f"{paired_t(step4, step0)[1]:.3f}", f"{paired_t(step4, first)[1]:.3f}"]
    (line,) = [row for row in printed.splitlines() if row.split()[:3] == ["dev", "model", "0"]]
    assert line.split()[4] == f"{paired_t(step0, first)[1]:.3f}"  # step 0: only its p against the first stage


def test_the_pooled_rows_average_and_test_over_every_splits_queries(tiny_job):
    from rerank_lora.data.trec_files import read_qrels
    from rerank_lora.evaluation.significance import paired_t, per_query

    job, printed = tiny_job
    values = {}
    for step in (4, 0):
        for split in ("dev", "test"):
            qrels = read_qrels(job / "runs" / f"{split}.qrels")
            found = per_query(qrels, read_run(job / "runs" / f"{split}-step{step}.trec"), ["nDCG@10"])["nDCG@10"]
            values.setdefault(step, {}).update({f"{split}:{q}": v for q, v in found.items()})
    assert len(values[4]) == 43 + 54
    (line,) = [row for row in printed.splitlines() if row.split()[:3] == ["dev+test", "model", "4"]]
    assert line.split()[3] == f"{sum(values[4].values()) / 97:.4f}"
    assert line.split()[4] == f"{paired_t(values[4], values[0])[1]:.3f}"


def test_wandb_offline_run_with_config_and_metrics(tiny_job):
    job, _ = tiny_job
    (run_dir,) = list((job / "wandb").glob("offline-run-*"))  # one run per job, offline
    records = (run_dir / f"run-{run_dir.name.split('-')[-1]}.wandb").read_bytes()
    assert b"tiny_llama" in records and b"eval_depth" in records  # the resolved config
    assert b"dev/nDCG@10" in records and b"dev/first-stage/nDCG@10" in records
    assert b"model=tiny_llama" in records  # a tag to filter the grid by


def test_reloaded_checkpoint_gives_identical_scores(tiny_job):
    job, _ = tiny_job
    model, data_spec, cfg = specs(cfg=OmegaConf.load(job / ".hydra" / "config.yaml"))
    base, tokenizer = load_backbone(model)
    reranker = Reranker.load(job / "checkpoints" / "step-4", base)
    data = RerankDataModule(load_collection(data_spec), tokenizer, data_spec, cfg.seed)
    rescored = score(reranker, data.eval_batches("dev"))
    written = read_run(job / "runs" / "dev-step4.trec")
    pairs = [(q, p) for q in written for p in written[q]]
    assert torch.allclose(
        torch.tensor([rescored[q][p] for q, p in pairs]), torch.tensor([written[q][p] for q, p in pairs]), atol=1e-5
    )
    # the adapter really was trained: step 0 and step 4 score differently
    first = read_run(job / "runs" / "dev-step0.trec")
    assert any(abs(first[q][p] - written[q][p]) > 1e-4 for q, p in pairs)


def test_the_job_function_on_a_spec_writes_what_the_entry_point_wrote(tiny_job, tmp_path):
    """The same seed, called as a function with the job's spec (no Hydra, no logger): the same metrics, and
    byte for byte the same run files and checkpoint files as the job run through `python -m rerank_lora.run`."""
    job, _ = tiny_job
    args = [a for a in TINY if not a.startswith("logger")] + ["schedule.final=true"]
    (tmp_path / "direct").mkdir()
    direct = JobFolder(tmp_path / "direct")
    train_and_evaluate(job_of(args), direct, RunContext())
    assert metrics_rows(direct.path) == metrics_rows(job)
    written = sorted(p.relative_to(job) for p in [*job.glob("runs/*.trec"), *job.glob("checkpoints/*/*")]
                     if p.name != "trainer.ckpt")  # Lightning's state holds the loggers' own entries
    assert len(written) >= 3 * 4 and (direct.path / "checkpoints" / "step-4" / "head.safetensors").is_file()
    for path in written:
        assert (direct.path / path).read_bytes() == (job / path).read_bytes(), path


def test_multirun_of_four_jobs_gets_four_folders_and_a_summary(run, tmp_path):
    args = ["-m", *TINY, "model=tiny_llama,tiny_mistral", "lora.rank=1,2"]
    result = run("rerank_lora.run", args)
    assert result.returncode == 0, result.stderr[-3000:]
    jobs = job_dirs(tmp_path)
    assert len(jobs) == 4 and len({j.name for j in jobs}) == 4
    assert all(json.loads((j / "status.json").read_text())["status"] == "completed" for j in jobs)
    (summary,) = list(tmp_path.glob("outputs/multirun/*/summary.csv"))
    rows = list(csv.DictReader(summary.open()))
    # per job: 2 splits x (first-stage + steps 0 and 2)
    assert len(rows) == 4 * 2 * 3
    assert {r["overrides"] for r in rows} == {
        f"model={m} lora.rank={r}" for m in ("tiny_llama", "tiny_mistral") for r in (1, 2)
    } or len({r["job"] for r in rows}) == 4
    assert "sweep summary" in result.stdout


def test_two_runs_in_the_same_second_never_share_a_folder(tmp_path):
    import subprocess
    import sys

    # two processes composing the run dir at once: the per-process token keeps them apart
    code = (
        "from hydra import compose, initialize_config_dir; from rerank_lora.configs import CONF_DIR;"
        "from omegaconf import OmegaConf\n"
        "with initialize_config_dir(str(CONF_DIR), version_base=None):\n"
        "    cfg = compose('config', return_hydra_config=True)\n"
        "print(OmegaConf.select(cfg, 'hydra.run.dir').split('_')[-1])"
    )
    procs = [subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True) for _ in range(2)]
    tokens = {p.communicate()[0].strip() for p in procs}
    assert len(tokens) == 2


@pytest.mark.parametrize("model", ["tiny_llama", "tiny_mistral", "tiny_pythia"])
@pytest.mark.parametrize("targets", ["attn", "mlp", "all"])
def test_every_family_and_target_group_adapts_the_named_projections(model, targets):
    spec, _, cfg = specs([f"model={model}", f"targets={targets}", "lora.layers=[1]"])
    backbone, _ = load_backbone(spec)
    peft_model = add_lora(backbone, LoraSpec(layers=[1]), target_modules(targets, spec.modules))
    adapted = {n.split(".lora_A")[0] for n, _ in peft_model.named_parameters() if ".lora_A" in n}
    expected = list(cfg.model.modules.attn) * (targets != "mlp") + list(cfg.model.modules.mlp) * (targets != "attn")
    assert {a.split(".")[-1] for a in adapted} == set(expected)
    assert all(".layers.1." in a for a in adapted)  # lora.layers=[1]: nothing on layer 0


def test_gpu_trainer_settings_train_on_cpu(run, tmp_path):
    """trainer=gpu's bf16-mixed autocast, gradient checkpointing and SDPA, run for real with accelerator=cpu."""
    result = run("rerank_lora.run", [*TINY, "trainer=gpu", "trainer.accelerator=cpu", "trainer.max_steps=4"])
    assert result.returncode == 0, result.stderr[-3000:]
    (job,) = job_dirs(tmp_path)
    assert {r["step"] for r in metrics_rows(job) if r["ranker"] == "model"} == {0, 2}


def test_held_out_splits_are_scored_at_step_0_and_the_checkpoint_chosen_on_dev(tiny_job, tmp_path):
    """The same job with test held out: dev at every checkpoint; test only at step 0 and at dev's best checkpoint,
    scored exactly as the job that evaluates test at every checkpoint scored it there."""
    job, _ = tiny_job
    args = [a for a in TINY if not a.startswith("logger")] + ["schedule.final=true", "logger=csv"]
    printed = run_in_process([*args, "data.eval_splits=[dev]", "data.held_out_splits=[test]"], tmp_path)
    (held,) = job_dirs(tmp_path)
    dev = {r["step"]: r["nDCG@10"] for r in metrics_rows(held) if r["split"] == "dev" and r["ranker"] == "model"}
    best = max(sorted(dev), key=lambda step: dev[step])  # the earliest on a tie
    tested = {r["step"] for r in metrics_rows(held) if r["split"] == "test" and r["ranker"] == "model"}
    assert set(dev) == {0, 2, 4} and tested == {0, best}
    for step in tested:
        scores = [{(q, p): s for q, run in read_run(folder / "runs" / f"test-step{step}.trec").items() for p, s in run.items()}
                  for folder in (held, job)]
        assert scores[0] == pytest.approx(scores[1], rel=1e-5, abs=1e-6)
    assert f"checkpoint chosen on dev by nDCG@10: step {best}" in printed
    test_rows = [line.split()[2] for line in printed.splitlines() if line.split()[:2] == ["test", "model"]]
    assert test_rows == [str(step) for step in sorted(tested)]
