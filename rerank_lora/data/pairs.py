"""Turning (query, passage) texts into token ids by an input template (data.template), and padding them.

Each template but the project's own reproduces a reference's input to the token:

- `rerank_lora`: this project's own input (the default job's numbers are measured with it).
- `tevatron`: Tevatron's reranker (texttron/tevatron@dd06310, src/tevatron/reranker/dataset.py `format_pair` and
  collator.py): one string `{query_prefix} {query} {passage_prefix} {title} {passage}`, stripped, the title's
  hyphens made spaces and the title stripped first; tokenised with the tokenizer's special tokens, cut to max_length
  (max_length - 1 with `append_eos`), then EOS when `append_eos`.
- `rankllama_v1`: RankLLaMA v1's input (texttron/tevatron@0545746, examples/rankllama/data.py, since removed).

`rankllama_v1`, exactly: q = encode('query: ' + query) without special tokens, cut to 32 tokens; p = encode('document: '
+ title + ' ' + text) without special tokens (the title as given, not cleaned), cut to max_length - 32 - 3; then
`prepare_for_model([bos] + q, [bos] + p, truncation='only_first', max_length=max_length)`. prepare_for_model adds
the tokenizer's pair special tokens (add_special_tokens defaults to True): Llama's `build_inputs_with_special_tokens`
puts BOS before each sequence, so a Llama pair is [bos, bos, *q, bos, bos, *p]; a tokenizer whose pair rule adds
nothing (SmolLM2, GPT-NeoX) gives [bos, *q, bos, *p]. When the whole is longer than max_length, the first sequence
([bos] + q) loses its last tokens (only_first). No EOS. transformers 5 has no prepare_for_model on fast tokenizers,
so the pair rule is read off the tokenizer's own pair encoding (`pair_specials`).

A passage is (id, text) or (id, text, title): the title travels only where the source has titles (data=msmarco's
training rows with data.titles). `rerank_lora` reads a titled passage as `{title} {text}` (title cleaned as
Tevatron cleans it); `tevatron` applies Tevatron's title rule; `rankllama_v1` the legacy one.

Token ids are cached by the text actually tokenised, so they never depend on what was read first.
"""

from collections import OrderedDict
from dataclasses import dataclass

import torch

from rerank_lora.errors import InputError

TEMPLATES = ("rerank_lora", "tevatron", "rankllama_v1")
RETIRED = {  # old template names: what replaces them
    "rankllama": "tevatron (with data.query_prefix='query: ' data.passage_prefix='document: ', as recipe=rankllama) "
    "for Tevatron-trained adapters and the paper's, or rankllama_v1 for castorini/rankllama-v1-7b-lora-passage",
}
Query = tuple[str, str]  # (id, text)
Passage = tuple  # (id, text) or (id, text, title)
V1_QUERY_TOKENS = 32  # RankLLaMA v1's q_max_len


@dataclass(frozen=True)
class TemplateOptions:
    """The `tevatron` template's options (data.query_prefix, data.passage_prefix, data.append_eos), with
    Tevatron's defaults; the other templates ignore them."""

    query_prefix: str = ""
    passage_prefix: str = ""
    append_eos: bool = False


def check_template(template, key: str = "template") -> str:
    """`template` if it is one of TEMPLATES, else one InputError (naming the replacement of a retired name)."""
    if template in RETIRED:
        raise InputError(f"{key}={template!r} is retired (it reproduced no reference code); use {RETIRED[template]}")
    if template not in TEMPLATES:
        raise InputError(f"{key}={template!r}; accepted: {', '.join(TEMPLATES)}")
    return template


def passage_title(passage: Passage) -> str:
    return passage[2] if len(passage) > 2 else ""


def clean_title(title) -> str:
    """A passage title as Tevatron's reranker writes it into the pair: hyphens as spaces, trimmed."""
    return (title or "").replace("-", " ").strip()


def tevatron_string(query: str, title: str, passage: str, query_prefix: str = "", passage_prefix: str = "") -> str:
    """The one string Tevatron's reranker tokenises for a pair."""
    return f"{query_prefix} {query} {passage_prefix} {clean_title(title)} {passage}".strip()


def pair_encoder(
    tokenizer, max_length: int, template: str = "rerank_lora", cache: tuple[int, int] = (4096, 16384),
    options: TemplateOptions | None = None,
):
    """The encoder of `template`; `cache`: how many query and passage token ids it keeps."""
    check_template(template)
    options = options or TemplateOptions()

    def make(length: int, sizes: tuple[int, int]):
        if template == "tevatron":
            return TevatronEncoder(tokenizer, length, options)
        if template == "rankllama_v1":
            return RankLlamaV1Encoder(tokenizer, length, *sizes)
        return PairEncoder(tokenizer, length, *sizes)

    need = len(make(1 << 16, (1, 1)).encode([("", "q")], [("", "d")])[0])  # fixed tokens, EOS, a token of each text
    if max_length < need:
        raise InputError(
            f"data.max_length={max_length} is shorter than the {template} template needs with this tokenizer; "
            f"accepted: >= {need} (its fixed tokens, EOS, and at least one token of query and passage)"
        )
    return make(max_length, cache)


