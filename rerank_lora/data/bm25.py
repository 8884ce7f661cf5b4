"""Lexical hard negatives: BM25 (k1 0.9, b 0.4, Anserini's defaults) over the training passages, so a training
query's negatives can be the pool's passages that share its words instead of random ones. The pool is small (the
training queries' own passages), so a plain inverted index in memory is enough."""

import math
import re
from collections import Counter, defaultdict

WORD = re.compile(r"\w+")


def words(text: str) -> list[str]:
    return WORD.findall(text.lower())


class BM25:
    def __init__(self, passages: dict[str, str], k1: float = 0.9, b: float = 0.4):
        self.postings: dict[str, list[tuple[str, int]]] = defaultdict(list)
        lengths = {}
        for pid, text in passages.items():
            counts = Counter(words(text))
            lengths[pid] = sum(counts.values())
            for word, count in counts.items():
                self.postings[word].append((pid, count))
        average = sum(lengths.values()) / max(1, len(lengths))
        self.norm = {pid: k1 * (1 - b + b * length / average) for pid, length in lengths.items()}
        self.k1, self.total = k1, len(passages)

    def top(self, query: str, k: int, excluded: set[str] | frozenset[str] = frozenset()) -> list[str]:
        """The k best passage ids for `query` (ties by id), best first, none of them in `excluded` (which still
        count in the index's statistics)."""
        scores: dict[str, float] = defaultdict(float)
        for word in set(words(query)):
            postings = self.postings.get(word, [])
            idf = math.log(1 + (self.total - len(postings) + 0.5) / (len(postings) + 0.5))
            for pid, count in postings:
                scores[pid] += idf * count * (self.k1 + 1) / (count + self.norm[pid])
        kept = [pid for pid in scores if pid not in excluded]
        return sorted(kept, key=lambda pid: (-scores[pid], pid))[:k]
