"""One attention head's share of a LoRA update, and masking a LoRA module down to the shares of chosen heads.

A LoRA module adds scaling·B·A to its projection's weight W (out x in). The share of query head h is a slice of it:
- q_proj: the rows producing head h's queries;
- k_proj, v_proj: the rows of the KV head h reads (with grouped KV, a KV head is shared by the query heads of its
  group: h // (heads / kv_heads)), so keeping one query head keeps its group's shared key/value update;
- query_key_value (GPT-NeoX): q, k and v fused, interleaved per head (transformers views its output as
  (heads, 3·head_dim) and chunks it into q, k, v), so head h owns rows h·3·head_dim .. (h+1)·3·head_dim;
- o_proj, dense (GPT-NeoX): the columns reading head h's output.
Rows of B·A are rows of B, columns of B·A are columns of A: masking zeroes the other rows of B (or columns of A)
for a while and copies the originals back bit for bit, on the merged path and the unmerged one alike.
"""

from contextlib import contextmanager
from dataclasses import dataclass

import torch

from rerank_lora.model.lora import base_model

# each attention projection's slicing rule (projection names as in conf/model/*.yaml modules.attn)
ROLES = {
    "q_proj": "query",
    "k_proj": "key_value",
    "v_proj": "key_value",
    "o_proj": "output",
    "query_key_value": "fused",
    "dense": "output",
}


@dataclass(frozen=True)
class HeadLayout:
    heads: int
    kv_heads: int
    head_dim: int

    @classmethod
    def of(cls, backbone) -> "HeadLayout":
        config = base_model(backbone).config
        heads = config.num_attention_heads
        head_dim = getattr(config, "head_dim", None) or config.hidden_size // heads
        return cls(heads, getattr(config, "num_key_value_heads", None) or heads, head_dim)

    def span(self, index: int, width: int | None = None) -> range:
        width = width or self.head_dim
        return range(index * width, (index + 1) * width)

    def kv_head(self, head: int) -> int:
        return head // (self.heads // self.kv_heads)

    def slice(self, projection: str, heads) -> tuple[str, list[int]]:
        """('rows' or 'columns', the indices) of `projection`'s update that belong to the query heads `heads`."""
        role = ROLES.get(projection)
        if role is None:
            raise ValueError(f"no head layout for projection {projection!r}; known: {', '.join(ROLES)}")
        if role == "query":
            return "rows", [i for h in sorted(heads) for i in self.span(h)]
        if role == "key_value":
            return "rows", [i for kv in sorted({self.kv_head(h) for h in heads}) for i in self.span(kv)]
        if role == "fused":
            return "rows", [i for h in sorted(heads) for i in self.span(h, 3 * self.head_dim)]
        return "columns", [i for h in sorted(heads) for i in self.span(h)]


def _checked_size(module, projection: str, layout: HeadLayout, axis: str) -> int:
    size = module.out_features if axis == "rows" else module.in_features
    expected = {"query": layout.heads, "key_value": layout.kv_heads, "fused": 3 * layout.heads, "output": layout.heads}
    if size != expected[ROLES[projection]] * layout.head_dim:
        raise ValueError(f"{projection}: {axis} {size} do not match the head layout {layout}")
    return size


@contextmanager
def masked(module, projection: str, layout: HeadLayout, heads):
    """`module`'s LoRA update cut down to the shares of the query heads `heads`; its factors restored on exit."""
    axis, kept = layout.slice(projection, heads)
    size = _checked_size(module, projection, layout, axis)
    dropped = torch.ones(size, dtype=torch.bool)
    dropped[kept] = False
    factors = [module.lora_B[a] if axis == "rows" else module.lora_A[a] for a in module.lora_A]
    if len(getattr(module, "lora_magnitude_vector", ())):
        raise ValueError(f"{projection}: DoRA's magnitude is not split by head")
    if axis == "columns" and any(f.bias is not None for f in module.lora_B.values()):
        raise ValueError(f"{projection}: a LoRA bias is not split by head")
    saved = [(p, p.data.clone()) for f in factors for p in f.parameters()]
    try:
        with torch.no_grad():
            for factor in factors:
                if axis == "rows":
                    factor.weight[dropped.to(factor.weight.device)] = 0
                    if factor.bias is not None:
                        factor.bias[dropped.to(factor.bias.device)] = 0
                else:
                    factor.weight[:, dropped.to(factor.weight.device)] = 0
        yield
    finally:
        for param, original in saved:
            param.data.copy_(original)
