"""The ablation command: switch the LoRA update off in chosen places of a trained adapter and rerank, without
retraining.

    python -m rerank_lora.ablate checkpoint=PATH ablation=modules|layers|boundary|heads|windows [split=dev] [depth=20]
    python -m rerank_lora.ablate checkpoint=PATH ablation=[modules,layers,boundary] boundary.queries=10
    python -m rerank_lora.ablate checkpoint=PATH ablation=windows windows.width=4 windows.stride=1
    python -m rerank_lora.ablate checkpoint=PATH ablation=heads heads.layers=[4,5] queries=20 measures=[nDCG@10,Margin]

The variants are in `analysis/variants.py`, the engine scoring them in `analysis/ablation.py`. One model is
loaded; every variant switches LoRA modules on and off in place. Tables go beside the checkpoint:
`ablation-<name>.csv` and the per-query values `ablation-<name>.queries.jsonl`; a summary is printed.
"""

import logging
import time
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from rerank_lora import cli
from rerank_lora.analysis import outputs
from rerank_lora.analysis.ablation import Ablation, BoundarySearch, Rows
from rerank_lora.analysis.imported_job import IMPORT_ARGS, import_options
from rerank_lora.analysis.trained_job import TrainedJob, checkpoint_folders, job_config, merges
from rerank_lora.analysis.wandb_tables import Chart, log_table, wanted
from rerank_lora.cli import as_list, parse_args
from rerank_lora.errors import InputError, check_int
from rerank_lora.tables import write_csv, write_jsonl

log = logging.getLogger("rerank_lora.ablate")
DEFAULTS = {
    "checkpoint": "???",  # <job>/checkpoints/step-N, or a job folder (its last checkpoint)
    "ablation": "???",  # modules | layers | boundary | heads | windows, or a list of them
    "split": "dev",  # the split ablated (boundary: the split the boundary is chosen on)
    "depth": None,  # rerank each query's first-stage top-k; null: the job's data.eval_depth
    "measures": None,  # ir_measures names and Margin; null: the job's measures
    "queries": None,  # a seeded sample of this many of each split's queries; null: every query
    "merge": None,  # fold switched-on LoRA into the weights while scoring (faster, restored exactly); null: in 32-true jobs
    "share_prefix": True,  # compute hidden states below a variant's first switched layer once (same scores, faster)
    "logger": "job",  # job (the job's own logger) | wandb | none
    "layers": {"window": None},  # width of the kept windows; null: a sixth of the adapted layers, rounded up
    "windows": {"width": None, "stride": None},  # attention windows; null: as layers.window, and stride = width
    "heads": {"layers": None},  # the adapted layers whose heads are ablated; null: every one
    "boundary": {"queries": None, "measure": "nDCG@10", "report_split": "test"},
    **IMPORT_ARGS,  # a published adapter: checkpoint=hf:owner/name or a peft adapter folder
}


def check(cfg: DictConfig, job_cfg: dict) -> list[str]:
    """The ablations asked for, checked with the other arguments before any model loads."""
    names = as_list(cfg.ablation)
    if not names or any(n not in outputs.ABLATIONS for n in names):
        given = OmegaConf.to_container(cfg).get("ablation")
        raise InputError(f"ablation={given!r}; accepted: {', '.join(outputs.ABLATIONS)} (or a list)")
    measures = as_list(cfg.measures) or job_cfg["measures"]
    if "boundary" in names and cfg.boundary.measure not in measures:
        raise InputError(f"boundary.measure={cfg.boundary.measure!r}; accepted: one of the measures {measures}")
    check_int("layers.window", cfg.layers.window, null="a sixth of the adapted layers")
    check_int("windows.width", cfg.windows.width, null="a sixth of the adapted layers")
    check_int("windows.stride", cfg.windows.stride, null="the width")
    check_int("boundary.queries", cfg.boundary.queries, null="every query")
    check_int("queries", cfg.queries, null="every query")
    for layer in as_list(cfg.heads.layers):
        check_int("heads.layers", layer, least=0)
    wanted(cfg.logger, job_cfg)
    return list(dict.fromkeys(names))


def run_ablation(ablation: Ablation, name: str, cfg: DictConfig) -> Rows:
    if name == "modules":
        return ablation.modules(cfg.split)
    if name == "layers":
        return ablation.layers(cfg.split, cfg.layers.window)
    if name == "heads":
        return ablation.heads(cfg.split, as_list(cfg.heads.layers) or None)
    if name == "windows":
        return ablation.windows(cfg.split, cfg.windows.width, cfg.windows.stride)
    bcfg = cfg.boundary
    return ablation.boundary(BoundarySearch(cfg.split, bcfg.measure, bcfg.report_split, bcfg.queries))


def chart(name: str, measure: str) -> Chart:
    """What W&B draws of an ablation: the dropped layers and the boundaries as lines, the other variants as bars."""
    if name in ("layers", "boundary"):
        return Chart("line", "layer", measure, rows_with="layer")
    return Chart("bar", "variant", measure)


def ablate(args: list[str]) -> list[Path]:
    cfg = parse_args(args, DEFAULTS, required=("checkpoint", "ablation"))
    (folder,) = checkpoint_folders(cfg.checkpoint, every=False, imports=import_options(cfg))
    job_cfg, job_dir = job_config(folder)
    names = check(cfg, job_cfg)
    splits = [cfg.split] + ([cfg.boundary.report_split] if "boundary" in names else [])
    started = time.perf_counter()
    job = TrainedJob(folder, splits, cfg.depth, as_list(cfg.measures) or None)
    log.info("loaded %s step %s in %.1f s", job_dir, job.step, time.perf_counter() - started)
    ablation = Ablation(job, merges(cfg.merge, job.reranker.precision), cfg.share_prefix, cfg.queries)
    written = []
    for name in names:
        started = time.perf_counter()
        rows, queries = run_ablation(ablation, name, cfg)
        log.info("ablation=%s: %d variants in %.1f s", name, len(rows), time.perf_counter() - started)
        rows, table = [{"ablation": name, **row} for row in rows], outputs.ablation(name)
        written.append(write_jsonl(folder / outputs.queries_file(table), queries))
        written.append(write_csv(folder / outputs.csv_file(table), rows))
        if wanted(cfg.logger, job_cfg):
            chosen = chart(name, job.measures[0])
            log_table(job_cfg, job_dir, table, job.step, rows, chosen, OmegaConf.to_container(cfg))
        print(summary(rows, job.measures[:2]))
    return written


def summary(rows: list[dict], measures: list[str]) -> str:
    """The rows as a text table: each measure with its delta and Holm-corrected p against the whole adapter."""

    def cells(row: dict, measure: str) -> str:
        delta, p = row.get(f"delta_{measure}"), row.get(f"p_{measure}")
        shown_delta = "" if delta is None else f"{delta:+.4f}"
        shown_p = "" if p is None or p != p else f"{p:.3f}"
        return f"{row[measure]:>13.4f} {shown_delta:>8} {shown_p:>8}"

    head = f"{'split':<6} {'variant':<24} " + " ".join(f"{m:>13} {'delta':>8} {'p(Holm)':>8}" for m in measures)
    lines = [f"{row['split']:<6} {row['variant']:<24} " + " ".join(cells(row, m) for m in measures) for row in rows]
    return "\n".join([head, *lines])


def main() -> None:
    cli.main(ablate)


if __name__ == "__main__":
    main()
