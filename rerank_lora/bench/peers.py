"""Our speed beside the two tools a researcher would use instead, in one run on this machine, with the same
SmolLM2 weights and the same data: training pairs/s against Tevatron's reranker trainer (texttron/tevatron,
the RankLLaMA recipe's code) and scoring pairs/s against FlagEmbedding's FlagLLMReranker, with its defaults and
tuned. Prints one table, the two ratios (ours / Tevatron, ours / FlagLLMReranker tuned) and a JSON report.

Like for like: the full SmolLM2-135M-Instruct (all 30 layers; ours also with the default 12 as an extra row,
not in the ratios), converted once from the packaged GGUF (model.gguf_cache), in float32 on the CPU on the same
torch threads. Training: the training stream's first (warmup_steps + train_steps) x 2 groups of 1 positive + 3
negatives (written to a JSONL in Tevatron's training format, so Tevatron reads them through its own dataset code),
max length 160, LoRA r 8 / alpha 16 / dropout 0 on all seven projections, lr 1e-3, no gradient checkpointing;
ours trains through its own Lightning path (trainer.fit on the job's data module, each batch packed into one row,
as the default job trains), Tevatron through its own driver (reranker_model_type sequence_classification, as RankLLaMA);
both time only the steps after the warm-up, from the end of the last warm-up step to the end of the last step.
Ours trains twice, as the default job and with trainer.compile=true (compiled in the warm-up), each with its ratio.
Scoring: the first scoring_queries DL19 (split `dev`) queries' first-stage top 10, raw texts; ours through
evaluator.score on length-sorted batches with the LoRA merged (FlagLLMReranker merges a peft adapter on load), each
side after a short untimed warm-up. The peers run in their own venv (`make peers-setup`), one at a time.

    make peers-setup                                    # once: .venv-peers (see the Makefile)
    python -m rerank_lora.bench.peers [warmup_steps=2 train_steps=10 scoring_queries=20 output=report.json ...]
    make bench-peers ARGS='train_steps=20'              # the same through make
"""

import json
import logging
import os
import tempfile
import time
from importlib import metadata
from pathlib import Path

import lightning as L
import torch
from omegaconf import OmegaConf

from rerank_lora import cli
from rerank_lora.bench.peer_inputs import group_texts, scoring_rows, tevatron_row
from rerank_lora.bench.peer_process import check_peers, run_peer
from rerank_lora.bench.peer_report import (
    FLAG_DEFAULT,
    FLAG_TUNED,
    OURS_30,
    OURS_30_COMPILED,
    OURS_30_UNMERGED,
    TEVATRON,
    ratios,
    table,
)
from rerank_lora.bench.speed import scoring_rate
from rerank_lora.configs import job_spec
from rerank_lora.data.datamodule import RerankDataModule
from rerank_lora.errors import check_int
from rerank_lora.job.builders import build_data, build_reranker
from rerank_lora.job.spec import JobSpec
from rerank_lora.model.backbone import gguf_cache
from rerank_lora.model.precision import cpu_features
from rerank_lora.tables import write_jsonl
from rerank_lora.train.trainer import make_trainer

log = logging.getLogger(__name__)
SPLIT = "dev"  # TREC DL19 in the shipped set
DEFAULTS = {
    "warmup_steps": 2,  # untimed training steps on each side
    "train_steps": 10,  # timed training steps on each side
    "scoring_queries": 20,  # the first DL19 queries, each with its first-stage top 10
    "flag_tuned": {"batch_size": 16, "max_length": 160},  # FlagLLMReranker's second, tuned run
    "peers_python": ".venv-peers/bin/python",
    "compiled_row": True,  # also ours trained with trainer.compile=true (a second training ratio)
    "default_layers_row": True,  # also ours with the default job's 12 layers (an extra row, not in the ratios)
    "output": None,  # a file for the JSON report; none: printed
}
# The job both sides run; the peers get the same values from the composed config as arguments.
HEAD_TO_HEAD = [
    "logger=none", "model=smollm2", "model.num_layers=null", "data=msmarco_mini", "targets=all",
    "data.group_size=4", "data.queries_per_batch=2", "data.max_length=160", "data.eval_depth=10",
    "lora.rank=8", "lora.alpha=16", "lora.dropout=0.0", "lora.layers=null",
    "optim.lr=1e-3", "optim.head_lr=null", "optim.warmup_steps=0", "optim.weight_decay=0.0",
    "trainer=cpu", "trainer.precision=32-true", "trainer.gradient_checkpointing=false",
    "+trainer.enable_progress_bar=false", "+trainer.enable_model_summary=false",  # Tevatron's bar is off too
]


