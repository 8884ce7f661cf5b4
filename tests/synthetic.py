"""A synthetic reranking collection in data=trec's files: each query is a few rare words, its positive passage
holds those words among filler, every negative holds other rare words among the same filler. Relevance is
then readable only by matching the query's words in the passage, which a reranker has to learn."""

import json
import random
from pathlib import Path

# Single tokens in SmolLM2's tokenizer (the tiny models borrow it), each with its leading space.
RARE = ["zebra", "violin", "comet", "falcon", "cactus", "lantern", "glacier", "mango", "harbor", "pepper", "saddle",
        "tornado", "anchor", "candle", "dragon", "feather", "hammer", "kettle", "lemon", "marble", "nickel", "oyster",
        "panda", "quartz", "rocket"]
FILLER = ["the", "of", "and", "a", "to", "in", "is", "was", "for", "on", "with", "as", "by", "at", "from"]


class Writer:
    """The collection's rows as they are added; `save` writes them as data=trec's files."""

    def __init__(self, seed: int, words_a_query: int):
        self.rng, self.words = random.Random(seed), words_a_query
        self.corpus, self.queries, self.qrels, self.run, self.triples = {}, [], [], [], []

    def passage(self, rare: list[str]) -> str:
        words = [*rare, *self.rng.choices(FILLER, k=4)]
        self.rng.shuffle(words)
        pid = f"p{len(self.corpus)}"
        self.corpus[pid] = " ".join(words)
        return pid

    def query(self, qid: str, split: str) -> tuple[str, str, list[str]]:
        """A new query: its id, its positive passage's id, and the rare words it does not hold."""
        chosen = self.rng.sample(RARE, self.words)
        self.queries.append({"qid": qid, "text": " ".join(chosen), "split": split})
        positive = self.passage(chosen)
        self.qrels.append(f"{qid} 0 {positive} 1")
        return qid, positive, [w for w in RARE if w not in chosen]

    def negative(self, others: list[str]) -> str:
        return self.passage(self.rng.sample(others, self.words))

    def save(self, folder: Path) -> list[str]:
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "corpus.jsonl").write_text("".join(json.dumps({"pid": p, "text": t}) + "\n" for p, t in self.corpus.items()))
        (folder / "queries.jsonl").write_text("".join(json.dumps(q) + "\n" for q in self.queries))
        for name, rows in [("qrels.tsv", self.qrels), ("run.trec", self.run), ("triples.tsv", self.triples)]:
            (folder / name).write_text("".join(f"{row}\n" for row in rows))
        files = {"corpus": "corpus.jsonl", "queries": "queries.jsonl", "qrels": "qrels.tsv", "candidates": "run.trec",
                 "triples": "triples.tsv"}
        return ["data=trec", *(f"data.{key}={folder / name}" for key, name in files.items())]


def write_synthetic(folder: Path, train: int, test: int, candidates: int = 10, trained_test: int = 0, seed: int = 0,
                    words_a_query: int = 2) -> list[str]:
    """`train` training queries (a triple each), `test` queries of split `test` (their positive among
    candidates - 1 negatives, in a random first-stage order), the first `trained_test` of them with a triple too
    (training queries that are evaluation queries). Returns the data=trec overrides naming the files."""
    writer = Writer(seed, words_a_query)
    for number in range(train):
        qid, positive, others = writer.query(f"train{number}", "train")
        writer.triples.append(f"{qid}\t{positive}\t{writer.negative(others)}")
    for number in range(test):
        qid, positive, others = writer.query(f"test{number}", "test")
        pids = [positive, *(writer.negative(others) for _ in range(candidates - 1))]
        writer.rng.shuffle(pids)
        writer.run += [f"{qid} Q0 {pid} {rank} {candidates - rank} synthetic" for rank, pid in enumerate(pids, start=1)]
        if number < trained_test:
            writer.triples.append(f"{qid}\t{positive}\t{writer.negative(others)}")
    return writer.save(folder)
