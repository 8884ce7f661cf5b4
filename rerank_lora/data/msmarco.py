"""data=msmarco: full-size MS MARCO passage ranking, for clusters.

Training groups come from Tevatron's msmarco-passage-aug rows ({query_id, query, positive_passages,
negative_passages}, passages as {docid, title, text}) read with the `datasets` library; eval splits
(dev/small, TREC DL19, DL20) come from `ir_datasets`: queries, qrels, the official BM25 top-1000
(`scoreddocs`) as first-stage candidates, and passage texts from the msmarco-passage docstore, looked up
only for the candidates that will be reranked. The result is an ordinary Collection: each Tevatron row's
positives become train-split qrels and its hard negatives become triples, so `data.negatives: [triples]`
trains on them.

Everything is read from data.cache_dir first (data/offline.py). What is missing there is downloaded when the
network can be reached; otherwise (HF_HUB_OFFLINE / HF_DATASETS_OFFLINE set, or no connection) the job stops
at once with one error line. To fill a cache on a machine with network and copy it to the cluster:

    python -m rerank_lora.fetch data.cache_dir=DIR [data.* overrides]
"""

import logging
import random
import re
from collections import defaultdict
from pathlib import Path

from rerank_lora.data.collection_type import Collection
from rerank_lora.data.offline import NotCached, close_store, environ, hub_file, ir_datasets_at, why_no_download
from rerank_lora.data.spec import DataSpec, EvalSplit, eval_split_specs
from rerank_lora.data.trec_files import read_run, top_k
from rerank_lora.errors import InputError

log = logging.getLogger(__name__)
TEVATRON_COLUMNS = ("query_id", "query", "positive_passages", "negative_passages")
FETCH = "python -m rerank_lora.fetch"


def cache_dir(spec: DataSpec) -> Path:
    """data.cache_dir as an absolute path: huggingface/ (hub files, Arrow cache) and ir_datasets/ inside."""
    return Path(str(spec.cache_dir)).expanduser().resolve()


def load_msmarco(spec: DataSpec) -> Collection:
    """The Collection for data=msmarco: Tevatron train groups plus ir_datasets eval splits."""
    cache = cache_dir(spec)
    try:
        files = train_files(spec, cache)  # cheap: fails before any eval data is read
        evals, corpus = _eval_splits(spec, cache)
    except NotCached as missing:
        raise InputError(
            f"{missing.what} is not in the cache {missing.folder} and cannot be downloaded ({missing.why}); "
            f"on a machine with network run `{FETCH} data.cache_dir={cache}` (or {missing.how}), "
            f"then copy {cache} to this machine's data.cache_dir"
        ) from None
    collection = _eval_collection(evals, corpus)
    _add_training(collection, spec, *_read_train_rows(spec, files, cache))
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


def _add_training(c: Collection, spec: DataSpec, queries: dict, qrels: dict, triples: list, texts: dict) -> None:
    """The training rows added to the eval collection, labelled data.train_split."""
    overlap = sorted(set(queries) & set(c.queries))
    if overlap:
        raise InputError(f"data.train_source: training query {overlap[0]} is also in eval split {c.query_splits[overlap[0]]!r}")
    c.queries |= queries
    c.query_splits |= dict.fromkeys(queries, spec.train_split)
    c.qrels |= qrels
    c.triples = triples
    c.corpus = texts | c.corpus  # the docstore's text wins for a passage that is also an eval candidate


# ---- training rows: Tevatron's msmarco-passage-aug through `datasets` ----------------------------------


def train_files(spec: DataSpec, cache: Path) -> list[str]:
    """Local data files for data.train_source: a file, a folder of them, or a Hub dataset's data.train_file."""
    source = str(spec.train_source)
    path = Path(source).expanduser()
    if path.is_dir():
        files = sorted(str(p) for p in path.iterdir() if _builder(p.name))
        if not files:
            raise InputError(f"data.train_source={source}: no .parquet/.jsonl/.jsonl.gz/.json files in that folder")
        return files
    if path.is_file():
        return [str(path)]
    if not re.fullmatch(r"[\w.-]+/[\w.-]+", source):
        raise InputError(f"data.train_source={source}: no such file or folder, and not a Hub dataset id (owner/name)")
    return [hub_file(source, str(spec.train_file), cache / "huggingface" / "hub")]


def _builder(name: str) -> str | None:
    """The `datasets` builder for a data file's name."""
    if name.endswith(".parquet"):
        return "parquet"
    return "json" if name.endswith((".jsonl", ".json", ".jsonl.gz", ".json.gz")) else None