class StepClock(L.Callback):
    """perf_counter at the start and the end of each training step, and each step's attention mask."""

    def __init__(self):
        self.begins, self.ends, self.masks = [], [], []

    def on_train_batch_start(self, trainer, module, batch, batch_idx) -> None:
        self.begins.append(time.perf_counter())

    def on_train_batch_end(self, trainer, module, outputs, batch, batch_idx) -> None:
        self.ends.append(time.perf_counter())
        self.masks.append(batch["attention_mask"])

    def timed_seconds(self, warmup: int) -> float:
        """From the end of the last warm-up step (the first step's start without warm-up) to the last step's
        end, so every timed step's batch fetching and padding counts (the Tevatron script times the same span)."""
        start = self.ends[warmup - 1] if warmup else self.begins[0]
        return self.ends[-1] - start


def head_to_head_job(steps: int, layers_default: bool, model: str = "smollm2", compile_layers: bool = False) -> JobSpec:
    """The head-to-head job for `steps` training steps; `layers_default`: the model's default layers instead of
    all; `model`: another model config (tests: a tiny one); `compile_layers`: trainer.compile."""
    overrides = [o for o in HEAD_TO_HEAD if not (layers_default and o.startswith("model.num_layers"))]
    overrides = [f"model={model}" if o.startswith("model=") else o for o in overrides]
    return job_spec(cli.parse_job_overrides([*overrides, f"trainer.max_steps={steps}", f"trainer.compile={compile_layers}"]))


def computed_tokens(mask: torch.Tensor, chunk: int | None, packed: bool) -> int:
    """Tokens a training batch's projections and MLPs compute, padding included: packed, only its real ones;
    else scored `chunk` pairs at a time by length, each chunk cut to its longest pair (Reranker.training_scores),
    or the whole batch padded to its longest."""
    if packed:
        return int(mask.sum())
    if chunk is None:
        return mask.numel()
    lengths = mask.sum(dim=1).sort().values
    return sum(int(part.max()) * len(part) for part in lengths.split(chunk))


def train_ours(spec: JobSpec, reranker, data: RerankDataModule, warmup: int, out: Path) -> dict:
    """Training pairs/s through the job's own Lightning path (trainer.fit on the data module)."""
    clock = StepClock()
    trainer = make_trainer(spec.trainer, False, [clock], out)
    trainer.fit(reranker, datamodule=data)
    timed, chunk = spec.trainer["max_steps"] - warmup, reranker.length_chunks
    pairs = timed * spec.data.queries_per_batch * spec.data.group_size
    seconds = clock.timed_seconds(warmup)
    masks = clock.masks[warmup:]
    return {
        "pairs_per_s": pairs / seconds, "seconds": seconds, "steps": timed, "warmup_steps": warmup, "pairs": pairs,
        "tokens_per_pair": sum(int(m.sum()) for m in masks) / pairs,
        "computed_tokens_per_pair": sum(computed_tokens(m, chunk, reranker.packed) for m in masks) / pairs,
        "settings": {"precision": spec.compute.precision, "packed": reranker.packed, "length_chunks": chunk,
                     "num_layers": reranker.backbone.config.num_hidden_layers, "compile": spec.compute.compile},
    }


def score_ours(reranker, data: RerankDataModule, merge: bool) -> dict:
    """Scoring pairs/s of bench.scoring_rate: length-sorted eval batches, a one-batch warm-up."""
    rate = scoring_rate(reranker, data, sort=True, merge=merge)
    pairs = sum(len(scores) for scores in data.first_stage[SPLIT].values())
    return {
        "pairs_per_s": rate["pairs_per_s"], "seconds": pairs / rate["pairs_per_s"], "pairs": pairs,
        "tokens_per_pair": rate["tokens_per_s"] / rate["pairs_per_s"],
        "settings": {"batch_size": data.spec.eval_batch_size, "max_length": data.spec.max_length, "lora_merged": merge},
    }


def measure_ours(
    spec: JobSpec, warmup: int, queries: int, out: Path, unmerged: bool, scoring: bool = True
) -> tuple[dict, RerankDataModule]:
    """Ours: training, then (if `scoring`) scoring on the same reranker, merged and, if asked, unmerged, on the
    first `queries` queries of the split; also its data module."""
    L.seed_everything(spec.seed)
    reranker, tokenizer = build_reranker(spec)
    data = build_data(spec.data, spec.seed, tokenizer, queries=queries)
    rows = {"training": train_ours(spec, reranker, data, warmup, out)}
    if scoring:
        rows["scoring"] = score_ours(reranker, data, merge=True)
    if scoring and unmerged:
        rows["scoring_unmerged"] = score_ours(reranker, data, merge=False)
    return rows, data


def machine(load_at_start: float) -> dict:
    """The CPU, torch's threads, and the 1-minute load average before and after: other work on the machine
    during the run (a load well above 0 at the start) makes every rate lower and the ratios noisy."""
    return {
        "cpu": cpu_features()["model_name"], "cpus": os.cpu_count(), "torch_threads": torch.get_num_threads(),
        "load_average": {"start": load_at_start, "end": os.getloadavg()[0]},
        "versions": {name: metadata.version(name) for name in ("torch", "transformers", "peft", "lightning")},
    }


