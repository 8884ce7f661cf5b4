"""Speed of the default model on this machine: scoring and training pairs/s, with and without
length-sorted padding, and a job's fixed start-up cost.

    python -m rerank_lora.bench [job overrides, e.g. model=tiny_llama or trainer=gpu]    (make bench ARGS=...)
"""

import dataclasses
import re
import subprocess
import sys
import tempfile
import time

import torch

from rerank_lora import cli
from rerank_lora.configs import to_spec
from rerank_lora.data.collection import load_collection
from rerank_lora.data.datamodule import RerankDataModule
from rerank_lora.data.pairs import pad
from rerank_lora.data.spec import DataSpec
from rerank_lora.evaluation.evaluator import score
from rerank_lora.run import build_reranker

SCORED_QUERIES = 10  # dev queries x eval_depth pairs
TRAIN_STEPS = 6


def scoring_rate(reranker, data, sort: bool, merge: bool) -> float:
    data.cfg = dataclasses.replace(data.cfg, sort_by_length=sort)
    batches = data.eval_batches("dev")
    pairs = sum(len(b.qids) for b in batches)
    start = time.perf_counter()
    score(reranker, batches, desc=f"sorted={sort} merged={merge}", merge=merge)
    return pairs / (time.perf_counter() - start)


def first_step_seconds(overrides: list[str]) -> float:
    """A real job through the entry point (1 step, 1 dev query): seconds from its process start to its
    first training step, as the job itself logs it: a sweep cell's fixed overhead."""
    args = ["trainer.max_steps=1", "schedule=final", "data.eval_depth=1", "data.eval_splits=[dev]", "logger=none"]
    with tempfile.TemporaryDirectory() as out:
        job = subprocess.run(
            [sys.executable, "-m", "rerank_lora.run", *args, *overrides, f"hydra.run.dir={out}"],
            capture_output=True, text=True, check=True,
        )
    return float(re.search(r"first training step (\S+) s after", job.stderr + job.stdout).group(1))


def training_rate(reranker, data, pad_to_max: bool, device: torch.device) -> float:
    optimizer = torch.optim.AdamW([p for p in reranker.parameters() if p.requires_grad], lr=1e-4)
    reranker.train()
    groups = [data.train_set.group(i) for i in range(TRAIN_STEPS * data.cfg.queries_per_batch)]
    per_step = data.cfg.queries_per_batch
    start = time.perf_counter()
    for step in range(TRAIN_STEPS):
        pairs = [p for g in groups[step * per_step : (step + 1) * per_step] for p in g]
        batch = {k: v.to(device) for k, v in pad(pairs, data.pad_id, data.cfg.max_length if pad_to_max else None).items()}
        with torch.autocast("cuda", dtype=torch.bfloat16, enabled=device.type == "cuda"):
            loss = _loss(reranker, batch)
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
    if device.type == "cuda":
        torch.cuda.synchronize()
    return TRAIN_STEPS * per_step * data.cfg.group_size / (time.perf_counter() - start)


def _loss(reranker, batch):
    scores = reranker(batch["input_ids"], batch["attention_mask"]).view(-1, reranker.group_size)
    target = torch.zeros(scores.size(0), dtype=torch.long, device=scores.device)
    return torch.nn.functional.cross_entropy(scores, target)


def bench(overrides: list[str]) -> dict:
    cfg = cli.parse_job_overrides(["logger=none", *overrides])
    torch.manual_seed(cfg.seed)
    start = time.perf_counter()
    reranker, tokenizer = build_reranker(cfg)
    load_seconds = time.perf_counter() - start
    device = torch.device("cuda" if cfg.trainer.accelerator in ("gpu", "cuda") else "cpu")
    reranker = reranker.to(device)
    data_spec = to_spec(DataSpec, cfg.data, "data")
    data = RerankDataModule(load_collection(data_spec), tokenizer, data_spec, cfg.seed)
    data.first_stage = {"dev": dict(list(data.first_stage["dev"].items())[:SCORED_QUERIES])}
    report = {
        "model": cfg.model.name,
        "device": torch.cuda.get_device_name() if device.type == "cuda" else "cpu",
        "threads": torch.get_num_threads(),
        "model_load_s": round(load_seconds, 2),
        "scoring_pairs_per_s": {
            "sorted+merged": scoring_rate(reranker, data, sort=True, merge=True),
            "sorted": scoring_rate(reranker, data, sort=True, merge=False),
            "fixed_max_length": scoring_rate(reranker, data, sort=False, merge=False),
        },
        "training_pairs_per_s": {
            "padded_to_longest": training_rate(reranker, data, pad_to_max=False, device=device),
            "padded_to_max_length": training_rate(reranker, data, pad_to_max=True, device=device),
        },
        "job_start_to_first_training_step_s": first_step_seconds(overrides),
    }
    return report


def main() -> None:
    cli.main(bench)


if __name__ == "__main__":
    main()
