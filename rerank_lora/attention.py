"""The attention-features command: per layer and head, where a trained reranker's scoring token looks (the query's
tokens, the passage's, the sink) and whether its attention over the passage follows term rarity (IDF) and exact
query-term match, at every checkpoint of a job; the engine is `analysis/attention_features.py`.

    python -m rerank_lora.attention checkpoint=PATH [split=dev] [depth=N] [queries=N]

`attention.csv` beside each checkpoint, one row per layer and head.
"""

from pathlib import Path

from omegaconf import OmegaConf

from rerank_lora import cli
from rerank_lora.analysis import outputs
from rerank_lora.analysis.attention_features import AttentionFeatures
from rerank_lora.analysis.imported_job import IMPORT_ARGS, import_options
from rerank_lora.analysis.trained_job import TrainedJob, checkpoint_folders, job_config, merges
from rerank_lora.analysis.wandb_tables import Chart, log_table, wanted
from rerank_lora.cli import parse_args
from rerank_lora.errors import check_int
from rerank_lora.tables import write_csv

DEFAULTS = {
    "checkpoint": "???",  # <job>/checkpoints/step-N, or a job folder (every checkpoint of it)
    "split": "dev",
    "depth": None,  # null: the job's data.eval_depth
    "queries": None,  # a seeded sample of this many of the split's queries; null: every query
    "merge": None,  # fold LoRA into the weights while computing (restored exactly); null: in 32-true jobs
    "logger": "job",  # job | wandb | none
    **IMPORT_ARGS,  # a published adapter: checkpoint=hf:owner/name or a peft adapter folder
}


def attention(args: list[str]) -> list[Path]:
    cfg = parse_args(args, DEFAULTS, required=("checkpoint",))
    folders = checkpoint_folders(cfg.checkpoint, every=True, imports=import_options(cfg))
    job_cfg, job_dir = job_config(folders[0])
    check_int("queries", cfg.queries, null="every query")
    use_wandb = wanted(cfg.logger, job_cfg)
    job = TrainedJob(folders[0], [cfg.split], cfg.depth)
    features, written = AttentionFeatures(job, cfg.split, merges(cfg.merge, job.reranker.precision), cfg.queries), []
    for folder in folders:
        job.switch_to(folder)
        rows = features.rows()
        written.append(write_csv(folder / outputs.csv_file(outputs.ATTENTION), rows))
        if use_wandb:
            chart = Chart("line", "layer", "passage", stroke="head")
            log_table(job_cfg, job_dir, outputs.ATTENTION, job.step, rows, chart, OmegaConf.to_container(cfg))
        print(summary(rows))
    return written


def summary(rows: list[dict]) -> str:
    """Per layer: the mean shares over heads, and the head whose attention follows IDF and query-term match most
    strongly (largest |r|)."""
    lines = [f"step {rows[0]['step']} on {rows[0]['split']} ({rows[0]['queries']} queries, {rows[0]['pairs']} pairs)",
             f"{'layer':>5} {'sink':>6} {'query':>6} {'passage':>7}  {'strongest idf_corr':>19}  {'strongest match_corr':>21}"]
    for layer in sorted({r["layer"] for r in rows}):
        mine = [r for r in rows if r["layer"] == layer]
        mean = {f: sum(r[f] for r in mine) / len(mine) for f in ("sink", "query", "passage")}
        tops = [max(mine, key=lambda r, f=f: -1.0 if r[f] is None else abs(r[f])) for f in ("idf_corr", "match_corr")]
        shown = [f"h{t['head']} {_corr(t, f)}" for t, f in zip(tops, ("idf_corr", "match_corr"))]
        lines.append(f"{layer:>5} {mean['sink']:>6.3f} {mean['query']:>6.3f} {mean['passage']:>7.3f}  "
                     f"{shown[0]:>19}  {shown[1]:>21}")
    return "\n".join(lines)


def _corr(row: dict, feature: str) -> str:
    value, p = row[feature], row[f"p_{feature}"]
    return "–" if value is None else f"{value:+.3f} (p {p:.2g})"


def main() -> None:
    cli.main(attention)


if __name__ == "__main__":
    main()
