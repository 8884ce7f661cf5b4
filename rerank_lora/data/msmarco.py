"""data=msmarco: full-size MS MARCO passage ranking, for clusters.

Training groups come from Tevatron's msmarco-passage-aug rows ({query_id, query, positive_passages,
negative_passages}, passages as {docid, title, text}) read with the `datasets` library; eval splits
(dev/small, TREC DL19, DL20) come from `ir_datasets`: queries, qrels, the official BM25 top-1000
(`scoreddocs`) as first-stage candidates, and passage texts from the msmarco-passage docstore, looked up
only for the candidates that will be reranked. The result is an ordinary Collection: each Tevatron row's
positives become train-split qrels and its hard negatives become triples, so `data.negatives: [triples]`
trains on them.

Everything is read from data.cache_dir first. What is missing there is downloaded when the network can be
reached; otherwise (HF_HUB_OFFLINE / HF_DATASETS_OFFLINE set, or no connection) the job stops at once with
one error line. To fill a cache on a machine with network and copy it to the cluster:

    python -m rerank_lora.data.msmarco fetch data.cache_dir=DIR [data.* overrides]
"""

import contextlib
import logging
import os
import random
import re
import socket
import sys
from collections import defaultdict
from pathlib import Path
from urllib.parse import urlparse

from rerank_lora.data.collection import Collection, read_run, top_k
from rerank_lora.errors import InputError

log = logging.getLogger(__name__)
TEVATRON_COLUMNS = ("query_id", "query", "positive_passages", "negative_passages")
FETCH = "python -m rerank_lora.data.msmarco fetch"
_bound_home: Path | None = None  # ir_datasets fixes its folders when first imported


class NotCached(Exception):
    """Data that is not in the cache and cannot be downloaded now."""

    def __init__(self, what: str, folder: Path, why: str, how: str):
        super().__init__(what)
        self.what, self.folder, self.why, self.how = what, folder, why, how


def load_msmarco(cfg) -> Collection:
    """The Collection for data=msmarco: Tevatron train groups plus ir_datasets eval splits."""
    cache = cache_dir(cfg)
    try:
        train_files = _train_files(cfg, cache)  # cheap: fails before any eval data is read
        evals = _eval_splits(cfg, cache)
    except NotCached as missing:
        raise InputError(
            f"{missing.what} is not in the cache {missing.folder} and cannot be downloaded ({missing.why}); "
            f"on a machine with network run `{FETCH} data.cache_dir={cache}` (or {missing.how}), "
            f"then copy {cache} to this machine's data.cache_dir"
        ) from None
    evals, corpus = evals
    queries, splits, qrels, candidates = {}, {}, {}, {}
    for name, (split_queries, split_qrels, run) in evals.items():
        overlap = sorted(set(split_queries) & set(queries))
        if overlap:
            raise InputError(f"data.splits: query {overlap[0]} is in split {name!r} and in {splits[overlap[0]]!r}")
        queries |= split_queries
        splits |= dict.fromkeys(split_queries, name)
        qrels |= split_qrels
        candidates |= run
    train_queries, train_qrels, triples, train_texts = _read_train_rows(cfg, train_files, cache)
    overlap = sorted(set(train_queries) & set(queries))
    if overlap:
        raise InputError(f"data.train_source: training query {overlap[0]} is also in eval split {splits[overlap[0]]!r}")
    queries |= train_queries
    splits |= dict.fromkeys(train_queries, cfg.train_split)
    qrels |= train_qrels
    corpus = train_texts | corpus  # the docstore's text wins for a passage that is also an eval candidate
    return Collection(corpus=corpus, queries=queries, query_splits=splits, qrels=qrels, candidates=candidates, triples=triples)


def cache_dir(cfg) -> Path:
    return Path(str(cfg.cache_dir)).expanduser().resolve()


