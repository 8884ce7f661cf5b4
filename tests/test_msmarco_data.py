"""data=msmarco against tiny local files in the upstream layouts: Tevatron's msmarco-passage-aug rows (JSONL and
parquet) and an ir_datasets home holding MS MARCO's own files where ir_datasets caches them (it builds its
docstore from them, downloading nothing); plus the one-line error when the data is neither cached nor reachable."""

import gzip
import io
import json
import random
import tarfile
import time
from collections import defaultdict

import pytest

from conftest import MINI, job_dirs, metrics_rows, run_module, specs
from rerank_lora.data.collection import load_collection
from rerank_lora.errors import InputError
from rerank_lora.fetch import fetch

SPLITS = {"dl19": "dev", "dl20": "test", "dev_small": "test"}  # which mini split each fixture split borrows from
DEPTH = 12  # candidates written per query


def read_mini():
    corpus = {}
    for line in (MINI / "corpus.jsonl").read_text().splitlines():
        row = json.loads(line)
        corpus[row["pid"]] = " ".join(row["text"].split())  # one line, no tabs: as collection.tsv holds it
    queries = [json.loads(line) for line in (MINI / "queries.jsonl").read_text().splitlines()]
    qrels, run = defaultdict(dict), defaultdict(list)
    for line in (MINI / "qrels.tsv").read_text().splitlines():
        qid, _, pid, rel = line.split()
        qrels[qid][pid] = int(rel)
    for line in (MINI / "candidates.tsv").read_text().splitlines():
        qid, _, pid, *_ = line.split()
        run[qid].append(pid)
    triples = [line.split("\t") for line in (MINI / "train_triples.tsv").read_text().splitlines()]
    return corpus, queries, qrels, run, triples


def write_upstream(root):
    """An ir_datasets home in its cache layout and a Tevatron JSONL; returns (cache_dir, train file, facts)."""
    corpus, queries, qrels, run, triples = read_mini()
    by_split = defaultdict(list)
    for q in sorted(queries, key=lambda q: q["qid"]):
        if q["split"] in ("dev", "test") and q["qid"] in run:
            by_split[q["split"]].append(q)
    chosen = {"dl19": by_split["dev"][:3], "dl20": by_split["test"][:3], "dev_small": by_split["test"][3:6]}
    rng = random.Random(0)
    home = root / "cache" / "ir_datasets" / "msmarco-passage"
    for folder in ("dev", "trec-dl-2019", "trec-dl-2020"):
        (home / folder).mkdir(parents=True)
    runs, pids = {}, set()
    for name, qs in chosen.items():
        # the official top-1000 lists come in random order; ir_datasets keeps "qid<TAB>pid" of each line
        lines = []
        for q in qs:
            top = run[q["qid"]][:DEPTH]
            rng.shuffle(top)
            lines += [f"{q['qid']}\t{pid}" for pid in top]
            pids |= set(top) | set(qrels[q["qid"]])
        runs[name] = lines
    extras = sorted(set(corpus) - pids)[:5]
    collection = "".join(f"{pid}\t{corpus[pid]}\n" for pid in sorted(pids | set(extras)) if pid in corpus)
    dev = chosen["dev_small"]
    members = {
        "collection.tsv": collection,
        "queries.dev.small.tsv": "".join(f"{q['qid']}\t{q['text']}\n" for q in dev),
        "qrels.dev.small.tsv": "".join(f"{q['qid']}\t0\t{p}\t1\n" for q in dev for p, r in qrels[q["qid"]].items() if r >= 2),
    }
    with tarfile.open(home / "collectionandqueries.tar.gz", "w:gz") as tar:
        for name, text in members.items():
            data = text.encode()
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    (home / "dev" / "ms.run").write_text("".join(f"{line}\n" for line in runs["dev_small"]))
    for name, folder in (("dl19", "trec-dl-2019"), ("dl20", "trec-dl-2020")):
        queries_tsv = "".join(f"{q['qid']}\t{q['text']}\n" for q in chosen[name])
        if name == "dl19":  # cached unpacked, as ir_datasets keeps msmarco-test2019-queries.tsv
            (home / folder / "queries.tsv").write_text(queries_tsv)
        else:  # cached as downloaded: msmarco-test2020-queries.tsv.gz
            (home / folder / "queries.tsv.gz").write_bytes(gzip.compress(queries_tsv.encode()))
        judged = "".join(f"{q['qid']} Q0 {p} {r}\n" for q in chosen[name] for p, r in qrels[q["qid"]].items())
        (home / folder / "qrels").write_text(judged)
        (home / folder / "ms.run").write_text("".join(f"{line}\n" for line in runs[name]))
    # Tevatron rows: a training query, its positive, its triples' negatives and two other passages
    train_text = {q["qid"]: q["text"] for q in queries if q["split"] == "train"}
    train_corpus = {p: corpus[p] for t in triples for p in t[1:]}
    by_query = defaultdict(lambda: [set(), set()])
    for qid, pos, neg in triples:
        by_query[qid][0].add(pos)
        by_query[qid][1].add(neg)
    rows = []
    pool = sorted(train_corpus)
    for qid in sorted(by_query)[:6]:
        positives, negatives = sorted(by_query[qid][0]), sorted(by_query[qid][1]) + rng.sample(pool, 2)
        negatives = [p for p in dict.fromkeys(negatives) if p not in positives]
        rows.append({
            "query_id": qid,
            "query": train_text[qid],
            "positive_passages": [{"docid": p, "title": "-", "text": train_corpus[p]} for p in positives],
            "negative_passages": [{"docid": p, "title": "-", "text": train_corpus[p]} for p in negatives],
        })
    rows.append({"query_id": "tq_no_positive", "query": "nothing relevant", "positive_passages": [],
                 "negative_passages": rows[0]["negative_passages"]})
    train = root / "tevatron" / "train.jsonl"
    train.parent.mkdir()
    train.write_text("".join(json.dumps(r) + "\n" for r in rows))
    facts = {"chosen": {k: [q["qid"] for q in v] for k, v in chosen.items()}, "runs": runs, "rows": rows,
             "extras": extras, "corpus": corpus}
    return root / "cache", train, facts


