"""Where training groups come from: a numbered list of training queries, each with its positive and negative
passages as (pid, text) (with a title, data/tevatron.py: (pid, text, title)), and a pool to draw random negatives
from. Two sources share this shape:
`CollectionPairs` (triples and train-split qrels of an in-memory Collection: data=trec, the shipped set) and
`TevatronRows` (data/tevatron.py: data=msmarco's rows, read from disk a row at a time).
"""

import logging
from typing import NamedTuple

from rerank_lora.data.bm25 import BM25
from rerank_lora.data.in_memory import Collection
from rerank_lora.data.spec import DataSpec
from rerank_lora.data.trec_files import top_k
from rerank_lora.errors import InputError

log = logging.getLogger(__name__)
NEGATIVE_SOURCES = ("triples", "candidates", "bm25", "random")
ALLOW_OVERLAP = "data.allow_eval_queries_in_training"


class Example(NamedTuple):
    """One training query: its id and text, and its positive and negative passages as (pid, text) or (pid, text,
    title) (data/pairs.py's Passage)."""

    qid: str
    query: str
    positives: list[tuple[str, str]]
    negatives: list[tuple[str, str]]


def check_sources(sources) -> list[str]:
    """data.negatives as a list, each one of NEGATIVE_SOURCES."""
    sources = list(sources)
    unknown = [s for s in sources if s not in NEGATIVE_SOURCES]
    if unknown or not sources:
        raise InputError(f"data.negatives={sources}; accepted: a non-empty list from {list(NEGATIVE_SOURCES)}")
    return sources


class CollectionPairs:
    """Training queries of a Collection in qid order: positives from triples and from qrels of train-split
    queries, negatives from data.negatives' sources, random negatives from every training passage. A training
    query that an eval or held-out split reranks is an error unless data.allow_eval_queries_in_training."""

    def __init__(self, collection: Collection, spec: DataSpec):
        self.corpus = collection.corpus
        self.positives, self.negatives = _train_pairs(collection, spec)
        self.qids = sorted(self.positives)
        check_no_eval_queries(self.qids, collection, spec)
        self.texts = {q: collection.queries[q] for q in self.qids}
        self.pool = sorted({p for pids in self.positives.values() for p in pids} | _flat(self.negatives))

    def __len__(self) -> int:
        return len(self.qids)

    def example(self, index: int) -> Example:
        qid = self.qids[index]
        passages = [[(pid, self.corpus[pid]) for pid in pids] for pids in (self.positives[qid], self.negatives.get(qid, []))]
        return Example(qid, self.texts[qid], *passages)

    def random_passage(self, rng) -> tuple[str, str]:
        pid = rng.choice(self.pool)
        return pid, self.corpus[pid]

    def lacking_negatives(self) -> list[str]:
        """Training queries with no negatives of their own."""
        return [q for q in self.qids if not self.negatives.get(q)]


def evaluation_queries(c: Collection, spec: DataSpec) -> set[str]:
    """The queries the eval and held-out splits rerank: each split's queries that have first-stage candidates."""
    return {q for split in spec.scored_splits for q in c.split_queries(split) if q in c.candidates}


def evaluation_passages(c: Collection, spec: DataSpec) -> set[str]:
    """Every first-stage candidate of a query the eval and held-out splits rerank, at any depth."""
    return {p for q in evaluation_queries(c, spec) for p in c.candidates[q]}


def check_no_eval_queries(train_qids: list[str], c: Collection, spec: DataSpec) -> None:
    """Training on a query that is also evaluated makes its metrics those of a seen query: an error, unless
    data.allow_eval_queries_in_training (then a warning, and a line under the end-of-job table)."""
    both = sorted(set(train_qids) & evaluation_queries(c, spec))
    if not both:
        return
    shown = ", ".join(both[:5]) + (f" and {len(both) - 5} more" if len(both) > 5 else "")
    splits = ", ".join(spec.scored_splits)
    if spec.allow_eval_queries_in_training:
        log.warning("%s=true: %d of %d training queries are also reranked in evaluation (%s): %s",
                    ALLOW_OVERLAP, len(both), len(train_qids), splits, shown)
        return
    raise InputError(
        f"{len(both)} of {len(train_qids)} training queries are also evaluation queries (reranked in {splits}): "
        f"{shown}; give training and evaluation different queries (a query without a split label, as in a TSV "
        f"queries file, is in every split), or set {ALLOW_OVERLAP}=true to train on them anyway"
    )


def _flat(by_query: dict[str, list[str]]) -> set[str]:
    return {p for pids in by_query.values() for p in pids}


def _train_pairs(c: Collection, spec: DataSpec) -> tuple[dict[str, list[str]], dict[str, list[str]]]:
    """Positives from triples and from qrels of train-split queries; negatives from the chosen sources."""
    positives, negatives = {}, {}
    for qid, pos, neg in c.triples:
        positives.setdefault(qid, []).append(pos)
        if "triples" in spec.negatives:
            negatives.setdefault(qid, []).append(neg)
    for qid, label in c.query_splits.items():
        if label == spec.train_split:
            positives.setdefault(qid, []).extend(p for p, rel in c.qrels.get(qid, {}).items() if rel > 0)
    if "candidates" in spec.negatives:
        for qid in positives:
            ranked = top_k(c.candidates.get(qid, {}), spec.candidate_negatives_depth)
            negatives.setdefault(qid, []).extend(p for p in ranked if c.qrels.get(qid, {}).get(p, 0) <= 0)
    positives = {q: sorted(set(p) & c.corpus.keys()) for q, p in positives.items()}
    positives = {q: p for q, p in positives.items() if p}
    if "bm25" in spec.negatives:  # the training pool's passages that share the query's words, never an eval passage
        pool = {p for pids in positives.values() for p in pids} | _flat(negatives)
        index = BM25({pid: c.corpus[pid] for pid in sorted(pool & c.corpus.keys())})
        evaluated = evaluation_passages(c, spec)
        for qid in positives:
            negatives.setdefault(qid, []).extend(index.top(c.queries[qid], spec.bm25_negatives_depth, evaluated))
    negatives = {q: sorted(set(n) - set(positives.get(q, []))) for q, n in negatives.items()}
    return positives, negatives
