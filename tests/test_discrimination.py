"""The shipped discrimination split (label `discrim`, scripts/make_discrimination_split.py): what the script
regenerates, each query 1 judged positive (its highest grade) + 99 passages not judged relevant, reranked whole;
a job can score it and ablate can name it, the default job does not touch it."""

import dataclasses
import importlib.util
import json
from collections import Counter

import pytest

from conftest import MINI, ROOT, TINY, job_dirs, metrics_rows, run_in_process
from rerank_lora import ablate
from rerank_lora.analysis.trained_job import TrainedJob, with_later_splits
from rerank_lora.configs import compose_job, job_spec
from rerank_lora.data.collection import load_collection
from rerank_lora.data.spec import split_depth
from rerank_lora.data.train_sources import evaluation_queries
from rerank_lora.data.trec_files import read_corpus, read_qrels, read_queries, read_run
from rerank_lora.job_folder import JobFolder
from rerank_lora.tables import read_csv

SPLIT, SUFFIX = "discrim", "-discrim"
DEPTH = 20  # the tiny job's depth for the split


def script():
    spec = importlib.util.spec_from_file_location("make_discrimination_split", ROOT / "scripts" / "make_discrimination_split.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def shipped():
    queries, labels = read_queries(MINI / "queries.jsonl")
    return queries, labels, read_qrels(MINI / "qrels.tsv"), read_run(MINI / "candidates.tsv"), read_corpus(MINI / "corpus.jsonl")


def test_the_shipped_split_is_what_the_script_regenerates(monkeypatch):
    maker = script()
    made = maker.build(MINI)
    assert {name: (MINI / name).read_text() for name in made} == made
    # the equality is not vacuous: another seed draws other passages
    monkeypatch.setattr(maker, "SEED", maker.SEED + 1)
    assert maker.build(MINI)["candidates.tsv"] != made["candidates.tsv"]
    assert maker.build(MINI)["queries.jsonl"] == made["queries.jsonl"]


def test_every_query_has_one_judged_positive_and_99_passages_never_judged_relevant(shipped):
    queries, labels, qrels, run, corpus = shipped
    ours = [q for q, label in labels.items() if label == SPLIT]
    sources = [q for q, label in labels.items() if label in ("dev", "test")]
    assert sorted(ours) == sorted(q + SUFFIX for q in sources) and len(ours) == 43 + 54
    for qid in ours:
        source = qid.removesuffix(SUFFIX)
        assert queries[qid] == queries[source]
        candidates = run[qid]
        assert len(candidates) == 100 and set(candidates) <= corpus.keys()
        relevant = [p for p in candidates if qrels[source].get(p, 0) >= 1]
        assert len(relevant) == 1, qid
        assert qrels[qid] == {relevant[0]: qrels[source][relevant[0]]}  # the split's qrels: the positive, its grade
    # random order: the positive is not where the first stage puts it first
    ranks = Counter(sorted(run[q], key=run[q].get, reverse=True).index(next(iter(qrels[q]))) for q in ours)
    assert max(ranks.values()) < 10 and len(ranks) > 30
    # passages are drawn per query: no two queries share their 99
    assert len({frozenset(run[q]) for q in ours}) == len(ours)


def test_the_positive_is_the_highest_graded_passage_with_text(shipped):
    _, labels, qrels, _, corpus = shipped
    for qid in (q for q, label in labels.items() if label == SPLIT):
        source = qrels[qid.removesuffix(SUFFIX)]
        ((positive, grade),) = qrels[qid].items()
        best = max(rel for pid, rel in source.items() if pid in corpus)
        assert grade == best >= 1
        assert int(positive) == min(int(p) for p, rel in source.items() if rel == best and p in corpus)


def test_the_default_job_does_not_score_it_and_a_named_split_is_reranked_whole():
    spec = job_spec(compose_job([])).data
    assert spec.eval_splits == ["dev", "test"] and split_depth(spec, "dev") == 10 and split_depth(spec, SPLIT) == 100
    collection = load_collection(spec)
    assert not any(q.endswith(SUFFIX) for q in evaluation_queries(collection, spec))
    assert len(collection.split_queries("dev")) == 43 and len(collection.split_queries("test")) == 54
    # a job saved before data.splits held the split takes its entry from the data config as it is now
    old = dataclasses.replace(spec, splits={})
    assert split_depth(old, SPLIT) == 10 and split_depth(with_later_splits(old, [SPLIT]), SPLIT) == 100
    assert with_later_splits(old, ["dev"]) is old


@pytest.fixture(scope="module")
def discrim_job(tmp_path_factory):
    """A tiny job scoring only the discrimination split, at steps 0 and 2; to DEPTH, not the split's 100 (seconds on
    two cores), which still tells the split's own depth from data.eval_depth (10)."""
    cwd = tmp_path_factory.mktemp("discrim-job")
    args = [f"data.eval_splits=[{SPLIT}]", f"data.splits.{SPLIT}.depth={DEPTH}", "measures=[nDCG@10,RR@10,Margin]"]
    run_in_process([*TINY, "trainer.max_steps=2", *args], cwd)
    (job,) = job_dirs(cwd)
    return job


def test_a_tiny_job_evaluates_on_the_split(discrim_job):
    rows = metrics_rows(discrim_job)
    assert {r["split"] for r in rows} == {SPLIT}
    assert {r["step"] for r in rows if r["ranker"] == "model"} == {0, 2}
    written = read_run(JobFolder(discrim_job).run_file(SPLIT, 2))
    assert len(written) == 97 and all(len(scores) == DEPTH for scores in written.values())  # not eval_depth
    first = next(r for r in rows if r["ranker"] != "model")
    assert 0 <= first["nDCG@10"] < 0.3  # a random first stage: the positive is in its top 10 about one time in ten


def test_ablate_names_the_split(discrim_job):
    folder = JobFolder(discrim_job).checkpoint(2)
    written = ablate.ablate([f"checkpoint={discrim_job}", "ablation=layers", f"split={SPLIT}"])
    assert folder / "ablation-layers.csv" in written
    rows = {r["variant"]: r for r in read_csv(folder / "ablation-layers.csv")}
    assert {"all", "none", "drop-layer:0"} <= set(rows)
    assert {(r["split"], r["depth"], r["queries"]) for r in rows.values()} == {(SPLIT, DEPTH, 97)}
    reference = {r["split"]: r for r in metrics_rows(discrim_job) if r["step"] == 2 and r["ranker"] == "model"}
    assert rows["all"]["nDCG@10"] == pytest.approx(reference[SPLIT]["nDCG@10"], abs=1e-9)
    assert rows["all"]["Margin"] == pytest.approx(reference[SPLIT]["Margin"], abs=1e-5)
    assert 0 <= rows["none"]["p_nDCG@10"] <= 1
    per_query = [json.loads(line) for line in (folder / "ablation-layers.queries.jsonl").read_text().splitlines()]
    assert len(per_query) == len(rows) * 97
    _, labels = read_queries(MINI / "queries.jsonl")
    job = TrainedJob(folder, [SPLIT])
    assert job.data.first_stage[SPLIT].keys() == {q + SUFFIX for q, label in labels.items() if label in ("dev", "test")}
