"""Readers for a reranking collection: corpus, queries, qrels, a first-stage run, training triples.

Every reader names the file and line of the first malformed row. Ids are kept as strings.
"""

import json
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

from rerank_lora.errors import InputError


def _lines(path: str | Path):
    path = Path(path)
    if not path.is_file():
        raise InputError(f"data file not found: {path}")
    with path.open(encoding="utf-8") as handle:
        for number, line in enumerate(handle, start=1):
            if line.strip():
                yield number, line.rstrip("\n")


def _malformed(path, number: int, expected: str, line: str) -> InputError:
    return InputError(f"{path}:{number}: malformed line, expected {expected}; got {line[:120]!r}")


def read_corpus(path) -> dict[str, str]:
    """JSONL rows {"pid": ..., "text": ...} (also accepts "docid"/"id" and "contents")."""
    corpus = {}
    for number, line in _lines(path):
        try:
            row = json.loads(line)
            pid = row.get("pid", row.get("docid", row.get("id")))
            text = row.get("text", row.get("contents"))
            if pid is None or not isinstance(text, str):
                raise ValueError
        except (ValueError, AttributeError):
            raise _malformed(path, number, 'a JSON object with "pid" and "text"', line) from None
        corpus[str(pid)] = text
    return corpus


def read_queries(path) -> tuple[dict[str, str], dict[str, str | None]]:
    """JSONL rows {"qid", "text", "split"?} or TSV rows `qid<TAB>text`; returns texts and split labels."""
    texts, splits = {}, {}
    is_jsonl = str(path).endswith((".jsonl", ".json"))
    for number, line in _lines(path):
        try:
            if is_jsonl:
                row = json.loads(line)
                qid, text, split = row["qid"], row["text"], row.get("split")
            else:
                qid, text = line.split("\t")
                split = None
            if not isinstance(text, str):
                raise ValueError
        except (ValueError, KeyError, TypeError, AttributeError):
            expected = 'a JSON object with "qid" and "text"' if is_jsonl else "qid<TAB>text"
            raise _malformed(path, number, expected, line) from None
        texts[str(qid)], splits[str(qid)] = text, split
    return texts, splits


def read_qrels(path) -> dict[str, dict[str, int]]:
    """TREC qrels: `qid iteration pid relevance`."""
    qrels = defaultdict(dict)
    for number, line in _lines(path):
        parts = line.split()
        try:
            qid, _, pid, rel = parts
            qrels[qid][pid] = int(rel)
        except ValueError:
            raise _malformed(path, number, "TREC qrels 'qid 0 pid relevance'", line) from None
    return dict(qrels)


def read_run(path) -> dict[str, dict[str, float]]:
    """TREC run: `qid Q0 pid rank score tag`."""
    run = defaultdict(dict)
    for number, line in _lines(path):
        parts = line.split()
        try:
            qid, _, pid, _rank, score, _tag = parts
            run[qid][pid] = float(score)
        except ValueError:
            raise _malformed(path, number, "TREC run 'qid Q0 pid rank score tag'", line) from None
    return dict(run)


def read_triples(path) -> list[tuple[str, str, str]]:
    """TSV rows `qid<TAB>positive pid<TAB>negative pid`."""
    triples = []
    for number, line in _lines(path):
        parts = line.split("\t")
        if len(parts) != 3 or not all(p.strip() for p in parts):
            raise _malformed(path, number, "qid<TAB>positive pid<TAB>negative pid", line)
        triples.append(tuple(p.strip() for p in parts))
    return triples


def write_run(run: dict[str, dict[str, float]], path, tag: str) -> None:
    """Write a TREC run, each query's passages by descending score (ties by pid, as trec_eval)."""
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    with Path(path).open("w", encoding="utf-8") as handle:
        for qid, scores in run.items():
            ranked = sorted(scores.items(), key=lambda item: (-item[1], item[0]))
            for rank, (pid, score) in enumerate(ranked, start=1):
                handle.write(f"{qid} Q0 {pid} {rank} {score:.6f} {tag}\n")


def top_k(run: dict[str, dict[str, float]], depth: int) -> dict[str, dict[str, float]]:
    """Each query's `depth` best passages by score."""
    return {
        qid: dict(sorted(scores.items(), key=lambda item: (-item[1], item[0]))[:depth])
        for qid, scores in run.items()
    }


@dataclass
class Collection:
    """A whole reranking collection, checked for ids that match nothing."""

    corpus: dict[str, str]
    queries: dict[str, str]
    query_splits: dict[str, str | None]
    qrels: dict[str, dict[str, int]]
    candidates: dict[str, dict[str, float]]
    triples: list[tuple[str, str, str]] = field(default_factory=list)

    def split_queries(self, split: str) -> list[str]:
        """Queries labelled `split`; an unlabelled query (TSV queries) belongs to every split."""
        return [qid for qid, label in self.query_splits.items() if label in (split, None)]


def load_collection(paths) -> Collection:
    """Read every file named in `paths` (corpus, queries, qrels, candidates, triples?) and cross-check ids."""
    loader = paths.loader
    if loader == "msmarco":  # data=msmarco: Tevatron train rows and ir_datasets eval splits, see data/msmarco.py
        from rerank_lora.data.msmarco import load_msmarco

        return load_msmarco(paths)
    if loader != "files":
        raise InputError(f"data.loader={loader!r}; accepted: files, msmarco")
    queries, splits = read_queries(paths.queries)
    collection = Collection(
        corpus=read_corpus(paths.corpus),
        queries=queries,
        query_splits=splits,
        qrels=read_qrels(paths.qrels),
        candidates=read_run(paths.candidates),
        triples=read_triples(paths.triples) if paths.triples else [],
    )
    _check_ids(collection, paths)
    return collection


def _check_ids(c: Collection, paths) -> None:
    _require_known("query", c.qrels, c.queries, paths.qrels, paths.queries)
    _require_known("query", c.candidates, c.queries, paths.candidates, paths.queries)
    candidate_pids = {pid for scores in c.candidates.values() for pid in scores}
    _require_known("passage", candidate_pids, c.corpus, paths.candidates, paths.corpus)
    if c.triples:
        _require_known("query", {t[0] for t in c.triples}, c.queries, paths.triples, paths.queries)
        triple_pids = {pid for t in c.triples for pid in t[1:]}
        _require_known("passage", triple_pids, c.corpus, paths.triples, paths.corpus)


def _require_known(kind: str, ids, known, where, source) -> None:
    unknown = sorted(set(ids) - set(known))
    if unknown:
        shown = ", ".join(unknown[:5]) + (f" and {len(unknown) - 5} more" if len(unknown) > 5 else "")
        raise InputError(f"{where}: {len(unknown)} {kind} id(s) match nothing in {source}: {shown}")