@pytest.fixture(scope="module")
def upstream(tmp_path_factory):
    """One cache for the module: ir_datasets fixes its home when first imported in a process."""
    return write_upstream(tmp_path_factory.mktemp("msmarco"))


@pytest.fixture(autouse=True)
def no_network(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("IR_DATASETS_SKIP_DISK_FREE", "true")  # its docstore asks for the full collection's 14 GB


def data_spec(overrides):
    """The DataSpec of data=msmarco with `overrides`."""
    return specs(["data=msmarco", *overrides])[1]


def test_collection_from_upstream_layouts(upstream):
    cache, train, facts = upstream
    c = load_collection(data_spec([f"data.cache_dir={cache}", f"data.train_source={train}", "data.eval_depth=10"]))
    for name, qids in facts["chosen"].items():
        assert sorted(c.split_queries(name)) == sorted(qids)
        for qid in qids:  # the unranked lists keep their file order, cut to the depth
            in_file = [line.split("\t")[1] for line in facts["runs"][name] if line.startswith(f"{qid}\t")]
            assert list(c.candidates[qid]) == in_file[:10]
            assert c.qrels[qid]
    assert all(c.qrels[q] == {p: 1 for p in c.qrels[q]} for q in facts["chosen"]["dev_small"])
    rows = [r for r in facts["rows"] if r["positive_passages"]]  # the row without positives is left out
    examples = [c.train_rows.example(i) for i in range(len(c.train_rows))]
    assert [e.qid for e in examples] == [r["query_id"] for r in rows] and not set(c.split_queries("train"))
    for example, row in zip(examples, rows):  # read from the Arrow cache as they are needed, not gathered up front
        assert example.query == row["query"]
        assert example.positives == [(p["docid"], p["text"]) for p in row["positive_passages"]]  # title "-": none
        assert {pid for pid, _ in example.negatives} == {p["docid"] for p in row["negative_passages"]}
    needed = {p for scores in c.candidates.values() for p in scores}
    assert set(c.corpus) == needed  # only the passages reranked, not the whole collection nor the training rows
    pid = next(iter(c.candidates[facts["chosen"]["dl19"][0]]))
    assert c.corpus[pid] == facts["corpus"][pid]  # from ir_datasets' docstore, built from collection.tsv


def test_subsampling_parquet_and_a_ranked_run(upstream, tmp_path):
    import datasets

    cache, train, facts = upstream
    parquet = tmp_path / "train.parquet"
    datasets.Dataset.from_list(facts["rows"]).to_parquet(str(parquet))
    dl20 = facts["chosen"]["dl20"]
    ranked = [line.split("\t") for line in facts["runs"]["dl20"]]
    (tmp_path / "bm25.trec").write_text("".join(f"{q} Q0 {p} {i} {100 - i} bm25\n" for i, (q, p) in enumerate(reversed(ranked))))
    c = load_collection(data_spec([
        f"data.cache_dir={cache}", f"data.train_source={parquet}", "data.train_queries=2", "data.eval_depth=3",
        "data.splits.dl19.max_queries=1", f"data.splits.dl20.run={tmp_path / 'bm25.trec'}", "data.eval_splits=[dl19,dl20]",
    ]))
    assert len(c.train_rows) == 2 and len(c.split_queries("dl19")) == 1 and not c.split_queries("dev_small")
    for qid in dl20:  # the run's scores order them: its last lines first
        mine = [p for q, p in reversed(ranked) if q == qid]
        assert list(c.candidates[qid]) == mine[:3]


def test_splits_from_shipped_files_beside_ir_datasets(upstream):
    """recipe=rankllama's sources: DL19 from the shipped BM25 top-100 (label dev), dev/small from ir_datasets reranked
    to its own depth."""
    cache, train, facts = upstream
    c = load_collection(data_spec([
        "recipe=rankllama", f"data.cache_dir={cache}", f"data.train_source={train}", "data.eval_splits=[dl19,dev_small]",
    ]))
    corpus, queries, qrels, run, _ = read_mini()
    dl19 = sorted(q["qid"] for q in queries if q["split"] == "dev")
    assert sorted(c.split_queries("dl19")) == dl19 and len(dl19) == 43
    assert all(set(c.candidates[q]) == set(run[q][:100]) for q in dl19)  # the shipped run's top 100 (ties: trec_eval's order)
    assert all(c.qrels[q] == qrels[q] for q in dl19)
    assert sorted(c.split_queries("dev_small")) == sorted(facts["chosen"]["dev_small"])
    assert all(len(c.candidates[q]) == DEPTH for q in facts["chosen"]["dev_small"])  # depth 1000: all of them
    pid = run[dl19[0]][0]
    assert " ".join(c.corpus[pid].split()) == corpus[pid]  # the shipped corpus.jsonl's text


def test_rows_in_another_layout_are_named(upstream, tmp_path):
    cache, _, _ = upstream
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps({"qid": "1", "query": "q", "positives": []}) + "\n")
    with pytest.raises(InputError, match=r"not in Tevatron's msmarco-passage-aug layout.*positive_passages"):
        load_collection(data_spec([f"data.cache_dir={cache}", f"data.train_source={bad}"]))


