"""The files of a reranking collection in their TREC layouts: readers for corpus, queries, qrels, a first-stage
run and training triples; a run writer; a run cut to its top k.

Every reader names the file and line of the first malformed row. Ids are kept as strings.
"""

import json
from collections import defaultdict
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
