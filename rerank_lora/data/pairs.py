"""Turning (query, passage) texts into `query: {q} document: {d}</s>` token ids, and padding them."""

import torch


class PairEncoder:
    """Tokenizes queries and passages once; a pair is their ids joined, cut to max_length, then EOS.
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


def pad(sequences: list[list[int]], pad_id: int, length: int | None = None) -> dict[str, torch.Tensor]:
    """Right-pad to `length`, or to the longest sequence when None."""
    length = length or max(len(s) for s in sequences)
    ids = torch.full((len(sequences), length), pad_id, dtype=torch.long)
    mask = torch.zeros((len(sequences), length), dtype=torch.long)
    for row, seq in enumerate(sequences):
        ids[row, : len(seq)] = torch.tensor(seq, dtype=torch.long)
        mask[row, : len(seq)] = 1
    return {"input_ids": ids, "attention_mask": mask}
