"""Turning (query, passage) texts into `query: {q} document: {d}</s>` token ids, and padding them; a bounded
cache of token ids for training, where texts are tokenised when a group first needs them.

For data=msmarco, a Tevatron passage's text already starts with its title (data/tevatron.py), so a pair reads
`query: {q} document: {title} {passage}` as in Tevatron's RankLLaMA recipe."""

from collections import OrderedDict

import torch


class PairEncoder:
    """Tokenizes queries and passages; a pair is their ids joined, cut to max_length, then EOS.
    Cutting keeps the query whole and shortens the passage."""

    def __init__(self, tokenizer, max_length: int):
        self.tokenizer, self.max_length = tokenizer, max_length

    def queries(self, texts: list[str]) -> list[list[int]]:
        return self.tokenizer([f"query: {t}" for t in texts], truncation=True, max_length=self.max_length // 2)[
            "input_ids"
        ]

    def passages(self, texts: list[str]) -> list[list[int]]:
        return self.tokenizer(
            [f" document: {t}" for t in texts], add_special_tokens=False, truncation=True, max_length=self.max_length
        )["input_ids"]

    def join(self, query_ids: list[int], passage_ids: list[int]) -> list[int]:
        return (query_ids + passage_ids)[: self.max_length - 1] + [self.tokenizer.eos_token_id]


class TokenCache:
    """Token ids by key (a query or passage id), tokenised on first use by `encode` (one call for all the
    misses of a lookup), keeping the `size` most recently used. Ids depend only on the text, so the cache
    changes speed, never results."""

    def __init__(self, encode, size: int):
        self.encode, self.size, self.ids = encode, size, OrderedDict()

    def get(self, items: list[tuple[str, str]]) -> list[list[int]]:
        """Token ids of each (key, text) of `items`, in order."""
        misses = list(dict.fromkeys((k, t) for k, t in items if k not in self.ids))
        for (key, _), ids in zip(misses, self.encode([t for _, t in misses]) if misses else []):
            self.ids[key] = ids
        found = []
        for key, _ in items:
            self.ids.move_to_end(key)
            found.append(self.ids[key])
        while len(self.ids) > self.size:
            self.ids.popitem(last=False)
        return found


def pad(sequences: list[list[int]], pad_id: int, length: int | None = None) -> dict[str, torch.Tensor]:
    """Right-pad to `length`, or to the longest sequence when None."""
    length = length or max(len(s) for s in sequences)
    ids = torch.full((len(sequences), length), pad_id, dtype=torch.long)
    mask = torch.zeros((len(sequences), length), dtype=torch.long)
    for row, seq in enumerate(sequences):
        ids[row, : len(seq)] = torch.tensor(seq, dtype=torch.long)
        mask[row, : len(seq)] = 1
    return {"input_ids": ids, "attention_mask": mask}