def offline() -> bool:
    """HF_HUB_OFFLINE or HF_DATASETS_OFFLINE set: nothing is downloaded, by either library."""
    flags = (os.environ.get(k, "").strip().upper() for k in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE"))
    return any(flag in ("1", "ON", "YES", "TRUE") for flag in flags)


def _why_no_download(url: str) -> str | None:
    """None when `url`'s host answers (or a proxy is set); else why a download cannot be tried."""
    if offline():
        return "HF_HUB_OFFLINE/HF_DATASETS_OFFLINE is set"
    if any(os.environ.get(k) for k in ("HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy")):
        return None
    host = urlparse(url).hostname
    try:
        socket.create_connection((host, 443), timeout=3).close()
    except OSError as err:
        return f"{host} cannot be reached: {err}"
    return None


# ---- training rows: Tevatron's msmarco-passage-aug through `datasets` ----------------------------------


def _train_files(cfg, cache: Path) -> list[str]:
    """Local data files for data.train_source: a file, a folder of them, or a Hub dataset's data.train_file."""
    source = str(cfg.train_source)
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
    return [_hub_file(source, str(cfg.train_file), cache / "huggingface" / "hub")]


def _hub_file(repo: str, filename: str, hub_cache: Path) -> str:
    from huggingface_hub import hf_hub_download
    from huggingface_hub.errors import LocalEntryNotFoundError

    get = dict(repo_id=repo, filename=filename, repo_type="dataset", cache_dir=str(hub_cache))
    try:
        return hf_hub_download(**get, local_files_only=True)
    except LocalEntryNotFoundError:
        pass
    how = f"huggingface_hub.hf_hub_download({repo!r}, {filename!r}, repo_type='dataset', cache_dir='{hub_cache}')"
    why = _why_no_download(f"{os.environ.get('HF_ENDPOINT', 'https://huggingface.co')}/datasets/{repo}")
    if why:
        raise NotCached(f"{repo} ({filename})", hub_cache, why, how)
    log.info("downloading %s/%s into %s", repo, filename, hub_cache)
    try:
        return hf_hub_download(**get)
    except OSError as err:  # connection errors, missing files
        raise NotCached(f"{repo} ({filename})", hub_cache, f"{type(err).__name__}: {err}".splitlines()[0], how) from None


def _builder(name: str) -> str | None:
    """The `datasets` builder for a data file's name."""
    if name.endswith(".parquet"):
        return "parquet"
    return "json" if name.endswith((".jsonl", ".json", ".jsonl.gz", ".json.gz")) else None


def _tevatron_rows(cfg, files: list[str], cache: Path):
    """The training rows, subsampled to data.train_queries."""
    rows = _load_rows(cfg, files, cache)
    if cfg.train_queries is not None and cfg.train_queries < len(rows):
        chosen = random.Random(f"{cfg.sample_seed}:train").sample(range(len(rows)), int(cfg.train_queries))
        rows = rows.select(sorted(chosen))
    return rows.select_columns(list(TEVATRON_COLUMNS))


def _load_rows(cfg, files: list[str], cache: Path):
    """All rows as a memory-mapped `datasets.Dataset` (its Arrow cache is built on first use)."""
    import datasets

    builders = {_builder(f) for f in files}
    if len(builders) != 1 or None in builders:
        raise InputError(f"data.train_source: expected .parquet or .jsonl(.gz) files of one kind; got {files}")
    datasets_cache = cache / "huggingface" / "datasets"
    with _env(HF_DATASETS_CACHE=str(datasets_cache)):
        rows = datasets.load_dataset(builders.pop(), data_files=files, split="train", cache_dir=str(datasets_cache))
    missing = [c for c in TEVATRON_COLUMNS if c not in rows.column_names]
    if missing:
        raise InputError(
            f"data.train_source={cfg.train_source}: not in Tevatron's msmarco-passage-aug layout, missing column(s) "
            f"{missing}; columns present: {rows.column_names}"
        )
    return rows


def _read_train_rows(cfg, files: list[str], cache: Path):
    """Each row's query, its positives (as qrels, relevance 1), its hard negatives (as triples: qid, first
    positive, negative) and every passage text it carries."""
    rows = _tevatron_rows(cfg, files, cache)
    queries, qrels, triples, texts, skipped = {}, {}, [], {}, 0
    for index, row in enumerate(rows):
        try:
            qid, query = str(row["query_id"]), row["query"]
            positives = [(str(p["docid"]), p["text"]) for p in row["positive_passages"]]
            negatives = [(str(p["docid"]), p["text"]) for p in row["negative_passages"]]
            if not isinstance(query, str) or not all(isinstance(t, str) for _, t in positives + negatives):
                raise TypeError
        except (KeyError, TypeError):
            raise InputError(
                f"data.train_source={cfg.train_source}: row {index} is not a Tevatron row "
                "{query_id, query, positive_passages: [{docid, text}], negative_passages: [{docid, text}]}"
            ) from None
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
             len(texts), cfg.train_source)
    return queries, qrels, triples, texts


