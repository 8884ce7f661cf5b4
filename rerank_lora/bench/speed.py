"""Speed of the default model on this machine: scoring and training pairs/s, with and without
length-sorted padding, the useful FLOP rate they mean (2 x parameters x real tokens for a forward pass; a
LoRA step adds a backward pass through the frozen weights, 2 more, and with gradient checkpointing a second
forward, 2 more), its fraction of the peak (a GPU's bf16 peak; on a CPU, its measured matmul rate in the job's
precision), training's pairs/s as a fraction of scoring's, and a job's fixed start-up cost. On a CPU it also
reports the chip's features and its fp32 and bf16 matmul rates (what trainer.precision=auto decides from).

    python -m rerank_lora.bench.speed [job overrides, e.g. model=tiny_llama or trainer=gpu]    (make bench ARGS=...)
"""

import dataclasses
import re
import subprocess
import sys
import tempfile
import time

import torch

from rerank_lora import cli
from rerank_lora.configs import job_spec
from rerank_lora.data.datamodule import RerankDataModule
from rerank_lora.data.pairs import pad
from rerank_lora.evaluation.evaluator import score
from rerank_lora.job.builders import build_data, build_reranker
from rerank_lora.job.spec import JobSpec
from rerank_lora.model.precision import cpu_features, matmul_rate
from rerank_lora.model.reranker import Reranker

SCORED_QUERIES = 10  # dev queries x eval_depth pairs
TRAIN_STEPS = 6
BF16_PEAK_TFLOPS = {"H100": 989.0, "H200": 989.0, "A100": 312.0}  # dense, by a substring of the device name


def scoring_rate(reranker, data, sort: bool, merge: bool) -> dict:
    batches = data.eval_batches("dev", sort_by_length=sort)
    pairs = sum(len(b.qids) for b in batches)
    tokens = sum(int(b.inputs["attention_mask"].sum()) for b in batches)
    score(reranker, batches[:1], desc="warm-up", merge=merge)
    start = time.perf_counter()
    score(reranker, batches, desc=f"sorted={sort} merged={merge}", merge=merge)
    seconds = time.perf_counter() - start
    return {"pairs_per_s": pairs / seconds, "tokens_per_s": tokens / seconds}


def first_step_seconds(overrides: list[str]) -> float:
    """A real job through the entry point (1 step, 1 dev query): seconds from its process start to its
    first training step, as the job itself logs it: a sweep cell's fixed overhead."""
    args = ["trainer.max_steps=1", "schedule=final", "data.eval_depth=1", "data.eval_splits=[dev]", "logger=none",
            "measures=[nDCG@1]"]  # no measure cut deeper than the depth
    with tempfile.TemporaryDirectory() as out:
        job = subprocess.run(
            [sys.executable, "-m", "rerank_lora.run", *args, *overrides, f"hydra.run.dir={out}"],
            capture_output=True, text=True, check=True,
        )
    return float(re.search(r"first training step (\S+) s after", job.stderr + job.stdout).group(1))


def training_rate(reranker, data, pad_to_max: bool, device: torch.device) -> dict:
    optimizer = torch.optim.AdamW([p for p in reranker.parameters() if p.requires_grad], lr=1e-4)
    reranker.train()
    per_step = data.spec.queries_per_batch
    groups = [data.train_set.group(i) for i in range((TRAIN_STEPS + 1) * per_step)]
    batches = []
    for step in range(TRAIN_STEPS + 1):  # the first is a warm-up, not timed
        pairs = [p for g in groups[step * per_step : (step + 1) * per_step] for p in g]
        length = data.spec.max_length if pad_to_max else None
        batches.append({k: v.to(device) for k, v in pad(pairs, data.pad_id, length).items()})
    for index, batch in enumerate(batches):
        if index == 1:
            _synchronize(device)
            start = time.perf_counter()
        with reranker.autocast():  # the job's precision, as Lightning trains in it
            loss = reranker.group_loss(batch)
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
    _synchronize(device)
    seconds = time.perf_counter() - start
    tokens = sum(int(b["attention_mask"].sum()) for b in batches[1:])
    return {"pairs_per_s": TRAIN_STEPS * per_step * data.spec.group_size / seconds, "tokens_per_s": tokens / seconds}


