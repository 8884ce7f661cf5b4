"""Turning (query, passage) texts into token ids by an input template, and padding them.

Two templates (data.template):
- rerank_lora: `query: {q}` tokenised alone (with the tokenizer's start token, cut to half of max_length) then
  ` document: {d}` without special tokens, joined, cut to max_length - 1, then EOS. Query and passage ids are
  kept in bounded caches, so a text met again is not tokenised again.
- rankllama: RankLLaMA's and Tevatron's input: the tokenizer's own pair encoding of `query: {q}` and
  `document: {d}` (its special tokens between and around them), cut to max_length - 1, then EOS.

For data=msmarco, a Tevatron passage's text already starts with its title (data/tevatron.py), so a pair reads
`document: {title} {passage}` as in Tevatron's RankLLaMA recipe."""

from collections import OrderedDict

import torch

from rerank_lora.errors import InputError

TEMPLATES = ("rerank_lora", "rankllama")
Text = tuple[str, str]  # (id, text): ids key the caches, so one id must always name one text


def pair_encoder(tokenizer, max_length: int, template: str = "rerank_lora", cache: tuple[int, int] = (4096, 16384)):
    """The encoder of `template`; `cache`: how many query and passage token ids the rerank_lora one keeps."""
    if template not in TEMPLATES:
        raise InputError(f"template={template!r}; accepted: {', '.join(TEMPLATES)}")
    def make(length: int, sizes: tuple[int, int]):
        return TokenizerPairEncoder(tokenizer, length) if template == "rankllama" else PairEncoder(tokenizer, length, *sizes)

    need = len(make(1 << 16, (1, 1)).encode([("", "q")], [("", "d")])[0])  # fixed tokens, EOS, a token of each text
    if max_length < need:
        raise InputError(
            f"data.max_length={max_length} is shorter than the {template} template needs with this tokenizer; "
            f"accepted: >= {need} (its fixed tokens, EOS, and at least one token of query and passage)"
        )
    return make(max_length, cache)


class PairEncoder:
    """The rerank_lora template. Cutting keeps the query whole (up to half of max_length) and shortens the
    passage."""

    def __init__(self, tokenizer, max_length: int, cached_queries: int, cached_passages: int):
        self.tokenizer, self.max_length = tokenizer, max_length
        self.queries = TokenCache(self._queries, cached_queries)
        self.passages = TokenCache(self._passages, cached_passages)

    def encode(self, queries: list[Text], passages: list[Text]) -> list[list[int]]:
        """Token ids of each pair (queries[i], passages[i])."""
        return [self.join(q, p) for q, p in zip(self.queries.get(queries), self.passages.get(passages))]

    def _queries(self, texts: list[str]) -> list[list[int]]:
        return self.tokenizer([f"query: {t}" for t in texts], truncation=True, max_length=self.max_length // 2)[
            "input_ids"
        ]

    def _passages(self, texts: list[str]) -> list[list[int]]:
        return self.tokenizer(
            [f" document: {t}" for t in texts], add_special_tokens=False, truncation=True, max_length=self.max_length
        )["input_ids"]

    def join(self, query_ids: list[int], passage_ids: list[int]) -> list[int]:
        return (query_ids + passage_ids)[: self.max_length - 1] + [self.tokenizer.eos_token_id]


class TokenizerPairEncoder:
    """The rankllama template: the tokenizer encodes each pair as a pair (Tevatron truncates longest first)."""

    def __init__(self, tokenizer, max_length: int):
        self.tokenizer, self.max_length = tokenizer, max_length

    def encode(self, queries: list[Text], passages: list[Text]) -> list[list[int]]:
        if not queries:
            return []
        ids = self.tokenizer(
            [f"query: {q}" for _, q in queries],
            [f"document: {p}" for _, p in passages],
            truncation=True,
            max_length=self.max_length - 1,
        )["input_ids"]
        return [pair + [self.tokenizer.eos_token_id] for pair in ids]


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