# ---- eval splits: ir_datasets ------------------------------------------------------------------------


def _eval_splits(cfg, cache: Path) -> tuple[dict, dict[str, str]]:
    """{split: (queries, qrels, first-stage run to data.eval_depth)} for data.eval_splits and the texts of
    every candidate: read from the cache alone first, downloaded only when something is missing and the
    network answers."""
    names = list(cfg.eval_splits)
    unknown = [n for n in names if n not in cfg.splits]
    if unknown:
        raise InputError(f"data.eval_splits names {unknown}; data.splits defines {list(cfg.splits)}")
    home = cache / "ir_datasets"
    refused: list[str] = []
    try:
        with _ir_datasets(home, refused) as irds:
            return _read_splits(irds, names, cfg)
    except Exception:
        if not refused:
            raise
    ids = ", ".join(cfg.splits[n].ir_dataset for n in names)
    what = f"the ir_datasets data of {ids}"
    how = (
        f"IR_DATASETS_HOME={home} and, for each of {ids}: d = ir_datasets.load(ID); "
        "list(d.queries_iter()); list(d.qrels_iter()); list(d.scoreddocs_iter()); d.docs_store().build()"
    )
    why = _why_no_download(refused[0])
    if why:
        raise NotCached(what, home, why, how)
    log.info("ir_datasets: downloading what %s lacks into %s", home, ids)
    try:
        with _ir_datasets(home, None) as irds:
            return _read_splits(irds, names, cfg)
    except (OSError, RuntimeError) as err:  # requests' errors are OSErrors; ir_datasets' "All download sources failed"
        if isinstance(err, RuntimeError) and "download" not in str(err):
            raise
        raise NotCached(what, home, f"{type(err).__name__}: {err}".splitlines()[0], how) from None


def _read_splits(irds, names: list[str], cfg) -> tuple[dict, dict[str, str]]:
    evals = {name: _read_split(irds, name, cfg.splits[name], cfg) for name in names}
    return evals, _passages(irds, {p for _, _, run in evals.values() for scores in run.values() for p in scores})


def _read_split(irds, name: str, spec, cfg):
    dataset = irds.load(spec.ir_dataset)
    qrels = defaultdict(dict)
    for qrel in dataset.qrels_iter():
        qrels[qrel.query_id][qrel.doc_id] = int(qrel.relevance)
    texts = {q.query_id: q.text for q in dataset.queries_iter()}
    judged = sorted(q for q in texts if q in qrels)
    if spec.max_queries is not None and spec.max_queries < len(judged):
        judged = sorted(random.Random(f"{cfg.sample_seed}:{name}").sample(judged, int(spec.max_queries)))
    chosen = set(judged)
    if spec.run:
        run = {q: s for q, s in read_run(spec.run).items() if q in chosen}
    else:
        run = _scoreddocs(dataset, chosen, name, spec, cfg.eval_depth)
    run = top_k(run, cfg.eval_depth)
    if not run:
        raise InputError(f"data.splits.{name}: none of the {len(judged)} judged queries of {spec.ir_dataset} has candidates")
    log.info("msmarco: split %s (%s): %d queries, %d candidates to depth %d", name, spec.ir_dataset, len(run),
             sum(map(len, run.values())), cfg.eval_depth)
    return {q: texts[q] for q in run}, {q: qrels[q] for q in run}, run


def _scoreddocs(dataset, chosen: set[str], name: str, spec, depth: int) -> dict[str, dict[str, float]]:
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
            "data.splits.%s.run=PATH, a ranked TREC run", name, spec.ir_dataset, depth, name,
        )
    return dict(run)


