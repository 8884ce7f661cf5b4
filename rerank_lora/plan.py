"""A sweep's cost before submitting it: its cells composed as `run -m` would launch them, none run. Per cell and in
total: optimizer steps, training pairs and tokens, evaluations and pairs scored, FLOPs, time at a stated fraction
of a GPU's bf16 peak (or on this CPU at its measured rate), and memory (weights, LoRA + optimizer state,
activations with and without gradient checkpointing), flagging a cell that will not fit.

    python -m rerank_lora.plan --config-dir sweeps --config-name paper [lora.rank=2,8 ...] [gpu=H200 utilisation=0.3]
    python -m rerank_lora.plan --config-dir sweeps --config-name mini device=cpu     (make plan GRID=mini ARGS=device=cpu)

The plan's own keys are those of DEFAULTS; every other argument is a job override or a sweep axis (`key=a,b`).
"""

import json
from pathlib import Path

from hydra import compose, initialize_config_dir
from hydra.errors import HydraException
from omegaconf import OmegaConf
from omegaconf.errors import OmegaConfBaseException

from rerank_lora import cli
from rerank_lora.configs import CONF_DIR, compose_job, to_spec
from rerank_lora.errors import InputError
from rerank_lora.planning import table
from rerank_lora.planning.cells import PlannedCell, expand, split_flags
from rerank_lora.planning.cost import gpu, gpu_rate
from rerank_lora.planning.memory import host_memory_gb

DEFAULTS = {
    "device": "gpu",  # gpu | cpu (this machine, its matmul rate measured now)
    "gpu": "H100",  # H100 | H200 | A100: bf16 dense peak and memory
    "utilisation": None,  # fraction of the peak reached; null: 0.4 on a GPU, the calibrated fractions on the CPU
    "cell_overhead_s": None,  # fixed seconds per cell; null: 0 on a GPU, the calibrated setup time on the CPU
    "tokens_per_pair": None,  # state the tokens per pair instead of counting them on the data
    "calibrate": False,  # device=cpu: measure the model's fraction of the matmul rate now (~1 minute)
    "json": False,  # print the plan as JSON instead of the table
    "out": None,  # also write the plan as JSON to this file
}
GPU_UTILISATION = 0.4


def check(options) -> None:
    """The plan's own options, before any cell is composed."""
    if options.device not in ("gpu", "cpu"):
        raise InputError(f"device={options.device!r}; accepted: gpu, cpu")
    gpu(options.gpu)
    if options.utilisation is not None and not 0 < options.utilisation <= 1:
        raise InputError(f"utilisation={options.utilisation!r}; accepted: a fraction of the peak, 0 < u <= 1")
    if options.tokens_per_pair is not None and not options.tokens_per_pair > 0:
        raise InputError(f"tokens_per_pair={options.tokens_per_pair!r}; accepted: a number > 0, or null to count them")


def sweep_axes(config_dir: Path, config_name: str) -> list[str]:
    """The sweep config's hydra.sweeper.params as `key=a,b` overrides (none for a plain job config)."""
    search = [f"hydra.searchpath=[file://{CONF_DIR}]"] if config_dir != CONF_DIR else []
    with initialize_config_dir(str(config_dir), version_base=None):
        cfg = compose(config_name, overrides=search, return_hydra_config=True)
    params = OmegaConf.select(cfg, "hydra.sweeper.params") or {}
    return [f"{key}={value}" for key, value in params.items()]


def sweep_cells(args: list[str]) -> list[PlannedCell]:
    """The cells of the sweep that `args` (run's arguments, -m implied) would launch, each composed as `run`
    composes it: config objects stop here, the planner gets plain values."""
    config_dir, config_name, overrides = split_flags(args)
    if not (config_dir / f"{config_name}.yaml").is_file():
        raise InputError(f"--config-name {config_name}: no {config_name}.yaml in {config_dir}")
    try:
        cells = expand(sweep_axes(config_dir, config_name), overrides)
        composed = [compose_job(cell, config_name, config_dir) for cell in cells]
        return [
            PlannedCell(cell, OmegaConf.to_container(c, resolve=True, throw_on_missing=True)) for cell, c in zip(cells, composed)
        ]
    except (HydraException, OmegaConfBaseException) as err:
        raise InputError(str(err).strip().splitlines()[0]) from None


def mini_data():
    """The data=msmarco_mini spec: the shipped set that stands in for a cell's data that is not on this machine."""
    from rerank_lora.data.spec import DataSpec

    return to_spec(DataSpec, compose_job(["data=msmarco_mini"]).data, "data")


