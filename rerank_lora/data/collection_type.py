"""The Collection type: a whole reranking collection in memory (passages, queries with their split labels,
qrels, first-stage candidates, training triples), whichever loader built it."""

from dataclasses import dataclass, field


@dataclass
class Collection:
    """A whole reranking collection; ids are strings."""

    corpus: dict[str, str]
    queries: dict[str, str]
    query_splits: dict[str, str | None]
    qrels: dict[str, dict[str, int]]
    candidates: dict[str, dict[str, float]]
    triples: list[tuple[str, str, str]] = field(default_factory=list)

    def split_queries(self, split: str) -> list[str]:
        """Queries labelled `split`; an unlabelled query (TSV queries) belongs to every split."""
        return [qid for qid, label in self.query_splits.items() if label in (split, None)]
