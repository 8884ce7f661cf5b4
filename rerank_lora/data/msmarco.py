"""data=msmarco: full-size MS MARCO passage ranking, for clusters.

Training groups come from Tevatron's msmarco-passage-aug rows, read on demand from their memory-mapped Arrow
cache (data/tevatron.py). Each eval split in data.splits comes from one of two sources:

- `ir_dataset: ID` (dev/small, TREC DL19, DL20 through `ir_datasets`): queries, qrels, the official BM25
  top-1000 (`scoreddocs`) as first-stage candidates, and passage texts from the msmarco-passage docstore,
  looked up only for the candidates that will be reranked;
- `files: FOLDER` (the shipped mini set's layout: corpus.jsonl, queries.jsonl, qrels.tsv, candidates.tsv), the
  queries labelled `label` there: e.g. the shipped set's ranked Pyserini BM25 top-100 of DL19 (label dev) and
  DL20 (label test), which needs neither ir_datasets nor its 14 GB docstore.

Each split is reranked to its own `depth` (default data.eval_depth). The result is an ordinary Collection of
the eval splits whose `train_rows` is the training source.

Everything is read from data.cache_dir first (data/offline.py). What is missing there is downloaded when the
network can be reached; otherwise (HF_HUB_OFFLINE / HF_DATASETS_OFFLINE set, or no connection) the job stops
at once with one error line. To fill a cache on a machine with network and copy it to the cluster:

    python -m rerank_lora.fetch data.cache_dir=DIR [data.* overrides]
"""

import logging
import random
from collections import defaultdict
from pathlib import Path

from rerank_lora.data.in_memory import Collection
from rerank_lora.data.offline import NotCached, close_store, ir_datasets_at, why_no_download
from rerank_lora.data.spec import DataSpec, EvalSplit, eval_split_specs
from rerank_lora.data.split_files import read_folder
from rerank_lora.data.tevatron import TEVATRON_COLUMNS, load_rows, tevatron_rows, train_files
from rerank_lora.data.trec_files import read_run, top_k
from rerank_lora.errors import InputError

__all__ = ["TEVATRON_COLUMNS", "cache_dir", "load_msmarco", "load_rows", "train_files"]  # fetch.py reads these here
log = logging.getLogger(__name__)
FETCH = "python -m rerank_lora.fetch"


def cache_dir(spec: DataSpec) -> Path:
    """data.cache_dir as an absolute path: huggingface/ (hub files, Arrow cache) and ir_datasets/ inside."""
    return Path(str(spec.cache_dir)).expanduser().resolve()


def load_msmarco(spec: DataSpec) -> Collection:
    """The Collection for data=msmarco: the eval splits, with the Tevatron rows as its training source."""
    cache = cache_dir(spec)
    try:
        files = train_files(spec, cache)  # cheap: fails before any eval data is read
        evals, corpus = _eval_splits(spec, cache)
        rows = tevatron_rows(spec, files, cache)
    except NotCached as missing:
        raise InputError(
            f"{missing.what} is not in the cache {missing.folder} and cannot be downloaded ({missing.why}); "
            f"on a machine with network run `{FETCH} data.cache_dir={cache}` (or {missing.how}), "
            f"then copy {cache} to this machine's data.cache_dir"
        ) from None
    collection = _eval_collection(evals, corpus)
    overlap = sorted(set(rows.query_ids()) & collection.queries.keys())
    if overlap:
        split = collection.query_splits[overlap[0]]
        raise InputError(f"data.train_source: training query {overlap[0]} is also in eval split {split!r}")
    collection.train_rows = rows
    log.info("msmarco: %s, read a group at a time", rows.describe())
    return collection