def device_rate(options, cells: list[PlannedCell]) -> tuple[object, float, dict]:
    """The rate the time is computed at, the memory capacity, and what was assumed, in words."""
    if options.device == "cpu":
        from rerank_lora.job.spec import JobSpec
        from rerank_lora.model import precision
        from rerank_lora.planning import calibrate

        peak = precision.matmul_rate()
        values = dict(calibrate.CPU_CALIBRATION)
        if options.calibrate:  # in float32, as the rate it is a fraction of
            values = calibrate.measure_model(JobSpec.from_config(cells[0].config, "32-true"), peak)
        if options.utilisation is not None:
            values |= {"train_utilisation": options.utilisation, "scoring_utilisation": options.utilisation}
        if options.cell_overhead_s is not None:
            values["cell_overhead_s"] = options.cell_overhead_s
        rate = calibrate.cpu_rate(peak, values)
        words = (f"fp32 matmul rate measured now {peak / 1e9:.1f} GFLOP/s; training at {rate.train_utilisation:.3f} and "
                 f"scoring at {rate.scoring_utilisation:.3f} of it ({'measured now' if options.calibrate else 'calibrated'} "
                 f"on SmolLM2), + {rate.cell_overhead_s:.0f} s setup per cell, + {rate.startup_s:.0f} s start-up once")
        return rate, host_memory_gb(), {"device": rate.device, "rate": words}
    card = gpu(options.gpu)
    utilisation = GPU_UTILISATION if options.utilisation is None else options.utilisation
    rate = gpu_rate(card, utilisation, options.cell_overhead_s or 0.0)
    words = (f"{utilisation:.0%} of {card.name}'s bf16 dense peak {card.bf16_tflops:g} TFLOP/s "
             f"(utilisation=, gpu=); + {rate.cell_overhead_s:g} s per cell (cell_overhead_s=: model loading not counted)")
    return rate, card.memory_gb, {"device": card.name, "rate": words}


def totals(cells: list[dict], rate) -> dict:
    summed = ("steps", "training_pairs", "training_tokens", "training_tokens_padded", "evaluations", "pairs_scored")
    total = {key: sum(c[key] for c in cells) for key in summed}
    return total | {
        "cells": len(cells), "flops": sum(c["flops"]["total"] for c in cells),
        "device_seconds": sum(c["seconds"]["device"] for c in cells),
        "wall_seconds": rate.startup_s + sum(c["seconds"]["wall"] for c in cells),
        "cells_not_fitting": sum(not c["memory_gb"]["fits"] for c in cells),
    }


def assumptions(planner, device: dict, capacity_gb: float, cells: list[dict]) -> dict:
    share = max((c["flops"]["attention_share"] for c in cells), default=0.0)
    return device | {
        "tokens": planner.token_source(),
        "flops": "forward 2·N·T (N non-embedding parameters, T tokens computed: padded, real where packed) "
                 "+ attention 4·L·d_attn·s² per sequence; a LoRA step = 2 forward-equivalents (backward through frozen "
                 f"weights), 3 with gradient checkpointing; scoring = 1 (attention's term: at most {share:.1%} of a "
                 "cell's FLOPs here)",
        "memory": f"capacity {capacity_gb:.0f} GB; weights x bytes(model.dtype) + (LoRA + head) x 16 B + activations of "
                  "one micro-batch at max_length (Korthikanti et al. 2022; see rerank_lora/planning/memory.py)",
    }


def plan(args: list[str]):
    own = [a for a in args if a.partition("=")[0] in DEFAULTS]
    options = cli.parse_args(own, DEFAULTS)
    check(options)
    cells = sweep_cells([a for a in args if a not in own])
    rate, capacity, device = device_rate(options, cells)
    from rerank_lora.planning.planner import Planner  # the data side: torch, transformers, Lightning

    planner = Planner(options.tokens_per_pair, mini_data)
    planned = [planner.cell(index, cell, rate, capacity) for index, cell in enumerate(cells)]
    report = {"assumptions": assumptions(planner, device, capacity, planned), "cells": planned, "totals": totals(planned, rate)}
    if options.json:
        return report
    print(table.render(report))
    if options.out:
        Path(options.out).write_text(json.dumps(report, indent=2, default=str) + "\n")
        return Path(options.out)
    return None


def main() -> None:
    cli.main(plan)


if __name__ == "__main__":
    main()
