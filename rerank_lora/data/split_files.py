"""An eval split's files on local disk (data.splits.NAME.files): a folder in the shipped mini set's layout,
`corpus.jsonl`, `queries.jsonl` (or `queries.tsv`), `qrels.tsv` and `candidates.tsv` (a TREC run), read once
per process however many splits share it (the shipped set holds DL19 as label `dev` and DL20 as `test`)."""

import functools
from dataclasses import dataclass
from pathlib import Path

from rerank_lora.data.trec_files import read_corpus, read_qrels, read_queries, read_run
from rerank_lora.errors import InputError

FILES = ("corpus.jsonl", "queries.jsonl|queries.tsv", "qrels.tsv", "candidates.tsv")


@dataclass(frozen=True)
class SplitFolder:
    corpus: dict[str, str]
    queries: dict[str, str]
    labels: dict[str, str | None]
    qrels: dict[str, dict[str, int]]
    candidates: dict[str, dict[str, float]]


@functools.lru_cache(maxsize=4)
def read_folder(folder: str) -> SplitFolder:
    """The files of `folder`; a missing one is named with the layout expected."""
    path = Path(folder).expanduser()
    queries_file = next((path / n for n in ("queries.jsonl", "queries.tsv") if (path / n).is_file()), None)
    missing = [n for n in ("corpus.jsonl", "qrels.tsv", "candidates.tsv") if not (path / n).is_file()]
    if queries_file is None or missing:
        absent = missing + ([] if queries_file else ["queries.jsonl|queries.tsv"])
        raise InputError(f"data.splits: files={folder} lacks {', '.join(absent)}; expected a folder holding {', '.join(FILES)}")
    queries, labels = read_queries(queries_file)
    return SplitFolder(read_corpus(path / "corpus.jsonl"), queries, labels, read_qrels(path / "qrels.tsv"),
                       read_run(path / "candidates.tsv"))