def _eval_collection(evals: dict, corpus: dict[str, str]) -> Collection:
    """The eval splits in one Collection; a query in two splits is an error."""
    c = Collection(corpus=corpus, queries={}, query_splits={}, qrels={}, candidates={})
    for name, (split_queries, split_qrels, run) in evals.items():
        overlap = sorted(set(split_queries) & set(c.queries))
        if overlap:
            raise InputError(f"data.splits: query {overlap[0]} is in split {name!r} and in {c.query_splits[overlap[0]]!r}")
        c.queries |= split_queries
        c.query_splits |= dict.fromkeys(split_queries, name)
        c.qrels |= split_qrels
        c.candidates |= run
    return c


def _eval_splits(spec: DataSpec, cache: Path) -> tuple[dict, dict[str, str]]:
    """{split: (queries, qrels, first-stage run to the split's depth)} for data.eval_splits and held_out_splits, in
    that order, and the texts of every candidate: from local files, or from ir_datasets (read from the cache alone
    first, downloaded only when something is missing and the network answers)."""
    splits = eval_split_specs(spec)
    unknown = [n for n in spec.scored_splits if n not in splits]
    if unknown:
        raise InputError(f"data.eval_splits or held_out_splits name {unknown}; data.splits defines {list(splits)}")
    chosen = {name: splits[name] for name in spec.scored_splits}
    evals, corpus = _file_splits({n: s for n, s in chosen.items() if s.files}, spec)
    remote = {n: s for n, s in chosen.items() if s.ir_dataset}
    if remote:
        irds_evals, irds_corpus = _irds_splits(remote, spec, cache / "ir_datasets")
        evals, corpus = evals | irds_evals, corpus | irds_corpus
    return {name: evals[name] for name in chosen}, corpus


def _file_splits(chosen: dict[str, EvalSplit], spec: DataSpec) -> tuple[dict, dict[str, str]]:
    evals, corpus = {}, {}
    for name, split in chosen.items():
        folder = read_folder(split.files)
        labelled = {q: t for q, t in folder.queries.items() if split.label is None or folder.labels[q] in (split.label, None)}
        judged = {q: t for q, t in labelled.items() if folder.qrels.get(q)}
        evals[name] = _select(name, split, spec, judged, folder.qrels, lambda wanted, f=folder: f.candidates, split.files)
        pids = {p for scores in evals[name][2].values() for p in scores}
        missing = sorted(pids - folder.corpus.keys())
        if missing:
            where = f"{split.files}/corpus.jsonl"
            raise InputError(f"data.splits.{name}: {len(missing)} candidate passage(s) not in {where}: {missing[:5]}")
        corpus |= {p: folder.corpus[p] for p in pids}
    return evals, corpus


def _select(name: str, split: EvalSplit, spec: DataSpec, texts: dict[str, str], qrels: dict, candidates, where: str):
    """(queries, qrels, run) of one split: its judged queries (`texts`: those with qrels), sampled to
    max_queries, with candidates (`candidates(chosen)`, or split.run) cut to the split's depth."""
    judged = sorted(texts)
    if split.max_queries is not None and split.max_queries < len(judged):
        judged = sorted(random.Random(f"{spec.sample_seed}:{name}").sample(judged, int(split.max_queries)))
    chosen = set(judged)
    run = read_run(split.run) if split.run else candidates(chosen)
    depth = split.depth or spec.eval_depth
    run = top_k({q: s for q, s in run.items() if q in chosen}, depth)
    if not run:
        raise InputError(f"data.splits.{name}: none of the {len(judged)} judged queries of {where} has candidates")
    log.info("msmarco: split %s (%s): %d queries, %d candidates to depth %d", name, where, len(run),
             sum(map(len, run.values())), depth)
    return {q: texts[q] for q in run}, {q: qrels[q] for q in run}, run


# ---- eval splits: ir_datasets ------------------------------------------------------------------------


def _irds_splits(chosen: dict[str, EvalSplit], spec: DataSpec, home: Path) -> tuple[dict, dict[str, str]]:
    refused: list[str] = []
    try:
        with ir_datasets_at(home, refused) as irds:
            return _read_splits(irds, chosen, spec)
    except Exception:
        if not refused:
            raise
    return _download_splits(home, chosen, spec, refused[0])