def test_split_entry_in_another_shape_is_named(upstream):
    cache, train, _ = upstream
    keys = "ir_dataset, files, label, max_queries, run, depth"
    with pytest.raises(InputError, match=rf"data\.splits\.dl19=.*expected a mapping with keys {keys}"):
        load_collection(data_spec([f"data.cache_dir={cache}", f"data.train_source={train}", "+data.splits.dl19.top=5"]))
    with pytest.raises(InputError, match=r"data\.splits\.dl19: give exactly one of ir_dataset .* or files"):
        load_collection(data_spec([f"data.cache_dir={cache}", f"data.train_source={train}", f"data.splits.dl19.files={MINI}"]))


def test_uncached_ir_dataset_fails_at_once_offline(upstream):
    cache, train, _ = upstream
    start = time.monotonic()
    with pytest.raises(InputError) as err:  # full msmarco-passage/dev needs queries.tar.gz, which is not cached
        load_collection(data_spec([
            f"data.cache_dir={cache}", f"data.train_source={train}", "data.eval_splits=[dev]",
            "+data.splits.dev={ir_dataset: msmarco-passage/dev, max_queries: 2, run: null}",
        ]))
    message = str(err.value)
    assert time.monotonic() - start < 10
    assert "the ir_datasets data of msmarco-passage/dev is not in the cache" in message and str(cache / "ir_datasets") in message
    assert "HF_HUB_OFFLINE" in message and "python -m rerank_lora.fetch" in message and "\n" not in message


def test_fetch_command_reads_a_filled_cache(upstream, capsys):
    cache, train, _ = upstream
    fetch([f"data.cache_dir={cache}", f"data.train_source={train}"])  # an error would raise InputError
    out = capsys.readouterr().out
    assert "dl19: msmarco-passage/trec-dl-2019/judged: 3 queries" in out and f"copy {cache}" in out


def test_fetch_offline_is_one_error(tmp_path):
    expected = r"^cannot download Tevatron/msmarco-passage-aug \(train.jsonl.gz\) into .*HF_HUB_OFFLINE"
    with pytest.raises(InputError, match=expected):
        fetch([f"data.cache_dir={tmp_path / 'empty'}"])


def test_tiny_model_job_on_msmarco(upstream, tmp_path):
    cache, train, facts = upstream
    args = ["data=msmarco", f"data.cache_dir={cache}", f"data.train_source={train}", "data.eval_depth=10",
            "model=tiny_llama", "trainer.max_steps=2", "logger=none"]
    env = {"HF_HUB_OFFLINE": "1", "IR_DATASETS_SKIP_DISK_FREE": "true"}
    result = run_module("rerank_lora.run", args, tmp_path, env=env, timeout=240)
    assert result.returncode == 0, result.stderr[-3000:]
    (job,) = job_dirs(tmp_path)
    rows = metrics_rows(job)
    assert {(r["split"], r["step"]) for r in rows if r["ranker"] == "model"} == {(s, n) for s in SPLITS for n in (0, 2)}
    assert (job / "runs" / "dl19-step2.trec").read_text().count("\n") == 3 * 10


def test_job_without_cache_or_network_fails_at_once(tmp_path):
    empty = tmp_path / "no-cache"
    args = ["data=msmarco", f"data.cache_dir={empty}", "model=tiny_llama", "trainer.max_steps=2", "logger=none"]
    result = run_module("rerank_lora.run", args, tmp_path, env={"HF_HUB_OFFLINE": "1"}, timeout=90)
    assert result.returncode != 0
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("error: Tevatron/msmarco-passage-aug (train.jsonl.gz) is not in the cache"), result.stderr[-2000:]
    assert str(empty) in last and "python -m rerank_lora.fetch" in last