def cpu_matmul_tflops() -> dict:
    """This CPU's matmul TFLOP/s on torch's threads, by Lightning precision (the peak of a job in it)."""
    return {precision: matmul_rate(seconds=2.0, bursts=8, dtype=dtype) / 1e12
            for precision, dtype in (("32-true", torch.float32), ("bf16-mixed", torch.bfloat16))}


def gpu_peak_tflops(name: str) -> float | None:
    """The dense bf16 peak of a known GPU, by a substring of its device name."""
    return next((tflops for gpu, tflops in BF16_PEAK_TFLOPS.items() if gpu in name), None)


def cpu_report() -> dict:
    """The chip, its SIMD / matrix features, and its fp32 and bf16 matmul rates on torch's threads."""
    rates = cpu_matmul_tflops()
    return {**cpu_features(), "matmul_fp32_tflops": rates["32-true"], "matmul_bf16_tflops": rates["bf16-mixed"]}


def _synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def useful_tflops(rate: dict, parameters: int, passes: int) -> float:
    """`passes` forward-pass equivalents per token (scoring 1; a LoRA step 2, 3 with gradient checkpointing)."""
    return 2 * parameters * passes * rate["tokens_per_s"] / 1e12


@dataclasses.dataclass
class Prepared:
    """A job's reranker and data as bench measures them: `SCORED_QUERIES` dev queries, the job's precision."""

    spec: JobSpec
    reranker: Reranker
    data: RerankDataModule
    device: torch.device
    precision: str
    load_seconds: float

    @property
    def bf16(self) -> bool:
        return self.precision.startswith("bf16")


def prepare(overrides: list[str]) -> Prepared:
    spec = job_spec(cli.parse_job_overrides(["logger=none", *overrides]))
    torch.manual_seed(spec.seed)
    start = time.perf_counter()
    reranker, tokenizer = build_reranker(spec)
    load_seconds = time.perf_counter() - start
    device = torch.device("cuda" if spec.trainer.get("accelerator") in ("gpu", "cuda") else "cpu")
    data = build_data(spec.data, spec.seed, tokenizer, queries=SCORED_QUERIES)
    return Prepared(spec, reranker.to(device), data, device, spec.compute.precision, load_seconds)


def non_embedding_parameters(reranker) -> int:
    return sum(p.numel() for n, p in reranker.backbone.named_parameters() if "embed" not in n)


def bench(overrides: list[str]) -> dict:
    job = prepare(overrides)
    spec, reranker, data, device, precision, bf16 = job.spec, job.reranker, job.data, job.device, job.precision, job.bf16
    name = torch.cuda.get_device_name() if device.type == "cuda" else "cpu"
    scoring = {
        "sorted+merged": scoring_rate(reranker, data, sort=True, merge=True),
        "sorted": scoring_rate(reranker, data, sort=True, merge=False),
        "fixed_max_length": scoring_rate(reranker, data, sort=False, merge=False),
    }
    training = {
        "padded_to_longest": training_rate(reranker, data, pad_to_max=False, device=device),
        "padded_to_max_length": training_rate(reranker, data, pad_to_max=True, device=device),
    }
    parameters = non_embedding_parameters(reranker)
    step_passes = 3 if spec.compute.gradient_checkpointing else 2
    achieved = {f"scoring {k}": useful_tflops(r, parameters, 1) for k, r in scoring.items()}
    achieved |= {f"training {k}": useful_tflops(r, parameters, step_passes) for k, r in training.items()}
    cpu = cpu_report() if device.type == "cpu" else None
    peak = gpu_peak_tflops(name)
    if cpu:
        peak = cpu["matmul_bf16_tflops" if bf16 else "matmul_fp32_tflops"]
    report = {
        "model": spec.model.name,
        "device": name,
        **({"cpu": cpu} if cpu else {}),
        "precision": precision,
        "threads": torch.get_num_threads(),
        "non_embedding_parameters": parameters,
        "model_load_s": round(job.load_seconds, 2),
        "scoring": scoring,
        "training": training,
        "useful_tflops": achieved,
        "fraction_of_peak": {k: v / peak for k, v in achieved.items()} if peak else "no known peak for this device",
        "training_to_scoring_pairs": training["padded_to_longest"]["pairs_per_s"] / scoring["sorted"]["pairs_per_s"],
        "job_start_to_first_training_step_s": first_step_seconds(overrides),
    }
    return report


def main() -> None:
    cli.main(bench)


if __name__ == "__main__":
    main()
