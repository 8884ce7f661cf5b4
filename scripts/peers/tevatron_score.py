"""Scores of Tevatron's own reranker inference (texttron/tevatron, tevatron.reranker.driver.rerank) in float32 on
the CPU, for the reference tests (tests/test_reference.py); runs in the peers' venv (`make peers-setup`), never
imports rerank_lora.

Runs the rerank driver's main() as it is (its arguments, tokenizer set-up, RerankerInferenceDataset reading the
pairs JSONL, RerankerInferenceCollator, RerankerModel.load of the base folder and the LoRA adapter folder, merged,
the pad id pinned to the tokenizer's, its output file) with one change, made by subclassing: RerankerModel.load
defaults to float32 and `--attn-implementation` (sdpa) instead of its bfloat16 and flash_attention_2, which need a
GPU. Writes the driver's run file (qid<TAB>docid<TAB>score, best first) and prints one JSON object on stdout:
{"scores": {qid: {docid: score}}, "settings": ..., "versions": ...}.

    python scripts/peers/tevatron_score.py --base DIR [--adapter DIR] --pairs pairs.jsonl --out run.tsv
        [--query-prefix 'query: '] [--passage-prefix 'document: '] [--rerank-max-len 512] [--append-eos-token]

pairs.jsonl: Tevatron's inference rows, one {"query_id", "query", "docid", "title", "text"} a line.
"""

import argparse
import contextlib
import json
import sys
from importlib import metadata
from pathlib import Path

import torch
from tevatron_options import add_pair_options


def driver_arguments(args) -> list[str]:
    """tevatron.reranker.driver.rerank's command line."""
    named = [
        "--output_dir", str(args.out.parent / "tevatron-rerank"),
        "--model_name_or_path", str(args.base),
        "--dataset_name", "json", "--dataset_path", str(args.pairs),
        "--dataset_cache_dir", str(args.out.parent / "tevatron-datasets"),
        "--rerank_output_path", str(args.out),
        "--query_prefix", args.query_prefix, "--passage_prefix", args.passage_prefix,
        "--rerank_max_len", str(args.rerank_max_len),
        "--per_device_eval_batch_size", str(args.batch_size),
        "--use_cpu", "--dataloader_num_workers", "0", "--report_to", "none",
    ]
    if args.adapter:
        named += ["--lora_name_or_path", str(args.adapter)]
    if args.tokenizer:
        named += ["--tokenizer_name", str(args.tokenizer)]
    if args.append_eos_token:
        named += ["--append_eos_token"]
    return named


def run_tevatron(args) -> None:
    from tevatron.reranker.driver import rerank as driver

    class Float32Reranker(driver.RerankerModel):
        @classmethod
        def load(cls, model_name_or_path, lora_name_or_path=None, **hf_kwargs):
            hf_kwargs.setdefault("torch_dtype", torch.float32)
            hf_kwargs.setdefault("attn_implementation", args.attn_implementation)
            return super().load(model_name_or_path, lora_name_or_path=lora_name_or_path, **hf_kwargs)

    driver.RerankerModel = Float32Reranker
    sys.argv = ["tevatron.reranker.driver.rerank", *driver_arguments(args)]
    with contextlib.redirect_stdout(sys.stderr):  # stdout is this script's JSON only
        driver.main()


def read_run(path: Path) -> dict[str, dict[str, float]]:
    scores: dict[str, dict[str, float]] = {}
    for line in path.read_text().splitlines():
        qid, docid, score = line.split("\t")
        scores.setdefault(qid, {})[docid] = float(score)
    return scores


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--base", type=Path, required=True, help="the base model folder (model_name_or_path)")
    parser.add_argument("--adapter", type=Path, help="a LoRA adapter folder (lora_name_or_path)")
    parser.add_argument("--tokenizer", type=Path, help="tokenizer_name (default: the base folder's, as the driver)")
    parser.add_argument("--pairs", type=Path, required=True, help="Tevatron's inference JSONL")
    parser.add_argument("--out", type=Path, required=True, help="the driver's run file")
    add_pair_options(parser)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--attn-implementation", default="sdpa")
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    return parser.parse_args()


def main() -> None:
    args = parse_args()
    torch.set_num_threads(args.threads)
    run_tevatron(args)
    print(json.dumps({
        "scores": read_run(args.out),
        "settings": {
            "dtype": "float32", "device": "cpu", "attn_implementation": args.attn_implementation,
            "query_prefix": args.query_prefix, "passage_prefix": args.passage_prefix,
            "rerank_max_len": args.rerank_max_len, "append_eos_token": args.append_eos_token,
        },
        "versions": {
            "torch": torch.__version__, "transformers": metadata.version("transformers"),
            "peft": metadata.version("peft"), "tevatron": metadata.version("tevatron"),
        },
    }))


if __name__ == "__main__":
    main()