def peer_rows(spec: JobSpec, python: Path, inputs: dict[str, Path], args, threads: int, out: Path) -> dict:
    """Tevatron's training and FlagLLMReranker's scoring, with their JSON results."""
    data, lora = spec.data, spec.lora
    log.info("Tevatron: %d + %d training steps", args.warmup_steps, args.train_steps)
    tevatron = run_peer(python, "tevatron_train.py", [
        "--model", str(inputs["model"]), "--train", str(inputs["train"]), "--out", str(out / "tevatron"),
        "--warmup-steps", str(args.warmup_steps), "--train-steps", str(args.train_steps),
        "--group-size", str(data.group_size), "--queries-per-step", str(data.queries_per_batch),
        "--max-length", str(data.max_length), "--lr", str(spec.optim.lr), "--seed", str(spec.seed),
        "--lora-rank", str(lora.rank), "--lora-alpha", str(lora.alpha), "--lora-dropout", str(lora.dropout),
    ], threads, out)
    flag = ["--model", str(inputs["model"]), "--pairs", str(inputs["pairs"])]
    tuned = ["--batch-size", str(args.flag_tuned.batch_size), "--max-length", str(args.flag_tuned.max_length)]
    log.info("FlagLLMReranker: its defaults, then %s", " ".join(tuned))
    return {
        "training": {TEVATRON: tevatron},
        "scoring": {FLAG_DEFAULT: run_peer(python, "flag_score.py", flag, threads, out),
                    FLAG_TUNED: run_peer(python, "flag_score.py", flag + tuned, threads, out)},
    }


def head_to_head(args, python: Path, out: Path) -> dict:
    """Ours on all layers and the peers, on the inputs ours writes for them: the report's rows."""
    steps = args.warmup_steps + args.train_steps
    spec = head_to_head_job(steps, layers_default=False)
    log.info("ours, all layers: %d + %d training steps, then scoring", args.warmup_steps, args.train_steps)
    ours, data = measure_ours(spec, args.warmup_steps, args.scoring_queries, out / "ours", unmerged=True)
    groups = group_texts(data.train_set, steps * spec.data.queries_per_batch)
    gguf = spec.model.gguf
    inputs = {
        "model": gguf_cache(gguf["package"], gguf["file"], spec.model.cache_dir),
        "train": write_jsonl(out / "tevatron_train.jsonl", [tevatron_row(g) for g in groups]),
        "pairs": write_jsonl(out / "scoring_pairs.jsonl", scoring_rows(data, SPLIT)),
    }
    peers = peer_rows(spec, python, inputs, args, torch.get_num_threads(), out)
    return {
        "training": {OURS_30: ours["training"], **peers["training"]},
        "scoring": {OURS_30: ours["scoring"], OURS_30_UNMERGED: ours["scoring_unmerged"], **peers["scoring"]},
    }


def add_compiled(report: dict, args, out: Path) -> None:
    """Ours on all layers trained with trainer.compile=true: the second training ratio's row."""
    spec = head_to_head_job(args.warmup_steps + args.train_steps, layers_default=False, compile_layers=True)
    log.info("ours, all layers, trainer.compile=true: %d + %d training steps", args.warmup_steps, args.train_steps)
    compiled, _ = measure_ours(spec, args.warmup_steps, args.scoring_queries, out / "ours-compiled", False, scoring=False)
    report["training"][OURS_30_COMPILED] = compiled["training"]


def add_default_layers(report: dict, args, out: Path) -> None:
    """Ours with the default job's layers: extra rows, not in the ratios."""
    spec = head_to_head_job(args.warmup_steps + args.train_steps, layers_default=True)
    log.info("ours, the default job's %s layers (extra rows, not in the ratios)", spec.model.num_layers)
    extra, _ = measure_ours(spec, args.warmup_steps, args.scoring_queries, out / "ours-default", unmerged=False)
    for task in ("training", "scoring"):
        report[task][f"ours (default {spec.model.num_layers} layers; not in ratios)"] = extra[task]


def bench_peers(argv: list[str]):
    args = cli.parse_args(argv, DEFAULTS)
    for key, least in (("warmup_steps", 0), ("train_steps", 1), ("scoring_queries", 1)):
        check_int(key, args[key], least)
    load_at_start = os.getloadavg()[0]
    python = Path(args.peers_python).expanduser().absolute()
    check_peers(python)
    with tempfile.TemporaryDirectory(prefix="bench-peers-") as scratch:
        report = head_to_head(args, python, Path(scratch))
        if args.compiled_row:
            add_compiled(report, args, Path(scratch))
        if args.default_layers_row:
            add_default_layers(report, args, Path(scratch))
    report |= {"ratios": ratios(report), "machine": machine(load_at_start), "arguments": OmegaConf.to_container(args)}
    print(table(report), flush=True)
    if args.output:
        Path(args.output).write_text(json.dumps(report, indent=2) + "\n")
        return Path(args.output)
    return report


def main() -> None:
    cli.main(bench_peers)


if __name__ == "__main__":
    main()
