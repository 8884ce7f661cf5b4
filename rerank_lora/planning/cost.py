"""FLOPs of a cell and its time on a device.

Forward FLOPs: 2·N per token computed (N = non-embedding parameters; batches are padded to their longest pair,
and padding is computed too), plus attention's quadratic term 4·L·d_attn·s² per sequence of padded length s
(QKᵀ and AV, computed in full under a padding mask; ~3% of the total for SmolLM2 at ~100 tokens, <1% for the 7-8B
models). A LoRA training step costs 2 forward-equivalents (the forward, and a backward that only propagates
activation gradients through the frozen weights; LoRA's own matrices are negligible), 3 with gradient
checkpointing (a second forward); scoring costs 1. Time = FLOPs / (peak x utilisation).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from rerank_lora.errors import InputError
from rerank_lora.planning.architecture import Architecture, non_embedding_parameters

if TYPE_CHECKING:  # the data side imports torch and Lightning: not needed to check the options
    from rerank_lora.planning.tokens import Tokens
    from rerank_lora.planning.workload import Workload


@dataclass(frozen=True)
class Gpu:
    name: str
    bf16_tflops: float  # dense peak
    memory_gb: float


GPUS = {gpu.name: gpu for gpu in (Gpu("H100", 989.0, 80.0), Gpu("H200", 989.0, 141.0), Gpu("A100", 312.0, 80.0))}


def gpu(name: str) -> Gpu:
    if str(name).upper() not in GPUS:
        raise InputError(f"gpu={name!r}; accepted: {', '.join(GPUS)}")
    return GPUS[str(name).upper()]


def step_passes(gradient_checkpointing: bool) -> int:
    """Forward-equivalents of one training token."""
    return 3 if gradient_checkpointing else 2


def forward_flops(arch: Architecture, tokens: Tokens) -> dict[str, float]:
    """One forward pass over `tokens`: the weights' matmuls and attention's quadratic term."""
    matmul = 2 * non_embedding_parameters(arch) * tokens.padded
    attention = 4 * arch.layers * arch.attention_width * tokens.square
    return {"matmul": matmul, "attention": attention}


@dataclass(frozen=True)
class Flops:
    train: float
    scoring: float
    train_matmul: float  # 2·N·T x passes, the attention term left out
    attention_share: float

    @property
    def total(self) -> float:
        return self.train + self.scoring


def cell_flops(arch: Architecture, work: Workload, gradient_checkpointing: bool) -> Flops:
    passes = step_passes(gradient_checkpointing)
    train, scoring = forward_flops(arch, work.train), forward_flops(arch, work.scoring)
    total = passes * sum(train.values()) + sum(scoring.values())
    attention = passes * train["attention"] + scoring["attention"]
    share = attention / total if total else 0.0
    return Flops(passes * sum(train.values()), sum(scoring.values()), passes * train["matmul"], share)


@dataclass(frozen=True)
class Rate:
    """FLOP/s of a device and the fractions of it that training and scoring reach, plus fixed costs."""

    device: str
    peak: float  # FLOP/s
    train_utilisation: float
    scoring_utilisation: float
    cell_overhead_s: float = 0.0  # model load, data, first-stage evaluation, logger: per cell
    startup_s: float = 0.0  # process start and imports: once per sweep (Hydra runs the cells in one process)

    def seconds(self, flops: Flops, world_size: int = 1) -> dict[str, float]:
        """Seconds of training and scoring on one device, the fixed overhead, the wall time when training is
        spread over `world_size` devices (rank 0 alone evaluates while the others wait), and the device-seconds
        that holds all of them."""
        train = flops.train / (self.peak * self.train_utilisation)
        scoring = flops.scoring / (self.peak * self.scoring_utilisation)
        wall = train / world_size + scoring + self.cell_overhead_s
        return {"train": train, "scoring": scoring, "overhead": self.cell_overhead_s, "wall": wall,
                "device": wall * world_size}


def gpu_rate(card: Gpu, utilisation: float, overhead_s: float) -> Rate:
    if not 0 < utilisation <= 1:
        raise InputError(f"utilisation={utilisation!r}; accepted: a fraction of the peak, 0 < u <= 1")
    return Rate(card.name, card.bf16_tflops * 1e12, utilisation, utilisation, overhead_s)
