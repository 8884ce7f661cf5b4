"""What each lever that changes cost does to speed on this machine: the default job and each lever applied to it
alone, with scoring pairs/s (length-sorted, unmerged, as the job evaluates), training pairs/s (the job's own
training path), training as a fraction of scoring, the useful FLOP rate of each as a fraction of the peak
(on a CPU: its measured matmul rate in the job's precision), and the job's start-up to its first training step.

    python -m rerank_lora.bench.levers [job overrides applied to every row]    (make bench-levers ARGS=...)
"""

import torch

from rerank_lora import cli
from rerank_lora.bench.speed import (
    cpu_matmul_tflops,
    first_step_seconds,
    gpu_peak_tflops,
    non_embedding_parameters,
    prepare,
    scoring_rate,
    training_rate,
    useful_tflops,
)
from rerank_lora.model.precision import BF16_FLAGS, cpu_features, has_bf16_instructions

# name: the overrides that pull the lever (each alone on the default job)
LEVERS = {
    "default": [],
    "all 30 layers (model.num_layers=null)": ["model.num_layers=null"],
    "padded training batches (trainer.packed=false)": ["trainer.packed=false"],
    "padded, 4 pairs at a time by length": ["trainer.packed=false", "trainer.length_chunks=4"],
    "LoRA dropout 0.1 (lora.dropout=0.1)": ["lora.dropout=0.1"],
    "LoRA rank 32 (lora.rank=32)": ["lora.rank=32"],
    "attention LoRA only (targets=attn)": ["targets=attn"],
    "probe head (head.init=probe)": ["head.init=probe"],
    "compiled layers (trainer.compile=true)": ["trainer.compile=true"],
    "all 30 layers, compiled": ["model.num_layers=null", "trainer.compile=true"],
    "bf16 autocast (trainer.precision=bf16-mixed)": ["trainer.precision=bf16-mixed"],
}


def lever_row(name: str, overrides: list[str], peak_tflops: dict) -> dict:
    job = prepare(overrides)
    scoring = scoring_rate(job.reranker, job.data, sort=True, merge=False)
    training = training_rate(job.reranker, job.data, pad_to_max=False, device=job.device)
    parameters = non_embedding_parameters(job.reranker)
    peak = peak_tflops.get(job.precision)
    passes = 3 if job.spec.compute.gradient_checkpointing else 2
    return {
        "lever": name, "precision": job.precision,
        "scoring_pairs_per_s": scoring["pairs_per_s"], "training_pairs_per_s": training["pairs_per_s"],
        "training_to_scoring": training["pairs_per_s"] / scoring["pairs_per_s"],
        "scoring_fraction_of_peak": useful_tflops(scoring, parameters, 1) / peak if peak else None,
        "training_fraction_of_peak": useful_tflops(training, parameters, passes) / peak if peak else None,
        "start_to_first_step_s": first_step_seconds(overrides),
    }


def peaks(gpu: bool) -> dict:
    """TFLOP/s by precision: a known GPU's bf16 peak, or this CPU's measured matmul rates."""
    return {"bf16-mixed": gpu_peak_tflops(torch.cuda.get_device_name())} if gpu else cpu_matmul_tflops()


def bench_levers(overrides: list[str]) -> dict:
    gpu = any(o in ("trainer=gpu", "trainer=ddp") for o in overrides)
    features, rates = cpu_features(), peaks(gpu)
    rows, skipped = [], {}
    for name, lever in LEVERS.items():
        if not gpu and "trainer.precision=bf16-mixed" in lever and not has_bf16_instructions(features):
            skipped[name] = (f"no {' or '.join(BF16_FLAGS)} on this CPU: bf16 matmuls run at "
                             f"{rates['bf16-mixed'] * 1e3:.1f} GFLOP/s vs fp32 {rates['32-true'] * 1e3:.1f}")
            continue
        rows.append(lever_row(name, [*overrides, *lever], rates))
        print(format_row(rows[-1]), flush=True)
    return {"cpu": features, "peak_tflops": rates, "threads": torch.get_num_threads(), "rows": rows, "skipped": skipped}


def format_row(row: dict) -> str:
    def fraction(value):
        return "-" if value is None else f"{value:.2f}"

    return (f"{row['lever']:<53} scoring {row['scoring_pairs_per_s']:6.2f} pairs/s ({fraction(row['scoring_fraction_of_peak'])} "
            f"of peak)  training {row['training_pairs_per_s']:5.2f} ({fraction(row['training_fraction_of_peak'])})  "
            f"ratio {row['training_to_scoring']:.2f}  start {row['start_to_first_step_s']:.0f} s")


def main() -> None:
    cli.main(bench_levers)


if __name__ == "__main__":
    main()
