"""What each token of a pair is, for the attention features: where the query's and the passage's own tokens sit in
the pair's ids (whatever the template put around them), each token's IDF in the job's corpus, and which passage
tokens repeat a query term.

The spans are found, not assumed: a text's tokens are searched in the pair's ids (tokenised alone, with and without
a leading space, as a template may put it after a prefix), and a match runs as long as the ids agree, so a query or
passage the template cut short still matches. A pair where a text is not found has no roles (the features skip it
and count it)."""

import math
from collections import Counter
from dataclasses import dataclass
from functools import lru_cache

SPACE_MARKS = "Ġ▁ "  # byte-level BPE's and sentencepiece's marks of a leading space
MIN_MATCH = 2  # tokens a match must hold (fewer: the text's first token could be anywhere)


@dataclass(frozen=True)
class PairRoles:
    query: range  # positions of the query's tokens in the pair's ids
    passage: range  # and of the passage's


def variants(tokenizer, text: str) -> list[list[int]]:
    """The text's token ids alone, and after a space."""
    return [tokenizer(t, add_special_tokens=False)["input_ids"] for t in (text, " " + text)]


def longest_match(ids: list[int], candidates: list[list[int]], start: int) -> range | None:
    """The longest run of `ids` from `start` on that equals the beginning of one of `candidates`."""
    best = None
    for tokens in candidates:
        need = min(MIN_MATCH, len(tokens))
        for at in range(start, len(ids) - need + 1):
            if ids[at : at + need] != tokens[:need]:
                continue
            end = at + need
            while end < len(ids) and end - at < len(tokens) and ids[end] == tokens[end - at]:
                end += 1
            if best is None or end - at > len(best):
                best = range(at, end)
            break
    return best


def pair_roles(tokenizer, ids: list[int], query: str, passage: str) -> PairRoles | None:
    """The query's span, then the passage's after it (None: either not found)."""
    query_span = longest_match(ids, variants(tokenizer, query), 0)
    if query_span is None:
        return None
    passage_span = longest_match(ids, variants(tokenizer, passage), query_span.stop)
    return None if passage_span is None else PairRoles(query_span, passage_span)


def token_idf(tokenizer, texts) -> dict[int, float]:
    """ln(N / df) of each token id over `texts` (a corpus's passages), df counting a passage once."""
    texts = list(texts)
    counts: Counter = Counter()
    for start in range(0, len(texts), 1024):
        for ids in tokenizer(texts[start : start + 1024], add_special_tokens=False)["input_ids"]:
            counts.update(set(ids))
    return {token: math.log(len(texts) / df) for token, df in counts.items()}


@lru_cache(maxsize=1 << 18)
def term(tokenizer, token_id: int) -> str:
    """A token as a term: its text without the leading-space mark, lower-cased; '' unless alphanumeric."""
    text = tokenizer.convert_ids_to_tokens(token_id).lstrip(SPACE_MARKS).lower()
    return text if text.isalnum() else ""


def query_term_matches(tokenizer, ids: list[int], roles: PairRoles) -> list[bool]:
    """For each passage token: is it, as a term, one of the query's terms (exact match)?"""
    query_terms = {term(tokenizer, ids[i]) for i in roles.query} - {""}
    return [term(tokenizer, ids[i]) in query_terms for i in roles.passage]