class PairEncoder:
    """The rerank_lora template: `query: {q}` tokenised alone (with the tokenizer's start token, cut to half of
    max_length) then ` document: {d}` without special tokens, joined, cut to max_length - 1, then EOS."""

    def __init__(self, tokenizer, max_length: int, cached_queries: int, cached_passages: int):
        self.tokenizer, self.max_length = tokenizer, max_length
        self.queries = TokenCache(self._queries, cached_queries)
        self.passages = TokenCache(self._passages, cached_passages)

    def encode(self, queries: list[Query], passages: list[Passage]) -> list[list[int]]:
        """Token ids of each pair (queries[i], passages[i])."""
        query_ids = self.queries.get([f"query: {q}" for _, q in queries])
        passage_ids = self.passages.get([f" document: {self._text(p)}" for p in passages])
        return [self.join(q, p) for q, p in zip(query_ids, passage_ids)]

    @staticmethod
    def _text(passage: Passage) -> str:
        title = clean_title(passage_title(passage))
        return f"{title} {passage[1]}" if title else passage[1]

    def _queries(self, texts: list[str]) -> list[list[int]]:
        return self.tokenizer(texts, truncation=True, max_length=self.max_length // 2)["input_ids"]

    def _passages(self, texts: list[str]) -> list[list[int]]:
        return self.tokenizer(texts, add_special_tokens=False, truncation=True, max_length=self.max_length)["input_ids"]

    def join(self, query_ids: list[int], passage_ids: list[int]) -> list[int]:
        return (query_ids + passage_ids)[: self.max_length - 1] + [self.tokenizer.eos_token_id]


class TevatronEncoder:
    """The tevatron template (see the module's table)."""

    def __init__(self, tokenizer, max_length: int, options: TemplateOptions):
        self.tokenizer, self.max_length, self.options = tokenizer, max_length, options

    def encode(self, queries: list[Query], passages: list[Passage]) -> list[list[int]]:
        if not queries:
            return []
        opts = self.options
        strings = [
            tevatron_string(q, passage_title(p), p[1], opts.query_prefix, opts.passage_prefix)
            for (_, q), p in zip(queries, passages)
        ]
        length = self.max_length - 1 if opts.append_eos else self.max_length
        ids = self.tokenizer(strings, truncation=True, max_length=length, add_special_tokens=True)["input_ids"]
        return [row + [self.tokenizer.eos_token_id] for row in ids] if opts.append_eos else ids


class RankLlamaV1Encoder:
    """The rankllama_v1 template (see the module's docstring)."""

    def __init__(self, tokenizer, max_length: int, cached_queries: int, cached_passages: int):
        self.tokenizer, self.max_length = tokenizer, max_length
        self.before, self.between, self.after = pair_specials(tokenizer)
        self.bos = [tokenizer.bos_token_id] if tokenizer.bos_token_id is not None else []
        self.queries = TokenCache(lambda texts: self._cut(texts, V1_QUERY_TOKENS), cached_queries)
        self.passages = TokenCache(lambda texts: self._cut(texts, max(1, max_length - V1_QUERY_TOKENS - 3)), cached_passages)

    def _cut(self, texts: list[str], length: int) -> list[list[int]]:
        return self.tokenizer(texts, add_special_tokens=False, truncation=True, max_length=length)["input_ids"]

    def encode(self, queries: list[Query], passages: list[Passage]) -> list[list[int]]:
        query_ids = self.queries.get([f"query: {q}" for _, q in queries])
        passage_ids = self.passages.get([f"document: {passage_title(p)} {p[1]}" for p in passages])
        return [self.join(self.bos + q, self.bos + p) for q, p in zip(query_ids, passage_ids)]

    def join(self, first: list[int], second: list[int]) -> list[int]:
        specials = len(self.before) + len(self.between) + len(self.after)
        excess = len(first) + len(second) + specials - self.max_length
        if 0 < excess < len(first):  # truncation='only_first' (which cuts nothing when it cannot cut enough)
            first = first[: len(first) - excess]
        return self.before + first + self.between + second + self.after


def pair_specials(tokenizer) -> tuple[list[int], list[int], list[int]]:
    """The special tokens the tokenizer's pair encoding puts before, between and after its two sequences."""
    first, second = (tokenizer(t, add_special_tokens=False)["input_ids"] for t in ("a", "b"))
    pair = tokenizer("a", "b")["input_ids"]
    start = _find(pair, first, 0)
    middle = _find(pair, second, start + len(first))
    if start < 0 or middle < 0:
        raise InputError(f"{type(tokenizer).__name__}: its pair encoding does not hold its two sequences' own tokens")
    return pair[:start], pair[start + len(first) : middle], pair[middle + len(second) :]


def _find(ids: list[int], part: list[int], start: int) -> int:
    return next((i for i in range(start, len(ids) - len(part) + 1) if ids[i : i + len(part)] == part), -1)


class TokenCache:
    """Token ids by the text tokenised, tokenised on first use by `encode` (one call for all the misses of a
    lookup), keeping the `size` most recently used: the cache changes speed, never results."""

    def __init__(self, encode, size: int):
        self.encode, self.size, self.ids = encode, size, OrderedDict()

    def get(self, texts: list[str]) -> list[list[int]]:
        """Token ids of each text of `texts`, in order."""
        misses = list(dict.fromkeys(t for t in texts if t not in self.ids))
        for text, ids in zip(misses, self.encode(misses) if misses else []):
            self.ids[text] = ids
        found = []
        for text in texts:
            self.ids.move_to_end(text)
            found.append(self.ids[text])
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
