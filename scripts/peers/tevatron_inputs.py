"""The token ids Tevatron's reranker feeds its model (texttron/tevatron, src/tevatron/reranker), for the reference
tests (tests/test_reference.py); runs in the peers' venv (`make peers-setup`), never imports rerank_lora.

Each row's (query, title, passage) is made one string by Tevatron's own `format_pair` with the given prefixes, the
rows are collated by its own `RerankerInferenceCollator` (one batch: truncation to rerank_max_len, minus one when
append_eos_token, EOS appended, right padding to a multiple of pad_to_multiple_of) with the tokenizer set up as its
rerank driver sets it up (pad id 0 when the tokenizer has none, padding on the right). Prints one JSON object:
the formatted strings, the padded batch (input_ids, attention_mask), each row's ids without padding, the pad id,
and the position transformers' sequence classifiers read (the last token that is not the pad id).

    python scripts/peers/tevatron_inputs.py --tokenizer DIR --rows rows.jsonl [--query-prefix 'query: ']
        [--passage-prefix 'document: '] [--rerank-max-len 512] [--append-eos-token] [--pad-to-multiple-of 16]

rows.jsonl: one {"query", "title", "passage"} a line ("title" may be left out: "").
"""

import argparse
import json
from pathlib import Path

import torch
from tevatron_options import add_pair_options
from transformers import AutoTokenizer


def classifier_positions(input_ids: torch.Tensor, pad_token_id: int) -> list[int]:
    """Where transformers' *ForSequenceClassification read the score: the last token that is not the pad id (the
    rule of their forward, e.g. LlamaForSequenceClassification, written out)."""
    non_pad = (input_ids != pad_token_id).int()
    positions = torch.arange(input_ids.shape[-1], dtype=torch.int32)
    return (positions * non_pad).argmax(-1).tolist()


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tokenizer", type=Path, required=True, help="a Hugging Face tokenizer folder")
    parser.add_argument("--rows", type=Path, required=True, help='JSONL of {"query", "title", "passage"}')
    defaults = add_pair_options(parser)
    parser.add_argument("--pad-to-multiple-of", type=int, default=defaults.pad_to_multiple_of)
    return parser.parse_args()


def main() -> None:
    from tevatron.reranker.arguments import DataArguments
    from tevatron.reranker.collator import RerankerInferenceCollator
    from tevatron.reranker.dataset import format_pair

    args = parse_args()
    data_args = DataArguments(
        query_prefix=args.query_prefix, passage_prefix=args.passage_prefix, rerank_max_len=args.rerank_max_len,
        append_eos_token=args.append_eos_token, pad_to_multiple_of=args.pad_to_multiple_of,
    )
    tokenizer = AutoTokenizer.from_pretrained(args.tokenizer)
    if tokenizer.pad_token_id is None:  # as tevatron.reranker.driver.rerank sets it up
        tokenizer.pad_token_id = 0
    tokenizer.padding_side = "right"

    rows = [json.loads(line) for line in args.rows.read_text(encoding="utf-8").splitlines() if line.strip()]
    texts = [format_pair(r["query"], r["passage"], r.get("title", ""), data_args.query_prefix, data_args.passage_prefix)
             for r in rows]
    features = [(str(k), str(k), text) for k, text in enumerate(texts)]
    _, _, batch = RerankerInferenceCollator(data_args=data_args, tokenizer=tokenizer)(features)
    ids, mask = batch["input_ids"], batch["attention_mask"]
    print(json.dumps({
        "texts": texts,
        "input_ids": ids.tolist(),
        "attention_mask": mask.tolist(),
        "ids": [row[: int(length)] for row, length in zip(ids.tolist(), mask.sum(-1).tolist())],
        "pad_token_id": tokenizer.pad_token_id,
        "eos_token_id": tokenizer.eos_token_id,
        "classifier_positions": classifier_positions(ids, tokenizer.pad_token_id),
    }))


if __name__ == "__main__":
    main()