def _download_splits(home: Path, chosen: dict[str, EvalSplit], spec: DataSpec, url: str):
    """_read_splits again, downloading what the cache lacks, when `url` can be reached."""
    ids = ", ".join(split.ir_dataset for split in chosen.values())
    what = f"the ir_datasets data of {ids}"
    how = (
        f"IR_DATASETS_HOME={home} and, for each of {ids}: d = ir_datasets.load(ID); "
        "list(d.queries_iter()); list(d.qrels_iter()); list(d.scoreddocs_iter()); d.docs_store().build()"
    )
    why = why_no_download(url)
    if why:
        raise NotCached(what, home, why, how)
    log.info("ir_datasets: downloading what %s lacks into %s", home, ids)
    try:
        with ir_datasets_at(home, None) as irds:
            return _read_splits(irds, chosen, spec)
    except (OSError, RuntimeError) as err:  # requests' errors are OSErrors; ir_datasets' "All download sources failed"
        if isinstance(err, RuntimeError) and "download" not in str(err):
            raise
        raise NotCached(what, home, f"{type(err).__name__}: {err}".splitlines()[0], how) from None


def _read_splits(irds, chosen: dict[str, EvalSplit], spec: DataSpec) -> tuple[dict, dict[str, str]]:
    evals = {name: _read_split(irds, name, split, spec) for name, split in chosen.items()}
    return evals, _passages(irds, {p for _, _, run in evals.values() for scores in run.values() for p in scores})


def _read_split(irds, name: str, split: EvalSplit, spec: DataSpec):
    dataset = irds.load(split.ir_dataset)
    qrels = defaultdict(dict)
    for qrel in dataset.qrels_iter():
        qrels[qrel.query_id][qrel.doc_id] = int(qrel.relevance)
    texts = {q.query_id: q.text for q in dataset.queries_iter() if q.query_id in qrels}
    depth = split.depth or spec.eval_depth
    candidates = lambda chosen: _scoreddocs(dataset, chosen, name, split, depth)  # noqa: E731
    return _select(name, split, spec, texts, qrels, candidates, split.ir_dataset)


def _scoreddocs(dataset, chosen: set[str], name: str, split: EvalSplit, depth: int) -> dict[str, dict[str, float]]:
    """The dataset's scoreddocs for the chosen queries. MS MARCO's top-1000 files carry no scores (all 0,
    in random order): then the file order is kept (score 1/position), and only depth >= 1000 is BM25's pool."""
    run = defaultdict(dict)
    for doc in dataset.scoreddocs_iter():
        if doc.query_id in chosen:
            run[doc.query_id][doc.doc_id] = doc.score
    cut = False
    for qid, scores in run.items():
        if all(s == 0 for s in scores.values()):
            run[qid] = {pid: 1.0 / position for position, pid in enumerate(scores, start=1)}
            cut = cut or depth < len(scores)
    if cut:
        log.warning(
            "data.splits.%s: the scoreddocs of %s are unranked (MS MARCO's top-1000 lists are in random order), so "
            "depth %d reranks an arbitrary part of them; rerank them all (data.splits.%s.depth=1000) or give "
            "data.splits.%s.run=PATH, a ranked TREC run", name, split.ir_dataset, depth, name, name,
        )
    return dict(run)


def _passages(irds, pids: set[str]) -> dict[str, str]:
    """The texts of `pids` from the msmarco-passage docstore (built from collection.tsv on first use)."""
    store = irds.load("msmarco-passage").docs_store()
    try:
        found = {pid: doc.text for pid, doc in store.get_many(sorted(pids)).items()}
    finally:
        close_store(store)
    unknown = sorted(pids - found.keys())
    if unknown:
        raise InputError(f"data.splits: {len(unknown)} candidate passage(s) not in msmarco-passage: {unknown[:5]}")
    return found
