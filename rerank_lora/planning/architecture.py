"""A model's architecture sizes and what follows from them: the backbone's parameter counts (embedding and
non-embedding: the backbone is `AutoModel`, the transformer without an LM head) and the shapes of the
projections LoRA adapts. The sizes are the published config.json numbers under the model config's `config:`
key (tiny models are built from them; hub and GGUF models carry them for the plan)."""

from dataclasses import dataclass

from rerank_lora.errors import InputError

FAMILIES = ("llama", "mistral", "gpt_neox")
REQUIRED = ("hidden_size", "intermediate_size", "num_hidden_layers", "num_attention_heads")
SMOLLM2_VOCAB = 49152  # the tokenizer the tiny models borrow


@dataclass(frozen=True)
class Architecture:
    family: str
    hidden: int
    intermediate: int
    layers: int
    heads: int
    kv_heads: int
    head_dim: int
    vocab: int

    @property
    def attention_width(self) -> int:
        """d_attn: the width of the queries (heads x head_dim)."""
        return self.heads * self.head_dim


def architecture(model: dict, vocab: int | None = None) -> Architecture:
    """The sizes of the `model` config group (a plain dict); `vocab` where config.json gives none (tiny models
    take their tokenizer's)."""
    sizes, family = dict(model.get("config") or {}), model.get("family")
    if family not in FAMILIES:
        raise InputError(f"model {model.get('name')}: family={family!r}; the plan knows {', '.join(FAMILIES)}")
    missing = [key for key in REQUIRED if key not in sizes]
    if missing:
        raise InputError(
            f"model {model.get('name')}: model.config lacks {', '.join(missing)}; give the architecture's "
            f"config.json sizes there ({', '.join(REQUIRED)}, num_key_value_heads, vocab_size)"
        )
    heads = sizes["num_attention_heads"]
    return Architecture(
        family=family,
        hidden=sizes["hidden_size"],
        intermediate=sizes["intermediate_size"],
        layers=model.get("num_layers") or sizes["num_hidden_layers"],  # model.num_layers: only the first K run
        heads=heads,
        kv_heads=sizes.get("num_key_value_heads") or heads,
        head_dim=sizes.get("head_dim") or sizes["hidden_size"] // heads,
        vocab=sizes.get("vocab_size") or vocab or SMOLLM2_VOCAB,
    )


def projections(arch: Architecture) -> dict[str, tuple[int, int]]:
    """Each linear projection of one layer as (in_features, out_features), by the family's module name."""
    h, i = arch.hidden, arch.intermediate
    if arch.family == "gpt_neox":
        return {"query_key_value": (h, 3 * h), "dense": (h, h), "dense_h_to_4h": (h, i), "dense_4h_to_h": (i, h)}
    q, kv = arch.attention_width, arch.kv_heads * arch.head_dim
    return {
        "q_proj": (h, q), "k_proj": (h, kv), "v_proj": (h, kv), "o_proj": (q, h),
        "gate_proj": (h, i), "up_proj": (h, i), "down_proj": (i, h),
    }


def layer_parameters(arch: Architecture) -> int:
    """One decoder layer: the projections' weights, GPT-NeoX's biases, and the norms (RMSNorm: h weights each;
    LayerNorm: h weights + h biases)."""
    shapes = projections(arch).values()
    weights = sum(n_in * n_out for n_in, n_out in shapes)
    if arch.family == "gpt_neox":
        return weights + sum(n_out for _, n_out in shapes) + 2 * 2 * arch.hidden
    return weights + 2 * arch.hidden


def non_embedding_parameters(arch: Architecture) -> int:
    """N of the 2N FLOPs per token rule: every layer plus the final norm."""
    final_norm = 2 * arch.hidden if arch.family == "gpt_neox" else arch.hidden
    return arch.layers * layer_parameters(arch) + final_norm


def embedding_parameters(arch: Architecture) -> int:
    return arch.vocab * arch.hidden


def lora_parameters(arch: Architecture, rank: int, targets: list[str], layers: list | None) -> int:
    """LoRA's A (rank x in) and B (out x rank) on each targeted projection of each adapted layer."""
    shapes = projections(arch)
    unknown = [name for name in targets if name not in shapes]
    if unknown:
        raise InputError(f"targets: {unknown} are not projections of a {arch.family} model; accepted: {list(shapes)}")
    adapted = arch.layers if layers is None else len(set(layers))
    return adapted * sum(rank * (shapes[name][0] + shapes[name][1]) for name in targets)
