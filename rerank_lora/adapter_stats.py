"""What the adapter learned, per layer and projection: the size and shape of the LoRA update
dW = scaling * B @ A, from the saved adapter alone (no model is loaded), at every checkpoint of a job.

    python -m rerank_lora.adapter_stats checkpoint=PATH

`adapter-stats.csv` beside each checkpoint. Singular values come from the r x r core of B @ A (QR of both
factors), so a 7B adapter takes seconds.
"""

import json
import logging
import math
from pathlib import Path

import torch
from omegaconf import OmegaConf
from safetensors.torch import load_file

from rerank_lora import cli
from rerank_lora.analysis.lora_switch import LAYER_INDEX
from rerank_lora.analysis.trained_job import ADAPTER_FILE, checkpoint_folders, job_config, step_of
from rerank_lora.analysis.wandb_tables import Chart, log_tables, wanted
from rerank_lora.cli import parse_args
from rerank_lora.errors import InputError
from rerank_lora.tables import write_csv

log = logging.getLogger("rerank_lora.adapter_stats")
DEFAULTS = {"checkpoint": "???", "logger": "job"}
SUFFIX_A, SUFFIX_B = ".lora_A.weight", ".lora_B.weight"


def singular_values(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Singular values of b @ a (b: out x r, a: r x in) through QR of both factors: those of R_b R_a^T."""
    _, r_b = torch.linalg.qr(b.double())
    _, r_a = torch.linalg.qr(a.double().T)
    return torch.linalg.svdvals(r_b @ r_a.T)


def update_stats(a: torch.Tensor, b: torch.Tensor, scaling: float) -> dict:
    sv = singular_values(a, b) * abs(scaling)
    total = float(sv.sum())
    fro = float(sv.pow(2).sum().sqrt())
    spectral = float(sv.max()) if sv.numel() else 0.0
    if total > 0:
        p = sv / total
        p = p[p > 0]
        effective = math.exp(float(-(p * p.log()).sum()))
    else:
        effective = 0.0
    return {
        "fro_norm": fro,
        "spectral_norm": spectral,
        "effective_rank": effective,
        "stable_rank": fro**2 / spectral**2 if spectral > 0 else 0.0,
        "norm_A": float(a.double().norm()),
        "norm_B": float(b.double().norm()),
    }


def scaling_of(config: dict, rank: int) -> float:
    if config.get("rank_pattern") or config.get("alpha_pattern"):
        raise InputError("adapters with rank_pattern / alpha_pattern are not supported by adapter_stats")
    alpha = config["lora_alpha"]
    return alpha / math.sqrt(rank) if config.get("use_rslora") else alpha / rank


def stats(folder: Path, order: list[str] = ()) -> list[dict]:
    """One row per LoRA module, by layer, then projections in `order` (the model family's own), then name."""
    config = json.loads((folder / "adapter_config.json").read_text())
    tensors = load_file(folder / ADAPTER_FILE)
    step, rows = step_of(folder), []
    for key in sorted(k for k in tensors if k.endswith(SUFFIX_A)):
        base = key[: -len(SUFFIX_A)]
        a, b = tensors[key], tensors[base + SUFFIX_B]
        module = base.removeprefix("base_model.model.")
        found = LAYER_INDEX.search(f".{module}.")
        rank = a.shape[0]
        scaling = scaling_of(config, rank)
        rows.append(
            {
                "step": step,
                "layer": int(found.group(1)) if found else -1,
                "projection": module.rsplit(".", 1)[-1],
                "module": module,
                "rank": rank,
                "scaling": scaling,
                **update_stats(a, b, scaling),
            }
        )
    position = {name: i for i, name in enumerate(order)}
    rows.sort(key=lambda r: (r["layer"], position.get(r["projection"], len(position)), r["module"]))
    return rows


def adapter_stats(args: list[str]) -> list[Path]:
    cfg = parse_args(args, DEFAULTS, required=("checkpoint",))
    folders = checkpoint_folders(cfg.checkpoint, every=True)
    job_cfg, job_dir = job_config(folders[0])
    use_wandb = wanted(cfg.logger, job_cfg)
    order = [*job_cfg.model.modules.attn, *job_cfg.model.modules.mlp]
    written = []
    for folder in folders:
        rows = stats(folder, order)
        written.append(write_csv(folder / "adapter-stats.csv", rows))
        if use_wandb:
            chart = Chart("adapter-stats", "line", "layer", "fro_norm", stroke="projection")
            log_tables(
                job_cfg,
                job_dir,
                f"adapter-stats/step-{step_of(folder)}",
                {"adapter-stats": rows},
                {"adapter-stats-chart": chart},
                {"step": step_of(folder), **OmegaConf.to_container(cfg)},
            )
        total = math.sqrt(sum(r["fro_norm"] ** 2 for r in rows))
        print(f"step {step_of(folder)}: {len(rows)} LoRA modules, total ||dW||_F = {total:.4g}")
    return written


def main() -> None:
    cli.main(adapter_stats)


if __name__ == "__main__":
    main()
