"""Tests that would notice a reranker learning the wrong thing: `training_step`'s loss against a softmax
cross-entropy computed by hand with the positive first in each group, and a tiny model trained through the real
entry point on a synthetic task (the positive holds the query's rare words) ranking held-out positives first."""


import pytest
import torch
from synthetic import write_synthetic

from conftest import job_of, run_in_process
from rerank_lora.data.pairs import pad
from rerank_lora.data.trec_files import read_qrels, read_run, top_k
from rerank_lora.job.builders import build_data, build_reranker
from rerank_lora.job_folder import JobFolder

CANDIDATES = 10  # a held-out query's positive among 9 negatives: chance puts it first 1 time in 10


def hand_cross_entropy(scores: torch.Tensor, target: int) -> torch.Tensor:
    """The mean over groups (rows) of -log softmax(scores)[target], written out."""
    log_partition = scores.exp().sum(dim=1).log()
    return (log_partition - scores[:, target]).mean()


def test_the_training_loss_is_cross_entropy_with_the_positive_first(tmp_path):
    job = job_of(["model=tiny_llama", *write_synthetic(tmp_path / "data", train=8, test=2), "data.queries_per_batch=3"])
    spec = job.data
    reranker, tokenizer = build_reranker(job)
    reranker.eval()  # no dropout: training_step and forward then compute the same function
    data = build_data(job.data, job.seed, tokenizer)
    batch = pad([pair for k in range(spec.queries_per_batch) for pair in data.train_set.group(k)], data.pad_id)
    with torch.no_grad():
        loss = reranker.training_step(batch, 0)
        scores = reranker(batch["input_ids"], batch["attention_mask"]).view(-1, spec.group_size)
    assert scores.shape == (3, 4)
    assert loss.item() == pytest.approx(hand_cross_entropy(scores, 0).item(), abs=1e-5)
    for elsewhere in range(1, spec.group_size):  # the test tells the positive's index from any other
        assert abs(loss.item() - hand_cross_entropy(scores, elsewhere).item()) > 1e-3


def accuracy_at_1(job: JobFolder, split: str, step: int) -> float:
    """The share of the split's queries whose top-ranked passage is relevant, from the job's run file."""
    qrels, firsts = read_qrels(job.qrels_file(split)), top_k(read_run(job.run_file(split, step)), 1)
    return sum(qrels[q].get(next(iter(ranked)), 0) > 0 for q, ranked in firsts.items()) / len(firsts)


def test_a_tiny_model_learns_to_rank_the_passage_holding_the_querys_rare_words(tmp_path):
    data = write_synthetic(tmp_path / "data", train=200, test=40, candidates=CANDIDATES)
    steps = 400  # 4 passes over the 200 training queries; ~13 s on one thread
    args = ["model=tiny_llama", "logger=csv", "trainer.precision=32-true", "schedule=final", f"trainer.max_steps={steps}",
            *data, "data.eval_splits=[test]", f"data.eval_depth={CANDIDATES}", "hydra.run.dir=job"]
    run_in_process(args, tmp_path)
    job, chance = JobFolder(tmp_path / "job"), 1 / CANDIDATES
    trained, untrained = accuracy_at_1(job, "test", steps), accuracy_at_1(job, "test", 0)
    assert trained > 3 * chance and trained > untrained + 0.3, (untrained, trained)  # measured: 0.2 -> 0.8
    final = {r["split"]: r for r in job.metrics() if r["step"] == steps and r["ranker"] == "model"}
    chance_rr = sum(1 / rank for rank in range(1, CANDIDATES + 1)) / CANDIDATES  # 0.293
    assert final["test"]["RR@10"] > 2 * chance_rr  # measured: 0.89
