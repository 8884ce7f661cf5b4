"""Data hygiene of data=trec: a training query that an evaluation split reranks is refused unless
data.allow_eval_queries_in_training (and then the end-of-job table says so), and BM25-mined negatives are never a
passage that an evaluation split reranks."""

import dataclasses

import pytest
from synthetic import write_synthetic

from conftest import run_in_process, specs
from rerank_lora.data.collection import load_collection
from rerank_lora.data.in_memory import Collection
from rerank_lora.data.spec import DataSpec
from rerank_lora.data.train_sources import CollectionPairs, evaluation_passages
from rerank_lora.errors import InputError
from rerank_lora.job_folder import JobFolder

TABLE_LINE = "data.allow_eval_queries_in_training=true: training may include evaluation queries"


def synthetic_spec(folder) -> DataSpec:
    """10 training queries and 5 test queries, 3 of which have a training triple too."""
    return specs(["model=tiny_llama", *write_synthetic(folder, train=10, test=5, trained_test=3)])[1]


@pytest.mark.parametrize("splits", [{"eval_splits": ["test"]}, {"eval_splits": ["dev"], "held_out_splits": ["test"]}])
def test_training_queries_that_are_evaluation_queries_are_refused_naming_them(tmp_path, splits):
    spec = dataclasses.replace(synthetic_spec(tmp_path), **splits)
    with pytest.raises(InputError, match=r"^3 of 13 training queries are also evaluation queries \(reranked in .*test\)"
                                         r": test0, test1, test2; .*data\.allow_eval_queries_in_training=true"):
        CollectionPairs(load_collection(spec), spec)
    allowed = CollectionPairs(load_collection(spec), dataclasses.replace(spec, allow_eval_queries_in_training=True))
    assert len(allowed) == 13


def test_disjoint_training_and_evaluation_queries_pass(tmp_path):
    _, spec, _ = specs(["model=tiny_llama", *write_synthetic(tmp_path, train=10, test=5)])
    assert len(CollectionPairs(load_collection(spec), spec)) == 10


def test_the_shipped_training_queries_are_not_evaluation_queries():
    _, spec, _ = specs([])
    assert len(CollectionPairs(load_collection(spec), spec)) == 994  # refused otherwise


def test_a_job_refuses_the_overlap_and_with_the_option_says_so_under_its_table(tmp_path):
    job = ["model=tiny_llama", "logger=csv", "trainer.precision=32-true", "trainer.max_steps=1", "schedule=final"]
    tiny = [*job, *write_synthetic(tmp_path / "data", train=10, test=5, trained_test=3)]
    with pytest.raises(SystemExit, match=r"error: 3 of 13 training queries are also evaluation queries"):
        run_in_process([*tiny, "hydra.run.dir=refused"], tmp_path)
    assert JobFolder(tmp_path / "refused").status()["status"] == "failed"
    printed = run_in_process([*tiny, "data.allow_eval_queries_in_training=true", "hydra.run.dir=allowed"], tmp_path)
    assert TABLE_LINE in printed and printed.index(TABLE_LINE) > printed.index("split    ranker")
    clean = [*job, *write_synthetic(tmp_path / "clean", train=10, test=5), "hydra.run.dir=clean"]
    assert TABLE_LINE not in run_in_process(clean, tmp_path)


def bm25_collection() -> Collection:
    """Passages `eval` and `c` are training positives and candidates of the test query; BM25 ranks `eval` first for
    t1."""
    corpus = {"eval": "aardvark burrow", "a": "aardvark eats ants", "b": "aardvark den here", "c": "cats", "d": "dogs"}
    queries = {"t1": "aardvark burrow", "t2": "burrow", "t3": "aardvark", "t4": "ants", "q": "where is a burrow"}
    splits = dict.fromkeys(["t1", "t2", "t3", "t4"], "train") | {"q": "test"}
    return Collection(corpus=corpus, queries=queries, query_splits=splits, qrels={"q": {"eval": 1}},
                      candidates={"q": {"eval": 2.0, "c": 1.0}},
                      triples=[("t1", "c", "d"), ("t2", "eval", "a"), ("t3", "b", "c"), ("t4", "a", "d")])


def test_bm25_negatives_are_never_an_evaluation_passage_and_keep_their_number():
    spec = DataSpec(negatives=["bm25"], bm25_negatives_depth=2, eval_splits=["test"])
    collection = bm25_collection()
    evaluated = evaluation_passages(collection, spec)
    assert evaluated == {"eval", "c"}
    pairs = CollectionPairs(collection, spec)
    negatives = {qid: pairs.negatives[qid] for qid in pairs.qids}
    assert negatives["t1"] == ["a", "b"]  # "eval" and "c" left out: the next best instead
    assert all(not set(found) & evaluated for found in negatives.values())
    unevaluated = CollectionPairs(collection, dataclasses.replace(spec, eval_splits=["dev"]))  # no dev queries
    assert "eval" in unevaluated.negatives["t1"]  # the check above would see a leak


def test_the_shipped_bm25_negatives_leave_out_the_two_evaluation_passages_of_the_pool():
    _, spec, _ = specs([])  # the default job's negatives: each query's triples negative and BM25's top 10
    collection = load_collection(spec)
    pairs, evaluated = CollectionPairs(collection, spec), evaluation_passages(collection, spec)
    assert set(pairs.pool) & evaluated == {"3930532", "5162624"}  # triples passages that are also DL19/DL20 candidates
    of_triples = {(qid, negative) for qid, _, negative in collection.triples}
    leaked = {(qid, pid) for qid in pairs.qids for pid in pairs.negatives.get(qid, []) if pid in evaluated}
    assert leaked <= of_triples  # only a triple's own negative (3 queries share 3930532), never a mined one
