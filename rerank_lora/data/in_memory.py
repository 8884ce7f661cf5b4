"""The Collection type: a reranking collection in memory (passages, queries with their split labels, qrels,
first-stage candidates, training triples), whichever loader built it; data=msmarco's training rows stay on
disk (`train_rows`, read a group at a time). A module of its own: collection.py's loaders import msmarco.py, which
builds one, so in collection.py it would close an import cycle."""

from dataclasses import dataclass, field


@dataclass
class Collection:
    """A whole reranking collection; ids are strings. `train_rows`, when set, is the training source read on
    demand (data/tevatron.py: TevatronRows) and the training queries are not among `queries`."""

    corpus: dict[str, str]
    queries: dict[str, str]
    query_splits: dict[str, str | None]
    qrels: dict[str, dict[str, int]]
    candidates: dict[str, dict[str, float]]
    triples: list[tuple[str, str, str]] = field(default_factory=list)
    train_rows: object | None = None

    def split_queries(self, split: str) -> list[str]:
        """Queries labelled `split`; an unlabelled query (TSV queries) belongs to every split."""
        return [qid for qid, label in self.query_splits.items() if label in (split, None)]
