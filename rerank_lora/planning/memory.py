"""Memory of one training cell on one device, in bytes.

- weights: every backbone parameter (embedding included) x bytes of model.dtype;
- LoRA + head: trainable parameters x 16 bytes (fp32 weight, gradient, Adam's two moments);
- activations of one micro-batch: b = queries_per_batch x group_size sequences of s = data.max_length tokens.
  Without recomputation, per layer Korthikanti et al. 2022 (eq. 1): s·b·h·(34 + 5·a·s/h) bytes at 16 bits,
  = attention 11·s·b·h + norms 4·s·b·h + MLP 19·s·b·h + scores 5·a·s²·b; here the MLP term follows the
  intermediate size i (GELU MLP: 3h + 4i, i.e. 19h at i = 4h; SwiGLU: 2h + 8i), the s² scores count only for
  eager attention (SDPA and flash kernels do not store them), each LoRA projection with dropout adds its dropped
  input and mask ((bytes + 1)·s·b·in), and 32-bit activations double the 16-bit bytes. With gradient
  checkpointing: each layer's input (s·b·h x bytes, Korthikanti's 2·s·b·h at 16 bits) plus one layer
  recomputed in full.
Evaluation (no gradients, eval_batch_size pairs) needs less than training and is not counted.
"""

from dataclasses import dataclass

from rerank_lora.planning.architecture import Architecture, embedding_parameters, non_embedding_parameters, projections

GB = 1e9
DTYPE_BYTES = {"float32": 4, "float16": 2, "bfloat16": 2}
OPTIMIZER_BYTES = 16


@dataclass(frozen=True)
class Memory:
    weights: float
    lora_state: float
    activations: float  # without gradient checkpointing
    activations_checkpointed: float

    def total(self, gradient_checkpointing: bool) -> float:
        return self.weights + self.lora_state + (self.activations_checkpointed if gradient_checkpointing else self.activations)


def activation_bytes(precision) -> int:
    """Bytes of one activation: 2 under 16-bit precision (bf16-mixed, 16-mixed, bf16-true), else 4."""
    return 2 if "16" in str(precision) else 4


def layer_activations(arch: Architecture, s: int, b: int, eager: bool) -> float:
    """Korthikanti et al.'s bytes of one layer at 16 bits, with the MLP term of this family."""
    h, i = arch.hidden, arch.intermediate
    mlp = 3 * h + 4 * i if arch.family == "gpt_neox" else 2 * h + 8 * i
    scores = 5 * arch.heads * s if eager else 0
    return s * b * (15 * h + mlp + scores)


def lora_dropout_activations(arch: Architecture, targets: list[str], s: int, b: int, width: int, dropout: float) -> float:
    """Each adapted projection's dropped input (width bytes) and its dropout mask (1 byte), per layer."""
    if not dropout:
        return 0.0
    shapes = projections(arch)
    return sum((width + 1) * s * b * shapes[name][0] for name in targets)


def cell_memory(arch: Architecture, cfg: dict, targets: list[str], trainable: int) -> Memory:
    """The memory of one cell's training from its composed config `cfg` (plain values)."""
    data, model, lora_cfg = cfg["data"], cfg["model"], cfg["lora"]
    width = activation_bytes(cfg["trainer"]["precision"])
    s, b = data["max_length"], data["queries_per_batch"] * data["group_size"]
    eager = model.get("attn_implementation") == "eager"
    layers = arch.layers if lora_cfg["layers"] is None else len(set(lora_cfg["layers"]))
    one_layer = layer_activations(arch, s, b, eager) * width / 2
    lora = lora_dropout_activations(arch, targets, s, b, width, lora_cfg["dropout"])
    full = arch.layers * one_layer + layers * lora
    checkpointed = arch.layers * s * b * arch.hidden * width + one_layer + lora
    weights = (non_embedding_parameters(arch) + embedding_parameters(arch)) * DTYPE_BYTES.get(str(model["dtype"]), 4)
    return Memory(weights, trainable * OPTIMIZER_BYTES, full, checkpointed)


def host_memory_gb() -> float:
    """This machine's RAM: the capacity a CPU cell has."""
    import os

    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / GB
