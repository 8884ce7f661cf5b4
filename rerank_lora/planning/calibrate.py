"""device=cpu: this machine's FLOP rate and the fraction of it the model reaches.

The rate is measured now (fp32 `torch.matmul` of 1024 x 1024 matrices on torch's current thread count, the best
of short bursts, ~4 s): run the plan with the thread count the jobs will have. The model's fractions of it
(training, scoring) and a sweep's fixed costs are constants measured once on SmolLM2 + the shipped mini set
(below), or measured again with `calibrate=true` (~1 minute on a quiet machine: a few training steps as the job
takes them and the evaluator's `score` on a few queries, FLOPs counted as cost.py counts them). On a machine shared
with other work, wall-clock timings of the model are not worth much: calibrate when it is quiet.
"""

import dataclasses
import time

import torch

from rerank_lora.job.spec import JobSpec
from rerank_lora.planning.cost import Rate

SCORED_QUERIES = 5  # x data.eval_depth pairs scored
TRAIN_STEPS = 3
REPEATS = 2
# The model's fractions of the fp32 matmul peak and a cell's fixed costs, as measured at quiet moments on the 2-core
# development machine (the measurements: docs/levers.md, "The plan's CPU constants"): a plan without calibrate=true
# needs no model run; another machine measures its own with calibrate=true.
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


def cpu_rate(peak: float, calibration: dict | None = None) -> Rate:
    values = calibration or CPU_CALIBRATION
    return Rate(f"cpu ({torch.get_num_threads()} threads)", peak, values["train_utilisation"],
                values["scoring_utilisation"], values["cell_overhead_s"], values["startup_s"])


def measure_model(spec: JobSpec, peak: float) -> dict:
    """The job's model on this CPU: FLOP/s of a few training steps (as the job takes them: forward, group
    softmax loss, backward, clipping, AdamW) and of scoring some queries (the evaluator's `score`), in quiet
    seconds, as fractions of `peak`. The fixed costs stay the constants'."""
    from rerank_lora.job.builders import build_data, build_reranker
    from rerank_lora.planning.architecture import architecture
    from rerank_lora.planning.cost import forward_flops, step_passes

    torch.manual_seed(spec.seed)
    reranker, tokenizer = build_reranker(spec)
    data = build_data(spec.data, spec.seed, tokenizer, queries=SCORED_QUERIES)
    arch = architecture(dataclasses.asdict(spec.model), len(tokenizer))
    scored, scoring_s = _scoring(reranker, data, spec.data.eval_splits[0])
    trained, train_s = _training(reranker, data, spec.data)
    passes = step_passes(spec.compute.gradient_checkpointing)
    return {
        **CPU_CALIBRATION,
        "train_utilisation": passes * sum(forward_flops(arch, trained).values()) / train_s / peak,
        "scoring_utilisation": sum(forward_flops(arch, scored).values()) / scoring_s / peak,
        "measured": {"train_pairs_per_s": trained.pairs / train_s, "scoring_pairs_per_s": scored.pairs / scoring_s},
    }


def _scoring(reranker, data, split: str):
    from rerank_lora.evaluation.evaluator import score
    from rerank_lora.planning.tokens import Tokens, batch

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
        reranker.group_loss(inputs).backward()
        torch.nn.utils.clip_grad_norm_(reranker.parameters(), 1.0)
        optimizer.step()
        optimizer.zero_grad()

    step(batches[0])
    seconds = sum(best_seconds(lambda inputs=inputs: step(inputs), REPEATS) for inputs in batches[1:])
    return sum((batch([len(p) for p in pairs], reranker.packed) for pairs in steps[1:]), Tokens()), seconds
