"""One precision rule, tested on purpose on every CPU: bf16 autocast runs on any x86 CPU (emulated where the chip has
no bf16 instructions), so a tiny job trained in trainer.precision=bf16-mixed is made here whatever the machine. Its
scores are float32 (the head runs outside autocast: no ties made by bf16 rounding), its checkpoints record the
precision, and `rerank`, `ablate` and `probe` re-score it as it scored itself: its logged metrics come back exactly."""

import json

import pytest
import torch
from omegaconf import OmegaConf

from conftest import MINI, TINY, job_dirs, model_metrics, run_in_process, specs
from rerank_lora import ablate, probe, rerank
from rerank_lora.data.collection import load_collection
from rerank_lora.data.datamodule import RerankDataModule
from rerank_lora.data.trec_files import read_run
from rerank_lora.job_folder import INFO_FILE, JobFolder
from rerank_lora.model.backbone import load_backbone
from rerank_lora.model.reranker import Reranker
from rerank_lora.tables import read_csv

BF16 = [a for a in TINY if not a.startswith("trainer.precision")] + ["trainer.precision=bf16-mixed", "data.eval_depth=30"]


@pytest.fixture(scope="module")
def bf16_job(tmp_path_factory):
    cwd = tmp_path_factory.mktemp("bf16-job")
    run_in_process([*BF16, "schedule.final=true", "data.eval_splits=[dev]"], cwd)
    (job,) = job_dirs(cwd)
    return JobFolder(job)


def pair_inputs(job: JobFolder) -> dict[tuple[str, str], tuple[int, ...]]:
    """The token ids the job scored, by (qid, pid)."""
    model, data_spec, cfg = specs(cfg=OmegaConf.load(job.config_file))
    _, tokenizer = load_backbone(model)
    data = RerankDataModule(load_collection(data_spec), tokenizer, data_spec, cfg.seed, train=False)
    return {
        (q, p): tuple(ids[mask.bool()].tolist())
        for batch in data.eval_batches("dev")
        for q, p, ids, mask in zip(batch.qids, batch.pids, batch.inputs["input_ids"], batch.inputs["attention_mask"])
    }


def test_a_bf16_job_records_its_precision_and_writes_float32_scores(bf16_job):
    info = json.loads((bf16_job.checkpoint(4) / INFO_FILE).read_text())
    assert info["precision"] == "bf16-mixed"
    run = read_run(bf16_job.run_file("dev", 4))
    scores = [s for per_query in run.values() for s in per_query.values()]
    assert len(scores) == 43 * 30
    rounded = sum(torch.tensor(s).bfloat16().float().item() == s for s in scores)
    assert rounded < len(scores) * 0.01, f"{rounded} of {len(scores)} scores are bf16 values"
    inputs = pair_inputs(bf16_job)  # MS MARCO repeats some passages word for word (up to the cut): those tie
    for qid, per_query in run.items():
        assert len(set(per_query.values())) == len({inputs[qid, pid] for pid in per_query})


def test_the_head_stays_float32_under_bf16_autocast():
    head = torch.nn.Linear(64, 1, bias=False)
    states = torch.randn(8, 64)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        scores = Reranker.head_scores(type("HasHead", (), {"head": head})(), states)
        rounded = head(states).squeeze(-1)  # what the head gave under autocast before
    assert scores.dtype == torch.float32 and rounded.dtype == torch.bfloat16
    assert torch.equal(scores, head(states).squeeze(-1))


def test_rerank_reproduces_a_bf16_jobs_metrics_and_scores_exactly(bf16_job, tmp_path):
    result = rerank.rerank([
        f"checkpoint={bf16_job.checkpoint(4)}", f"run={bf16_job.run_file('dev', None)}",
        f"corpus={MINI / 'corpus.jsonl'}", f"queries={MINI / 'queries.jsonl'}", f"qrels={MINI / 'qrels.tsv'}",
        "depth=30", f"out={tmp_path / 'reranked.trec'}",
    ])
    logged = model_metrics(bf16_job.path)[("dev", 4)]
    assert result["reranked"] == {k: logged[k] for k in result["reranked"]}
    assert read_run(tmp_path / "reranked.trec") == read_run(bf16_job.run_file("dev", 4))


def test_ablate_all_and_the_probes_last_layer_reproduce_a_bf16_jobs_metrics(bf16_job):
    ablate.ablate([f"checkpoint={bf16_job.path}", "ablation=modules", "split=dev"])
    rows = {r["variant"]: r for r in read_csv(bf16_job.checkpoint(4) / "ablation-modules.csv")}
    logged = model_metrics(bf16_job.path)[("dev", 4)]
    assert rows["all"]["nDCG@10"] == logged["nDCG@10"] and rows["all"]["RR(rel=2)@10"] == logged["RR(rel=2)@10"]
    probe.probe([f"checkpoint={bf16_job.checkpoint(4)}", "split=dev"])
    head = [r for r in read_csv(bf16_job.checkpoint(4) / "probe.csv") if r["probe"] == "head"]
    last = max(head, key=lambda r: r["layer"])
    assert last["nDCG@10"] == pytest.approx(logged["nDCG@10"], abs=1e-9)
