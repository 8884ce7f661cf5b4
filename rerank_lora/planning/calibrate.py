"""device=cpu: this machine's FLOP rate and the fraction of it the model reaches.

The rate is measured now (fp32 `torch.matmul` of 1024 x 1024 matrices on torch's current thread count, the best
of short bursts, ~4 s): run the plan with the thread count the jobs will have. The model's fractions of it
(training, scoring) and a sweep's fixed costs are constants measured once on SmolLM2 + the shipped mini set
(below), or measured again with `calibrate=true` (~1 minute on a quiet machine: a few training steps as the job
takes them and the evaluator's `score` on a few queries, FLOPs counted as cost.py counts them). On a machine shared
with other work, wall-clock timings of the model are not worth much: calibrate when it is quiet.
"""

import statistics
import time

import torch

from rerank_lora.planning.cost import Rate

MATMUL_SIZE = 1024
SCORED_QUERIES = 5  # x data.eval_depth pairs scored
TRAIN_STEPS = 3
REPEATS = 2
# Measured on the 2-core development machine (AMD EPYC, AVX2; SmolLM2-135M fp32, 2 threads, msmarco-mini, rank 8
# attn), three times at quiet moments (calibrate=true twice, once by hand): fp32 matmul 131-146 GFLOP/s; training
# 0.57-0.62 of it (~6 s a step of 8 pairs), scoring 0.69-0.81 (~5 pairs/s). Training again on the default job with
# packed batches, FLOPs counted on real tokens (calibrate=true twice): 0.575 and 0.541 of 139-154 GFLOP/s; the plan
# then gave 446-462 s for the demo, which ran 440 s. The means below. Fixed costs from the log
# of a 2-cell multirun (4 steps, depth 2; its training and scoring came within 5% of this model's): ~5 s a cell
# beyond them (model load, data, first-stage run, W&B offline run, Lightning set-up, checkpoint files), ~10 s once
# for the process (imports, exit).
CPU_CALIBRATION = {"train_utilisation": 0.57, "scoring_utilisation": 0.76, "cell_overhead_s": 5.0, "startup_s": 10.0}


def best_seconds(work, repeats: int) -> float:
    """The shortest of `repeats` wall-clock timings of `work()`: on a shared machine other processes only ever
    make a timing longer, so the shortest is the closest to this machine's own speed."""
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        work()
        times.append(time.perf_counter() - start)
    return min(times)


def matmul_rate(seconds: float = 4.0, bursts: int = 16, dtype: torch.dtype = torch.float32) -> float:
    """FLOP/s of `dtype` matmuls on this CPU with torch's current threads: the median of short bursts (a quiet
    machine's bursts still vary by +-10%, with the host's clock)."""
    a, b = (torch.randn(MATMUL_SIZE, MATMUL_SIZE, dtype=dtype) for _ in range(2))
    torch.matmul(a, b)
    rates = []
    for _ in range(bursts):
        count, start = 0, time.perf_counter()
        while time.perf_counter() - start < seconds / bursts:
            torch.matmul(a, b)
            count += 1
        rates.append(2 * MATMUL_SIZE**3 * count / (time.perf_counter() - start))
    return statistics.median(rates)


def cpu_rate(peak: float, calibration: dict | None = None) -> Rate:
    values = calibration or CPU_CALIBRATION
    return Rate(f"cpu ({torch.get_num_threads()} threads)", peak, values["train_utilisation"],
                values["scoring_utilisation"], values["cell_overhead_s"], values["startup_s"])


def measure_model(cfg, peak: float) -> dict:
    """The model of `cfg` on this CPU: FLOP/s of a few training steps (as the job takes them: forward, group
    softmax loss, backward, clipping, AdamW) and of scoring some queries (the evaluator's `score`), in quiet
    seconds, as fractions of `peak`. The fixed costs stay the constants'."""
    from rerank_lora.configs import to_spec
    from rerank_lora.data.collection import load_collection
    from rerank_lora.data.datamodule import RerankDataModule
    from rerank_lora.data.spec import DataSpec
    from rerank_lora.planning.architecture import architecture
    from rerank_lora.planning.cost import forward_flops, step_passes
    from rerank_lora.run import build_reranker

    torch.manual_seed(cfg.seed)
    reranker, tokenizer = build_reranker(cfg)
    spec = to_spec(DataSpec, cfg.data, "data")
    data = RerankDataModule(load_collection(spec), tokenizer, spec, cfg.seed)
    arch = architecture(dict(cfg.model), len(tokenizer))
    scored, scoring_s = _scoring(reranker, data, spec.eval_splits[0])
    trained, train_s = _training(reranker, data, spec)
    passes = step_passes(cfg.trainer.get("gradient_checkpointing", False))
    return {
        **CPU_CALIBRATION,
        "train_utilisation": passes * sum(forward_flops(arch, trained).values()) / train_s / peak,
        "scoring_utilisation": sum(forward_flops(arch, scored).values()) / scoring_s / peak,
        "measured": {"train_pairs_per_s": trained.pairs / train_s, "scoring_pairs_per_s": scored.pairs / scoring_s},
    }


def _scoring(reranker, data, split: str):
    from rerank_lora.evaluation.evaluator import score
    from rerank_lora.planning.tokens import Tokens, batch

    data.first_stage = {split: dict(list(data.first_stage[split].items())[:SCORED_QUERIES])}
    batches = data.eval_batches(split)
    score(reranker, batches[:1], desc="warm-up", merge=False)
    seconds = best_seconds(lambda: score(reranker, batches, desc="calibrating scoring", merge=False), REPEATS)
    return sum((batch(b.inputs["attention_mask"].sum(dim=1).tolist()) for b in batches), Tokens()), seconds


def _training(reranker, data, spec):
    """TRAIN_STEPS steps (each taken REPEATS times, the best counted) after a warm-up step, on the first groups of
    the training stream."""
    from rerank_lora.data.pairs import pad
    from rerank_lora.planning.tokens import Tokens, batch

    per_step = spec.queries_per_batch
    steps = [[p for k in range(s * per_step, (s + 1) * per_step) for p in data.train_set.group(k)]
             for s in range(TRAIN_STEPS + 1)]
    batches = [pad(pairs, data.pad_id) for pairs in steps]
    optimizer = torch.optim.AdamW([p for p in reranker.parameters() if p.requires_grad], lr=1e-4)
    reranker.train()

    def step(inputs) -> None:
        scores = reranker.training_scores(inputs["input_ids"], inputs["attention_mask"]).view(-1, spec.group_size)
        torch.nn.functional.cross_entropy(scores, torch.zeros(scores.size(0), dtype=torch.long)).backward()
        torch.nn.utils.clip_grad_norm_(reranker.parameters(), 1.0)
        optimizer.step()
        optimizer.zero_grad()

    step(batches[0])
    seconds = sum(best_seconds(lambda inputs=inputs: step(inputs), REPEATS) for inputs in batches[1:])
    return sum((batch([len(p) for p in pairs], reranker.packed) for pairs in steps[1:]), Tokens()), seconds
