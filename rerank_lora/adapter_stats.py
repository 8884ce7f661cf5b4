"""The adapter statistics command: the size and shape of every LoRA update at every checkpoint of a job, from
the saved adapter alone (no model is loaded); the statistics are in `analysis/update_stats.py`.

    python -m rerank_lora.adapter_stats checkpoint=PATH

`adapter-stats.csv` beside each checkpoint, one row per LoRA module.
"""

from pathlib import Path

from omegaconf import OmegaConf

from rerank_lora import cli
from rerank_lora.analysis import outputs
from rerank_lora.analysis.imported_job import IMPORT_ARGS, import_options
from rerank_lora.analysis.trained_job import checkpoint_folders, job_config, step_of
from rerank_lora.analysis.update_stats import module_stats, total_norm
from rerank_lora.analysis.wandb_tables import Chart, log_table, wanted
from rerank_lora.cli import parse_args
from rerank_lora.tables import write_csv

DEFAULTS = {"checkpoint": "???", "logger": "job", **IMPORT_ARGS}


def adapter_stats(args: list[str]) -> list[Path]:
    cfg = parse_args(args, DEFAULTS, required=("checkpoint",))
    folders = checkpoint_folders(cfg.checkpoint, every=True, imports=import_options(cfg))
    job_cfg, job_dir = job_config(folders[0])
    use_wandb = wanted(cfg.logger, job_cfg)
    modules = job_cfg["model"]["modules"]
    order = [*modules["attn"], *modules["mlp"]]
    written = []
    for folder in folders:
        rows, step = module_stats(folder, order), step_of(folder)
        written.append(write_csv(folder / outputs.csv_file(outputs.ADAPTER_STATS), rows))
        if use_wandb:
            chart = Chart("line", "layer", "fro_norm", stroke="projection")
            log_table(job_cfg, job_dir, outputs.ADAPTER_STATS, step, rows, chart, OmegaConf.to_container(cfg))
        print(f"step {step}: {len(rows)} LoRA modules, total ||dW||_F = {total_norm(rows):.4g}")
    return written


def main() -> None:
    cli.main(adapter_stats)


if __name__ == "__main__":
    main()
