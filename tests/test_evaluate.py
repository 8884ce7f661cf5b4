"""ir_measures on the shipped BM25 candidates reproduces the published TREC DL figures exactly."""

import pytest

from conftest import MINI
from rerank_lora.data.trec_files import read_queries, read_run, write_run


@pytest.fixture(scope="module")
def split_runs(tmp_path_factory):
    folder = tmp_path_factory.mktemp("bm25")
    _, splits = read_queries(MINI / "queries.jsonl")
    candidates = read_run(MINI / "candidates.tsv")
    paths = {}
    for split in ("dev", "test"):
        paths[split] = folder / f"{split}.trec"
        write_run({q: s for q, s in candidates.items() if splits[q] == split}, paths[split], "bm25")
    return paths


@pytest.mark.parametrize("split,ndcg,rr", [("dev", 0.5058, 0.7024), ("test", 0.4796, 0.6533)])
def test_bm25_reproduces_published_dl19_dl20(run, split_runs, split, ndcg, rr):
    import json

    result = run("rerank_lora.evaluate", [f"run={split_runs[split]}", f"qrels={MINI / 'qrels.tsv'}"])
    assert result.returncode == 0, result.stderr
    values = json.loads(result.stdout)
    assert round(values["nDCG@10"], 4) == ndcg
    assert round(values["RR(rel=2)@10"], 4) == rr


def test_evaluate_takes_measures_and_rejects_unknown_ones(run, split_runs):
    import json

    ok = run("rerank_lora.evaluate", [f"run={split_runs['dev']}", f"qrels={MINI / 'qrels.tsv'}", "measures=[nDCG@5,P(rel=2)@10]"])
    assert ok.returncode == 0, ok.stderr
    assert set(json.loads(ok.stdout)) == {"nDCG@5", "P(rel=2)@10"}
    bad = run("rerank_lora.evaluate", [f"run={split_runs['dev']}", f"qrels={MINI / 'qrels.tsv'}", "measures=[nDGC@10]"])
    assert bad.returncode != 0 and "nDGC@10" in bad.stderr and "ir_measures" in bad.stderr


def test_evaluate_names_bad_arguments_and_files(run, tmp_path):
    missing = run("rerank_lora.evaluate", [f"run={tmp_path / 'nope.trec'}", f"qrels={MINI / 'qrels.tsv'}"])
    assert missing.returncode != 0 and "nope.trec" in missing.stderr
    unknown = run("rerank_lora.evaluate", ["runs=x", "qrels=y"])
    assert unknown.returncode != 0 and "runs" in unknown.stderr and "accepted" in unknown.stderr
    broken = tmp_path / "broken.trec"
    broken.write_text("q1 Q0 d1 1 3.0 tag\nq1 Q0 d2 two\n")
    result = run("rerank_lora.evaluate", [f"run={broken}", f"qrels={MINI / 'qrels.tsv'}"])
    assert result.returncode != 0 and "broken.trec:2" in result.stderr
