"""Evaluate any TREC run file against TREC qrels with ir_measures; prints the metrics as JSON.

    python -m rerank_lora.evaluate run=PATH qrels=PATH [measures='[nDCG@10,RR(rel=2)@10]']
"""

from rerank_lora import cli
from rerank_lora.data.trec_files import read_qrels, read_run
from rerank_lora.evaluation import metrics

DEFAULTS = {"run": "???", "qrels": "???", "measures": list(metrics.DEFAULT_MEASURES)}


def evaluate(args: list[str]) -> dict[str, float]:
    cfg = cli.parse_args(args, DEFAULTS, required=("run", "qrels"))
    return metrics.compute(read_qrels(cfg.qrels), read_run(cfg.run), cli.as_list(cfg.measures))


def main() -> None:
    cli.main(evaluate)


if __name__ == "__main__":
    main()