def load_rows(spec: DataSpec, files: list[str], cache: Path):
    """All rows as a memory-mapped `datasets.Dataset` (its Arrow cache is built on first use)."""
    import datasets

    builders = {_builder(f) for f in files}
    if len(builders) != 1 or None in builders:
        raise InputError(f"data.train_source: expected .parquet or .jsonl(.gz) files of one kind; got {files}")
    datasets_cache = cache / "huggingface" / "datasets"
    with environ(HF_DATASETS_CACHE=str(datasets_cache)):
        rows = datasets.load_dataset(builders.pop(), data_files=files, split="train", cache_dir=str(datasets_cache))
    missing = [c for c in TEVATRON_COLUMNS if c not in rows.column_names]
    if missing:
        raise InputError(
            f"data.train_source={spec.train_source}: not in Tevatron's msmarco-passage-aug layout, missing column(s) "
            f"{missing}; columns present: {rows.column_names}"
        )
    return rows


def _tevatron_rows(spec: DataSpec, files: list[str], cache: Path):
    """The training rows, subsampled to data.train_queries."""
    rows = load_rows(spec, files, cache)
    if spec.train_queries is not None and spec.train_queries < len(rows):
        chosen = random.Random(f"{spec.sample_seed}:train").sample(range(len(rows)), int(spec.train_queries))
        rows = rows.select(sorted(chosen))
    return rows.select_columns(list(TEVATRON_COLUMNS))


def _read_train_rows(spec: DataSpec, files: list[str], cache: Path):
    """Each row's query, its positives (as qrels, relevance 1), its hard negatives (as triples: qid, first
    positive, negative) and every passage text it carries."""
    queries, qrels, triples, texts, skipped = {}, {}, [], {}, 0
    for index, row in enumerate(_tevatron_rows(spec, files, cache)):
        qid, query, positives, negatives = _tevatron_row(spec, index, row)
        if not positives:
            skipped += 1
            continue
        queries[qid] = query
        qrels[qid] = dict.fromkeys((pid for pid, _ in positives), 1)
        triples.extend((qid, positives[0][0], pid) for pid, _ in negatives if pid not in qrels[qid])
        texts.update(positives + negatives)
    if skipped:
        log.warning("msmarco: %d training rows without positive passages were skipped", skipped)
    log.info("msmarco: %d training queries, %d hard negatives, %d passages, from %s", len(queries), len(triples),
             len(texts), spec.train_source)
    return queries, qrels, triples, texts


def _tevatron_row(spec: DataSpec, index: int, row: dict):
    """(qid, query, [(pid, text)] positives, [(pid, text)] negatives) of one row, or an error naming it."""
    try:
        qid, query = str(row["query_id"]), row["query"]
        positives = [(str(p["docid"]), p["text"]) for p in row["positive_passages"]]
        negatives = [(str(p["docid"]), p["text"]) for p in row["negative_passages"]]
        if not isinstance(query, str) or not all(isinstance(t, str) for _, t in positives + negatives):
            raise TypeError
    except (KeyError, TypeError):
        raise InputError(
            f"data.train_source={spec.train_source}: row {index} is not a Tevatron row "
            "{query_id, query, positive_passages: [{docid, text}], negative_passages: [{docid, text}]}"
        ) from None
    return qid, query, positives, negatives


# ---- eval splits: ir_datasets ------------------------------------------------------------------------


def _eval_splits(spec: DataSpec, cache: Path) -> tuple[dict, dict[str, str]]:
    """{split: (queries, qrels, first-stage run to data.eval_depth)} for data.eval_splits and the texts of
    every candidate: read from the cache alone first, downloaded only when something is missing and the
    network answers."""
    splits = eval_split_specs(spec)
    unknown = [n for n in spec.eval_splits if n not in splits]
    if unknown:
        raise InputError(f"data.eval_splits names {unknown}; data.splits defines {list(splits)}")
    chosen = {name: splits[name] for name in spec.eval_splits}
    home = cache / "ir_datasets"
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
    texts = {q.query_id: q.text for q in dataset.queries_iter()}
    judged = sorted(q for q in texts if q in qrels)
    if split.max_queries is not None and split.max_queries < len(judged):
        judged = sorted(random.Random(f"{spec.sample_seed}:{name}").sample(judged, int(split.max_queries)))
    chosen = set(judged)
    if split.run:
        run = {q: s for q, s in read_run(split.run).items() if q in chosen}
    else:
        run = _scoreddocs(dataset, chosen, name, split, spec.eval_depth)
    run = top_k(run, spec.eval_depth)
    if not run:
        raise InputError(f"data.splits.{name}: none of the {len(judged)} judged queries of {split.ir_dataset} has candidates")
    log.info("msmarco: split %s (%s): %d queries, %d candidates to depth %d", name, split.ir_dataset, len(run),
             sum(map(len, run.values())), spec.eval_depth)
    return {q: texts[q] for q in run}, {q: qrels[q] for q in run}, run


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
            "data.eval_depth=%d reranks an arbitrary part of them; rerank them all (data.eval_depth=1000) or give "
            "data.splits.%s.run=PATH, a ranked TREC run", name, split.ir_dataset, depth, name,
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