def _passages(irds, pids: set[str]) -> dict[str, str]:
    """The texts of `pids` from the msmarco-passage docstore (built from collection.tsv on first use)."""
    store = irds.load("msmarco-passage").docs_store()
    try:
        found = {pid: doc.text for pid, doc in store.get_many(sorted(pids)).items()}
    finally:
        _close(store)
    unknown = sorted(pids - found.keys())
    if unknown:
        raise InputError(f"data.splits: {len(unknown)} candidate passage(s) not in msmarco-passage: {unknown[:5]}")
    return found


def _close(store) -> None:
    """Close the docstore's files now rather than at interpreter exit (where closing them fails noisily)."""
    lookup = getattr(store, "lookup", None)
    if lookup is not None:
        lookup.close()


@contextlib.contextmanager
def _ir_datasets(home: Path, refused: list | None):
    """ir_datasets with IR_DATASETS_HOME=home; with a `refused` list, every download is refused at once (its
    URL noted there), so only what the cache holds can be read."""
    global _bound_home
    if _bound_home is not None and _bound_home != home:
        raise InputError(f"data.cache_dir: ir_datasets already reads {_bound_home} in this process; run one cache per process")
    with _env(IR_DATASETS_HOME=str(home)):
        import ir_datasets
        from ir_datasets.util import download

        _bound_home = home
        quiet = _QuietDownloads()
        logger, original = logging.getLogger("ir_datasets"), download.RequestsDownload.__iter__
        if refused is not None:
            logger.addFilter(quiet)

            def refuse(self):
                refused.append(self.url)
                raise ConnectionRefusedError(f"not downloading {self.url}: reading the cache only")

            download.RequestsDownload.__iter__ = refuse
        try:
            yield ir_datasets
        finally:
            download.RequestsDownload.__iter__ = original
            logger.removeFilter(quiet)


class _QuietDownloads(logging.Filter):
    def filter(self, record) -> bool:
        return not str(record.msg).startswith(("Download failed", "If you have a local copy", "Please confirm"))


@contextlib.contextmanager
def _env(**values):
    saved = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


# ---- python -m rerank_lora.data.msmarco fetch [data.* overrides] ----------------------------------------


def fetch(cfg) -> None:
    """Download and build everything data=msmarco reads (every split in data.splits), into data.cache_dir."""
    cache = cache_dir(cfg)
    files = _train_files(cfg, cache)
    rows = _load_rows(cfg, files, cache)
    print(f"train: {len(rows)} rows of {cfg.train_source}, Arrow cache in {cache / 'huggingface'}")
    home = cache / "ir_datasets"
    with _ir_datasets(home, None) as irds:  # downloads on demand: network errors end the command
        for name, spec in cfg.splits.items():
            dataset = irds.load(spec.ir_dataset)
            counts = [sum(1 for _ in it) for it in (dataset.queries_iter(), dataset.qrels_iter(), dataset.scoreddocs_iter())]
            print(f"{name}: {spec.ir_dataset}: {counts[0]} queries, {counts[1]} qrels, {counts[2]} scoreddocs")
        store = irds.load("msmarco-passage").docs_store()
        store.build()
        _close(store)
        print(f"msmarco-passage docstore built in {home}")
    print(f"done: copy {cache} to the cluster and give data.cache_dir=THAT_FOLDER (or set RERANK_LORA_CACHE)")


def main(argv: list[str]) -> int:
    if not argv or argv[0] != "fetch":
        print(f"usage: {FETCH} [data.cache_dir=DIR] [data.train_source=...] [other overrides]", file=sys.stderr)
        return 2
    from hydra import compose, initialize_config_dir

    logging.basicConfig(level=logging.INFO, format="%(message)s")
    conf = Path(__file__).resolve().parents[2] / "conf"
    with initialize_config_dir(str(conf), version_base=None):
        cfg = compose("config", overrides=["data=msmarco", *argv[1:]])
    try:
        fetch(cfg.data)
    except NotCached as missing:
        print(f"error: cannot download {missing.what} into {missing.folder}: {missing.why}", file=sys.stderr)
        return 1
    except (InputError, OSError, RuntimeError) as err:  # network errors: requests' (OSError), ir_datasets' (RuntimeError)
        print(f"error: {err}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
