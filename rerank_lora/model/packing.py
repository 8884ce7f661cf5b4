"""Packed training batches: a batch's pairs laid end to end in one row, so that the projections and MLPs (about
nine tenths of a step's FLOPs) compute no padding at all; only attention sees the pairs one per row again.

It is an attention implementation registered with transformers under PACKED. Called with `padded_view` (the
row and column of every packed token in the padded batch), it scatters queries, keys and values into that padded
batch, runs SDPA causally (right padding: a real token's keys are all real), and gathers the real tokens back.
Called without (scoring, the instruments), it is SDPA with its usual mask, so only training takes the packed path.
"""

from dataclasses import dataclass

import torch
from transformers import AttentionInterface, AttentionMaskInterface
from transformers.integrations.sdpa_attention import sdpa_attention_forward
from transformers.masking_utils import sdpa_mask

from rerank_lora.errors import InputError

PACKED = "packed_sdpa"


@dataclass(frozen=True)
class PackedBatch:
    """A right-padded batch as one packed row: the backbone's inputs and each pair's last token in the row."""

    input_ids: torch.Tensor  # [1, tokens]
    position_ids: torch.Tensor  # [1, tokens]: each pair's own positions, from 0
    padded_view: tuple  # (rows, columns, pairs, longest): where each packed token sits in the padded batch
    last: torch.Tensor  # [pairs]: the index of each pair's last real token in the row

    @classmethod
    def of(cls, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> "PackedBatch":
        real = attention_mask.bool()
        rows, columns = real.nonzero(as_tuple=True)
        lengths = real.sum(dim=1)
        view = (rows, columns, input_ids.size(0), int(lengths.max()))
        return cls(input_ids[real].unsqueeze(0), columns.unsqueeze(0), view, lengths.cumsum(0) - 1)


def use_packing(backbone) -> None:
    """Make the backbone's attention PACKED (it must be SDPA: the packed path runs SDPA on the padded view)."""
    implementation = backbone.config._attn_implementation
    if implementation not in ("sdpa", PACKED):
        raise InputError(
            f"trainer.packed=true with model.attn_implementation={implementation!r}; accepted: sdpa, "
            "or trainer.packed=false"
        )
    AttentionInterface.register(PACKED, packed_attention)
    AttentionMaskInterface.register(PACKED, _mask)
    backbone.set_attn_implementation(PACKED)


def packed_attention(module, query, key, value, attention_mask, padded_view=None, sliding_window=None, **kwargs):
    """SDPA over `padded_view` when given (query, key, value: [1, heads, tokens, dim]), else plain SDPA."""
    if padded_view is None:
        return sdpa_attention_forward(module, query, key, value, attention_mask, sliding_window=sliding_window, **kwargs)
    rows, columns, pairs, longest = padded_view
    if sliding_window is not None and longest > sliding_window:
        raise InputError(f"a packed pair of {longest} tokens is longer than the model's sliding window ({sliding_window})")

    def padded(states: torch.Tensor) -> torch.Tensor:  # [1, heads, tokens, dim] -> [pairs, heads, longest, dim]
        tokens = states[0].transpose(0, 1)
        batch = tokens.new_zeros(pairs, longest, *tokens.shape[1:])
        return batch.index_put((rows, columns), tokens).transpose(1, 2)

    output, _ = sdpa_attention_forward(module, padded(query), padded(key), padded(value), None, is_causal=True, **kwargs)
    return output[rows, columns].unsqueeze(0), None  # [pairs, longest, heads, dim] -> [1, tokens, heads, dim]


def _mask(*, attention_mask=None, **kwargs):
    """No mask for a packed row (its attention builds the padded view); SDPA's own for a padded batch."""
    return None if attention_mask is None else sdpa_mask(attention_mask=attention_mask, **kwargs)
