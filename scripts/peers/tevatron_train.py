"""Training speed of Tevatron's reranker trainer (texttron/tevatron, src/tevatron/reranker), for
`python -m rerank_lora.bench.peers`; runs in the peers' venv (`make peers-setup`), never imports rerank_lora.

Runs Tevatron's own driver (tevatron.reranker.driver.train: its arguments, RerankerModel with
reranker_model_type=sequence_classification as RankLLaMA, RerankerTrainDataset reading the training JSONL,
RerankerTrainCollator, RerankerTrainer) with two observers added by subclassing: a TrainerCallback that
timestamps every optimizer step, and a collator that counts the tokens of each batch. Only the steps after the
warm-up are timed (not model loading, not the final save). Prints one JSON object on stdout.

    python scripts/peers/tevatron_train.py --model DIR --train train.jsonl --out DIR [--warmup-steps 2 --train-steps 10 ...]
"""

import argparse
import contextlib
import dataclasses
import json
import sys
import time
from importlib import metadata
from pathlib import Path

import torch
from transformers import TrainerCallback

LORA_TARGETS = "q_proj,k_proj,v_proj,o_proj,gate_proj,up_proj,down_proj"


class StepClock(TrainerCallback):
    """perf_counter at the start and the end of each optimizer step."""

    def __init__(self):
        self.begins, self.ends = [], []

    def on_step_begin(self, args, state, control, **kwargs):
        self.begins.append(time.perf_counter())

    def on_step_end(self, args, state, control, **kwargs):
        self.ends.append(time.perf_counter())


def timed_seconds(clock: StepClock, warmup: int) -> float:
    """From the end of the last warm-up step (the first step's start without warm-up) to the last step's end:
    every timed step's batch fetching, tokenising and collating counts, as in the project's own measurement."""
    start = clock.ends[warmup - 1] if warmup else clock.begins[0]
    return clock.ends[-1] - start


def driver_arguments(args) -> list[str]:
    """tevatron.reranker.driver.train's command line for the benchmark's settings."""
    return [
        "--output_dir", str(args.out / "model"),
        "--model_name_or_path", str(args.model),
        "--reranker_model_type", "sequence_classification",
        "--attn_implementation", "sdpa",
        "--lora", "--lora_r", str(args.lora_rank), "--lora_alpha", str(args.lora_alpha),
        "--lora_dropout", str(args.lora_dropout), "--lora_target_modules", LORA_TARGETS,
        "--dataset_name", "json", "--dataset_path", str(args.train), "--dataset_cache_dir", str(args.out / "datasets"),
        # RankLLaMA's recipe (examples/rankllama): `query: {q} document: {title} {passage}` + EOS
        "--query_prefix", "query:", "--passage_prefix", "document:", "--append_eos_token",
        "--rerank_max_len", str(args.max_length),  # with --append_eos_token: max_length - 1 tokens + EOS
        "--train_group_size", str(args.group_size),
        "--per_device_train_batch_size", str(args.queries_per_step),
        "--learning_rate", str(args.lr),
        "--max_steps", str(args.warmup_steps + args.train_steps),
        "--train_sampling_strategy", "sequential",  # the groups in file order, as ours trains on them
        "--save_strategy", "no", "--report_to", "none", "--disable_tqdm", "true",
        "--use_cpu", "--seed", str(args.seed), "--dataloader_num_workers", "0",
    ]


def run_tevatron(args) -> tuple[StepClock, list[tuple[int, int]]]:
    """Tevatron's driver main() with the clock and the token counter in place; returns both."""
    from tevatron.reranker.driver import train as driver

    clock, tokens = StepClock(), []

    class TimedTrainer(driver.RerankerTrainer):
        def __init__(self, *positional, **named):
            super().__init__(*positional, callbacks=[clock], **named)

    class CountingCollator(driver.RerankerTrainCollator):
        def __call__(self, features):
            batch = super().__call__(features)
            mask = batch["attention_mask"]
            tokens.append((int(mask.sum()), mask.numel()))  # (real tokens, tokens computed with padding)
            return batch

    driver.RerankerTrainer, driver.RerankerTrainCollator = TimedTrainer, CountingCollator
    sys.argv = ["tevatron.reranker.driver.train", *driver_arguments(args)]
    with contextlib.redirect_stdout(sys.stderr):  # the Trainer prints its logs: stdout is this script's JSON only
        driver.main()
    return clock, tokens


def tevatron_default(name: str):
    """A DataArguments default this script leaves as Tevatron sets it."""
    from tevatron.reranker.arguments import DataArguments

    return next(f.default for f in dataclasses.fields(DataArguments) if f.name == name)


def tevatron_commit() -> str | None:
    """The commit of the Tevatron source make peers-setup installed (PEERS_VENV/src/tevatron/.peers-source, which
    scripts/peers/setup.sh writes from the archive's header or the checkout), if known."""
    source = Path(sys.prefix) / "src" / "tevatron" / ".peers-source"
    if not source.is_file():
        return None
    fields = dict(line.split(" ", 1) for line in source.read_text().splitlines() if " " in line)
    return fields.get("commit") or None


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, required=True, help="Hugging Face model folder")
    parser.add_argument("--train", type=Path, required=True, help="training groups in Tevatron's JSONL format")
    parser.add_argument("--out", type=Path, required=True, help="scratch folder")
    parser.add_argument("--warmup-steps", type=int, default=2)
    parser.add_argument("--train-steps", type=int, default=10)
    parser.add_argument("--group-size", type=int, default=4)
    parser.add_argument("--queries-per-step", type=int, default=2)
    parser.add_argument("--max-length", type=int, default=160)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--lora-rank", type=int, default=8)
    parser.add_argument("--lora-alpha", type=int, default=16)
    parser.add_argument("--lora-dropout", type=float, default=0.0)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    return parser.parse_args()


def main() -> None:
    args = parse_args()
    torch.set_num_threads(args.threads)
    clock, tokens = run_tevatron(args)
    if len(clock.ends) != args.warmup_steps + args.train_steps:
        raise SystemExit(f"error: Tevatron ran {len(clock.ends)} steps, expected {args.warmup_steps + args.train_steps}")
    seconds = timed_seconds(clock, args.warmup_steps)
    pairs = args.train_steps * args.queries_per_step * args.group_size
    real, computed = (sum(counts) for counts in zip(*tokens[args.warmup_steps :]))
    print(json.dumps({
        "peer": "tevatron",
        "pairs_per_s": pairs / seconds,
        "seconds": seconds,
        "steps": args.train_steps,
        "warmup_steps": args.warmup_steps,
        "pairs": pairs,
        "tokens_per_pair": real / pairs,
        "computed_tokens_per_pair": computed / pairs,
        "settings": {
            "reranker_model_type": "sequence_classification",
            "group_size": args.group_size, "queries_per_step": args.queries_per_step,
            "rerank_max_len": args.max_length, "append_eos_token": True,
            "pad_to_multiple_of": tevatron_default("pad_to_multiple_of"),
            "lr": args.lr, "lora": {"r": args.lora_rank, "alpha": args.lora_alpha, "dropout": args.lora_dropout,
                                    "targets": LORA_TARGETS},
            "dtype": "float32", "device": "cpu",
        },
        "threads": torch.get_num_threads(),
        "versions": {
            "torch": torch.__version__, "transformers": metadata.version("transformers"),
            "peft": metadata.version("peft"), "tevatron": metadata.version("tevatron"),
            "tevatron_commit": tevatron_commit(),
        },
    }))


if __name__ == "__main__":
    main()
