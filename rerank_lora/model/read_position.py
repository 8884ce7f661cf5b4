"""Where a pair's score is read: the one token whose last hidden state the head scores.

- `last_attended`: the last token the attention mask keeps (this project's `rerank_lora` template: its EOS).
- `last_not_pad`: transformers' sequence-classification rule, the last token whose id is not the classifier's
  `config.pad_token_id`, the rule Tevatron's reranker (and any AutoModelForSequenceClassification) scores by; used
  with the `tevatron` and `rankllama_v1` templates. Tevatron's train driver sets the pad id to the tokenizer's pad
  token, else its unk token; its rerank driver and RerankerModel.load to 0 when there is none. So where pad == EOS
  (SmolLM2; Llama 3 with pad set to EOS) and EOS is appended, the score is read at the token before the EOS.
  Only attended tokens count: Tevatron pads with that same id, so on its batches the two agree.
"""

from dataclasses import dataclass

import torch

LAST_ATTENDED, LAST_NOT_PAD = "last_attended", "last_not_pad"
CLASSIFIER_TEMPLATES = ("tevatron", "rankllama_v1")  # the templates of code that scores through a classifier


@dataclass(frozen=True)
class ReadPosition:
    rule: str = LAST_ATTENDED
    pad_id: int | None = None  # last_not_pad: the classifier's pad id

    def __post_init__(self):
        if self.rule not in (LAST_ATTENDED, LAST_NOT_PAD) or (self.rule == LAST_NOT_PAD) != (self.pad_id is not None):
            raise ValueError(f"read position {self.rule!r} with pad id {self.pad_id!r}; accepted: {LAST_ATTENDED} "
                             f"without a pad id, {LAST_NOT_PAD} with one")

    def index(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """[pairs]: the column of each right-padded row's read token."""
        keep = attention_mask.bool()
        if self.rule == LAST_NOT_PAD:
            keep = keep & (input_ids != self.pad_id)
        columns = torch.arange(input_ids.size(1), device=input_ids.device)
        return (columns * keep).argmax(dim=1)

    def to_json(self) -> dict:
        """The keys reranker.json holds it under."""
        return {"read_rule": self.rule, "read_pad_id": self.pad_id}

    @classmethod
    def from_json(cls, info: dict) -> "ReadPosition":
        """From reranker.json; a checkpoint written before it was recorded read the last attended token."""
        return cls(info.get("read_rule", LAST_ATTENDED), info.get("read_pad_id"))


def classifier_pad_id(tokenizer) -> int:
    """The pad id Tevatron's train driver gives the classifier: the tokenizer's own pad token, else its unk token,
    else 0 (its rerank driver's choice). `load_backbone` pads with EOS where a tokenizer has no pad token and notes
    the tokenizer's own (`own_pad_token_id`)."""
    own = getattr(tokenizer, "own_pad_token_id", tokenizer.pad_token_id)
    for candidate in (own, tokenizer.unk_token_id):
        if candidate is not None:
            return int(candidate)
    return 0


def read_position(template: str, tokenizer) -> ReadPosition:
    """The read position of a job with this template and tokenizer."""
    if template in CLASSIFIER_TEMPLATES:
        return ReadPosition(LAST_NOT_PAD, classifier_pad_id(tokenizer))
    return ReadPosition()
