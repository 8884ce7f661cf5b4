"""The files of a reranking collection in their TREC layouts: readers for corpus, queries, qrels, a first-stage
run and training triples; a run writer; a run cut to its top k.

Every reader names the file and line of the first malformed row. Ids are kept as strings.
"""

import json
from collections import defaultdict
from pathlib import Path

from rerank_lora.disk import write_atomic
from rerank_lora.errors import InputError


def _lines(path: str | Path, expected: str):
    """(line number, line) of each non-blank line; a missing or empty file, or bytes that are not UTF-8, are
    one error naming the file (and line)."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"data file not found: {path}")
    found = False
    with path.open("rb") as handle:
        for number, raw in enumerate(handle, start=1):
            try:
                line = raw.decode("utf-8").rstrip("\r\n")
            except UnicodeDecodeError as err:
                raise InputError(f"{path}:{number}: not UTF-8 text ({err.reason} at byte {err.start}); accepted: UTF-8") from None
            if line.strip():
                found = True
                yield number, line
    if not found:
        raise InputError(f"{path}: empty; expected rows of {expected}")


def _unique(kind: str, key: str, seen: dict[str, int], path, number: int) -> None:
    if key in seen:
        raise InputError(f"{path}:{number}: duplicate {kind} {key!r} (first at line {seen[key]}); accepted: each id once")
    seen[key] = number


def _malformed(path, number: int, expected: str, line: str) -> InputError:
    return InputError(f"{path}:{number}: malformed line, expected {expected}; got {line[:120]!r}")


def read_corpus(path) -> dict[str, str]:
    """JSONL rows {"pid": ..., "text": ...} (also accepts "docid"/"id" and "contents")."""
    corpus, seen = {}, {}
    expected = 'a JSON object with "pid" and "text"'
    for number, line in _lines(path, expected):
        try:
            row = json.loads(line)
            pid = row.get("pid", row.get("docid", row.get("id")))
            text = row.get("text", row.get("contents"))
            if pid is None or not isinstance(text, str):
                raise ValueError
        except (ValueError, AttributeError):
            raise _malformed(path, number, expected, line) from None
        _unique("passage id", str(pid), seen, path, number)
        corpus[str(pid)] = text
    return corpus


def read_queries(path) -> tuple[dict[str, str], dict[str, str | None]]:
    """JSONL rows {"qid", "text", "split"?} or TSV rows `qid<TAB>text`; returns texts and split labels."""
    texts, splits, seen = {}, {}, {}
    is_jsonl = str(path).endswith((".jsonl", ".json"))
    expected = 'a JSON object with "qid" and a non-empty "text"' if is_jsonl else "qid<TAB>text (text not empty)"
    for number, line in _lines(path, expected):
        try:
            if is_jsonl:
                row = json.loads(line)
                qid, text, split = row["qid"], row["text"], row.get("split")
            else:
                qid, text = line.split("\t")
                split = None
            if not isinstance(text, str) or not text.strip():
                raise ValueError
        except (ValueError, KeyError, TypeError, AttributeError):
            raise _malformed(path, number, expected, line) from None
        _unique("query id", str(qid), seen, path, number)
        texts[str(qid)], splits[str(qid)] = text, split
    return texts, splits


def read_qrels(path) -> dict[str, dict[str, int]]:
    """TREC qrels: `qid iteration pid relevance`."""
    qrels = defaultdict(dict)
    for number, line in _lines(path, "TREC qrels 'qid 0 pid relevance'"):
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
    for number, line in _lines(path, "TREC run 'qid Q0 pid rank score tag'"):
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
    for number, line in _lines(path, "qid<TAB>positive pid<TAB>negative pid"):
        parts = line.split("\t")
        if len(parts) != 3 or not all(p.strip() for p in parts):
            raise _malformed(path, number, "qid<TAB>positive pid<TAB>negative pid", line)
        triples.append(tuple(p.strip() for p in parts))
    return triples


def ranked(scores: dict[str, float]) -> list[tuple[str, float]]:
    """A query's (pid, score) best first, as trec_eval ranks them: by score, descending, and equal scores by pid
    in descending strcmp order (trec_eval's comp_sim_docno; Python's str order is strcmp's on UTF-8 bytes).
    The one tie rule: run files, cut-offs and every measure follow it."""
    return sorted(scores.items(), key=lambda item: (item[1], item[0]), reverse=True)


def write_run(run: dict[str, dict[str, float]], path, tag: str) -> None:
    """Write a TREC run, each query's passages in `ranked` order. Scores are written exactly (shortest repr), so
    rounding makes no new ties and the file ranks as the run it came from."""
    _write_whole(path, (
        f"{qid} Q0 {pid} {rank} {float(score)!r} {tag}\n"
        for qid, scores in run.items()
        for rank, (pid, score) in enumerate(ranked(scores), start=1)
    ))


def write_qrels(qrels: dict[str, dict[str, int]], path) -> None:
    """Write TREC qrels `qid 0 pid relevance`."""
    _write_whole(path, (f"{q} 0 {p} {rel}\n" for q, judged in qrels.items() for p, rel in judged.items()))


def _write_whole(path, lines) -> None:
    """Write `lines` under a temporary name renamed at the end: a file with the final name is always whole."""
    write_atomic(path, lambda handle: handle.writelines(lines))


def top_k(run: dict[str, dict[str, float]], depth: int) -> dict[str, dict[str, float]]:
    """Each query's `depth` best passages, in `ranked` order (so a measure @depth sees what it would see in the
    whole run)."""
    return {qid: dict(ranked(scores)[:depth]) for qid, scores in run.items()}
