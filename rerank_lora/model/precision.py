"""trainer.precision=auto: the fastest precision this machine has that keeps the metrics. On a GPU, bf16-mixed.
On a CPU it depends on the chip: with AMX or AVX-512 BF16, bf16 matrix products run several times faster than fp32;
without them (e.g. AVX2-only AMD EPYC) bf16 is emulated and 5-8x slower. So `auto` reads the CPU's flags, and where
bf16 instructions exist, times one second of fp32 and bf16 matmuls and picks bf16-mixed if it is clearly faster."""

import logging
import statistics
import time

import torch

log = logging.getLogger(__name__)
BF16_FLAGS = ("amx_bf16", "avx512_bf16")
FEATURE_FLAGS = ("avx2", "fma", "avx512f", "avx512_bf16", "amx_tile", "amx_bf16")
CLEARLY_FASTER = 1.5
MATMUL_SIZE = 1024


def cpu_features() -> dict:
    """The CPU's model name and which of FEATURE_FLAGS it has (Linux /proc/cpuinfo; empty elsewhere)."""
    name, flags = "unknown", set()
    try:
        with open("/proc/cpuinfo") as info:
            for line in info:
                key, _, value = line.partition(":")
                if key.strip() == "model name" and name == "unknown":
                    name = value.strip()
                elif key.strip() == "flags" and not flags:
                    flags = set(value.split())
    except OSError:
        pass
    return {"model_name": name, **{flag: flag in flags for flag in FEATURE_FLAGS}}


def has_bf16_instructions(features: dict) -> bool:
    """`cpu_features`' answer to: does this chip have bf16 matrix instructions (AMX or AVX-512 BF16)?"""
    return any(features[flag] for flag in BF16_FLAGS)


def resolve_precision(precision: str, accelerator: str) -> str:
    """`precision` as a Lightning precision: `auto` becomes bf16-mixed or 32-true, anything else is kept."""
    if str(precision) != "auto":
        return str(precision)
    if accelerator in ("gpu", "cuda"):
        return "bf16-mixed"
    features = cpu_features()
    if not has_bf16_instructions(features):
        log.info("precision auto: 32-true (%s has no bf16 instructions)", features["model_name"])
        return "32-true"
    fp32, bf16 = (matmul_rate(seconds=0.5, bursts=4, dtype=dtype) for dtype in (torch.float32, torch.bfloat16))
    chosen = "bf16-mixed" if bf16 >= CLEARLY_FASTER * fp32 else "32-true"
    log.info("precision auto: %s (matmul fp32 %.0f, bf16 %.0f GFLOP/s)", chosen, fp32 / 1e9, bf16 / 1e9)
    return chosen


def matmul_rate(seconds: float = 4.0, bursts: int = 16, dtype: torch.dtype = torch.float32) -> float:
    """FLOP/s of `dtype` matmuls of MATMUL_SIZE-square matrices on this CPU with torch's current threads: the
    median of short bursts (a quiet machine's bursts still vary by +-10%, with the host's clock)."""
    a, b = (torch.randn(MATMUL_SIZE, MATMUL_SIZE, dtype=dtype) for _ in range(2))
    torch.matmul(a, b)
    rates = []
    for _ in range(bursts):
        count, start = 0, time.perf_counter()
        while time.perf_counter() - start < seconds / bursts:
            torch.matmul(a, b)
            count += 1
        rates.append(2 * MATMUL_SIZE**3 * count / (time.perf_counter() - start))
    return statistics.median(rates)
