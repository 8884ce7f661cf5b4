"""Scoring speed of FlagEmbedding's FlagLLMReranker (PyPI FlagEmbedding), for `python -m rerank_lora.bench.peers`;
runs in the peers' venv (`make peers-setup`), never imports rerank_lora.

Loads the model folder as FlagLLMReranker on the CPU, scores the first few pairs once untimed (warm-up), then
times one compute_score call over every pair: with FlagLLMReranker's own defaults when --batch-size and
--max-length are left out, else with them. Prints one JSON object on stdout.

    python scripts/peers/flag_score.py --model DIR --pairs pairs.jsonl [--batch-size 16 --max-length 160]
"""

import argparse
import contextlib
import json
import sys
import time
from importlib import metadata
from pathlib import Path

import torch


def read_pairs(path: Path) -> list[list[str]]:
    """[query, passage] texts of each line {"qid", "pid", "query", "passage"}."""
    rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    return [[row["query"], row["passage"]] for row in rows]


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, required=True, help="Hugging Face model folder")
    parser.add_argument("--pairs", type=Path, required=True, help='JSONL of {"qid", "pid", "query", "passage"}')
    parser.add_argument("--batch-size", type=int, help="compute_score's batch_size (default: FlagLLMReranker's)")
    parser.add_argument("--max-length", type=int, help="compute_score's max_length (default: FlagLLMReranker's)")
    parser.add_argument("--warmup-pairs", type=int, default=8)
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    return parser.parse_args()


def main() -> None:
    args = parse_args()
    torch.set_num_threads(args.threads)
    from FlagEmbedding import FlagLLMReranker

    pairs = read_pairs(args.pairs)
    chosen = {k: v for k, v in (("batch_size", args.batch_size), ("max_length", args.max_length)) if v is not None}
    with contextlib.redirect_stdout(sys.stderr):  # stdout is this script's JSON only
        reranker = FlagLLMReranker(str(args.model), devices="cpu")
        reranker.compute_score(pairs[: args.warmup_pairs], **chosen)
        start = time.perf_counter()
        scores = reranker.compute_score(pairs, **chosen)
        seconds = time.perf_counter() - start
    if len(scores) != len(pairs):
        raise SystemExit(f"error: FlagLLMReranker returned {len(scores)} scores for {len(pairs)} pairs")
    print(json.dumps({
        "peer": "FlagLLMReranker",
        "pairs_per_s": len(pairs) / seconds,
        "seconds": seconds,
        "pairs": len(pairs),
        "settings": {
            "batch_size": chosen.get("batch_size", reranker.batch_size),
            "max_length": chosen.get("max_length", reranker.max_length),
            "defaults": not chosen,
            "use_fp16": reranker.use_fp16, "device": "cpu", "warmup_pairs": args.warmup_pairs,
        },
        "threads": torch.get_num_threads(),
        "versions": {
            "torch": torch.__version__, "transformers": metadata.version("transformers"),
            "FlagEmbedding": metadata.version("FlagEmbedding"),
        },
    }))


if __name__ == "__main__":
    main()
