"""Loading the collection a job reranks: `load_collection(spec)` dispatches on data.loader (`files`: the TREC
files named in the spec, cross-checked for ids that match nothing; `msmarco`: see data/msmarco.py)."""

from rerank_lora.data.in_memory import Collection
from rerank_lora.data.msmarco import load_msmarco
from rerank_lora.data.spec import DataSpec
from rerank_lora.data.trec_files import read_corpus, read_qrels, read_queries, read_run, read_triples
from rerank_lora.errors import InputError

LOADERS = ("files", "msmarco")


def load_collection(spec: DataSpec) -> Collection:
    """The collection of data.loader: the files of data=trec (and the shipped set) or data=msmarco's sources."""
    if spec.loader == "msmarco":
        return load_msmarco(spec)
    if spec.loader != "files":
        raise InputError(f"data.loader={spec.loader!r}; accepted: {', '.join(LOADERS)}")
    return load_files(spec)


def load_files(spec: DataSpec) -> Collection:
    """Read every file named in `spec` (corpus, queries, qrels?, candidates, triples?) and cross-check ids."""
    queries, splits = read_queries(spec.queries)
    collection = Collection(
        corpus=read_corpus(spec.corpus),
        queries=queries,
        query_splits=splits,
        qrels=read_qrels(spec.qrels) if spec.qrels else {},
        candidates=read_run(spec.candidates),
        triples=read_triples(spec.triples) if spec.triples else [],
    )
    _check_ids(collection, spec)
    return collection


def _check_ids(c: Collection, spec: DataSpec) -> None:
    _require_known("query", c.qrels, c.queries, spec.qrels, spec.queries)
    _require_known("query", c.candidates, c.queries, spec.candidates, spec.queries)
    candidate_pids = {pid for scores in c.candidates.values() for pid in scores}
    _require_known("passage", candidate_pids, c.corpus, spec.candidates, spec.corpus)
    if c.triples:
        _require_known("query", {t[0] for t in c.triples}, c.queries, spec.triples, spec.queries)
        triple_pids = {pid for t in c.triples for pid in t[1:]}
        _require_known("passage", triple_pids, c.corpus, spec.triples, spec.corpus)


def _require_known(kind: str, ids, known, where, source) -> None:
    unknown = sorted(set(ids) - set(known))
    if unknown:
        shown = ", ".join(unknown[:5]) + (f" and {len(unknown) - 5} more" if len(unknown) > 5 else "")
        raise InputError(f"{where}: {len(unknown)} {kind} id(s) match nothing in {source}: {shown}")
