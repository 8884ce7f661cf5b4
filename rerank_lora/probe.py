"""The layer-wise probing command: the trained head (and with `fit=true` a linear probe fitted per layer) read
at every decoder layer, at every checkpoint of a job; the engine is `analysis/probing.py`.

    python -m rerank_lora.probe checkpoint=PATH [fit=true] [split=dev] [depth=N] [measures=[nDCG@10,Margin]]

`probe.csv` beside each checkpoint; `layer` k is the output of decoder layer k (the last layer's is the
reranker's own score).
"""

from pathlib import Path

from omegaconf import OmegaConf

from rerank_lora import cli
from rerank_lora.analysis import outputs
from rerank_lora.analysis.imported_job import IMPORT_ARGS, import_options
from rerank_lora.analysis.probing import ProbeFit, Prober
from rerank_lora.analysis.trained_job import TrainedJob, checkpoint_folders, job_config, merges
from rerank_lora.analysis.wandb_tables import Chart, log_table, wanted
from rerank_lora.cli import as_list, parse_args
from rerank_lora.errors import check_int
from rerank_lora.tables import write_csv

DEFAULTS = {
    "checkpoint": "???",  # <job>/checkpoints/step-N, or a job folder (every checkpoint of it)
    "split": "dev",
    "depth": None,  # null: the job's data.eval_depth
    "measures": None,  # ir_measures names and Margin; null: the job's measures
    "fit": False,  # also fit a linear probe per layer on training groups
    "fit_groups": 256,  # training groups (1 positive + group_size-1 negatives) the probes are fitted on
    "fit_l2": 1e-3,  # L2 penalty on the probe's weights (features standardised per dimension)
    "merge": None,  # fold LoRA into the weights for the hidden states (restored exactly); null: in 32-true jobs
    "logger": "job",  # job | wandb | none
    **IMPORT_ARGS,  # a published adapter: checkpoint=hf:owner/name or a peft adapter folder
}


def probe(args: list[str]) -> list[Path]:
    cfg = parse_args(args, DEFAULTS, required=("checkpoint",))
    folders = checkpoint_folders(cfg.checkpoint, every=True, imports=import_options(cfg))
    job_cfg, job_dir = job_config(folders[0])
    check_int("fit_groups", cfg.fit_groups)
    use_wandb = wanted(cfg.logger, job_cfg)
    job = TrainedJob(folders[0], [cfg.split], cfg.depth, as_list(cfg.measures) or None)
    fit = ProbeFit(cfg.fit_groups, cfg.fit_l2) if cfg.fit else None
    prober = Prober(job, cfg.split, merges(cfg.merge, job.reranker.precision), fit)
    measure, written = job.measures[0], []
    for folder in folders:
        job.switch_to(folder)
        rows = prober.rows()
        written.append(write_csv(folder / outputs.csv_file(outputs.PROBE), rows))
        if use_wandb:
            chart = Chart("line", "layer", measure, stroke="probe")
            log_table(job_cfg, job_dir, outputs.PROBE, job.step, rows, chart, OmegaConf.to_container(cfg))
        print(f"step {job.step}: {measure} by layer " + " ".join(f"{r['probe'][0]}{r['layer']}={r[measure]:.3f}" for r in rows))
    return written


def main() -> None:
    cli.main(probe)


if __name__ == "__main__":
    main()
