"""What the adapter learned, per layer and projection: the size and shape of each LoRA update
dW = scaling * B @ A, from a saved adapter alone (no model is loaded). Singular values come from the r x r core
of B @ A (QR of both factors), so a 7B adapter takes seconds."""

import json
import math
from pathlib import Path

import torch
from safetensors.torch import load_file

from rerank_lora.analysis.lora_switch import LAYER_INDEX
from rerank_lora.analysis.trained_job import step_of
from rerank_lora.errors import InputError
from rerank_lora.job_folder import ADAPTER_CONFIG, ADAPTER_FILE

SUFFIX_A, SUFFIX_B = ".lora_A.weight", ".lora_B.weight"


def singular_values(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Singular values of b @ a (b: out x r, a: r x in) through QR of both factors: those of R_b R_a^T."""
    _, r_b = torch.linalg.qr(b.double())
    _, r_a = torch.linalg.qr(a.double().T)
    return torch.linalg.svdvals(r_b @ r_a.T)


def effective_rank(sv: torch.Tensor) -> float:
    """exp of the entropy of the normalised singular values; 0 for a zero update."""
    total = float(sv.sum())
    if total <= 0:
        return 0.0
    p = sv / total
    p = p[p > 0]
    return math.exp(float(-(p * p.log()).sum()))


def update_stats(a: torch.Tensor, b: torch.Tensor, scaling: float) -> dict:
    """Norms and ranks of scaling * b @ a, and the norms of its factors."""
    sv = singular_values(a, b) * abs(scaling)
    fro = float(sv.pow(2).sum().sqrt())
    spectral = float(sv.max()) if sv.numel() else 0.0
    return {
        "fro_norm": fro,
        "spectral_norm": spectral,
        "effective_rank": effective_rank(sv),
        "stable_rank": fro**2 / spectral**2 if spectral > 0 else 0.0,
        "norm_A": float(a.double().norm()),
        "norm_B": float(b.double().norm()),
    }


def scaling_of(config: dict, rank: int) -> float:
    if config.get("rank_pattern") or config.get("alpha_pattern"):
        raise InputError("adapters with rank_pattern / alpha_pattern are not supported by adapter_stats")
    alpha = config["lora_alpha"]
    return alpha / math.sqrt(rank) if config.get("use_rslora") else alpha / rank


def module_stats(folder: Path, order: list[str] = ()) -> list[dict]:
    """One row per LoRA module of the checkpoint `folder`, by layer, then projections in `order` (the model
    family's own), then name."""
    config = json.loads((folder / ADAPTER_CONFIG).read_text())
    tensors = load_file(folder / ADAPTER_FILE)
    step, rows = step_of(folder), []
    for key in sorted(k for k in tensors if k.endswith(SUFFIX_A)):
        base = key[: -len(SUFFIX_A)]
        a, b = tensors[key], tensors[base + SUFFIX_B]
        module = base.removeprefix("base_model.model.")
        found = LAYER_INDEX.search(f".{module}.")
        rank = a.shape[0]
        scaling = scaling_of(config, rank)
        layer = int(found.group(1)) if found else -1
        head = {"step": step, "layer": layer, "projection": module.rsplit(".", 1)[-1], "module": module}
        rows.append({**head, "rank": rank, "scaling": scaling, **update_stats(a, b, scaling)})
    position = {name: i for i, name in enumerate(order)}
    rows.sort(key=lambda r: (r["layer"], position.get(r["projection"], len(position)), r["module"]))
    return rows


def total_norm(rows: list[dict]) -> float:
    """‖dW‖_F of the whole adapter: the root of the summed squares of its modules' norms."""
    return math.sqrt(sum(r["fro_norm"] ** 2 for r in rows))
