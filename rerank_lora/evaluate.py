"""Evaluate any TREC run file against TREC qrels with ir_measures; prints the metrics as JSON.

    python -m rerank_lora.evaluate run=PATH qrels=PATH [measures='[nDCG@10,RR(rel=2)@10]']
"""

import json
import sys

from omegaconf import OmegaConf

from rerank_lora import metrics
from rerank_lora.data.collection import read_qrels, read_run
from rerank_lora.errors import InputError

DEFAULTS = {"run": "???", "qrels": "???", "measures": list(metrics.DEFAULT_MEASURES)}


def evaluate(args: list[str]) -> dict[str, float]:
    given = OmegaConf.from_dotlist(args)
    unknown = sorted(set(given) - set(DEFAULTS))
    if unknown:
        raise InputError(f"unknown argument(s) {unknown}; accepted: {', '.join(DEFAULTS)} (as key=value)")
    cfg = OmegaConf.merge(DEFAULTS, given)
    missing = [key for key in ("run", "qrels") if OmegaConf.is_missing(cfg, key)]
    if missing:
        raise InputError(f"missing {', '.join(f'{k}=PATH' for k in missing)}")
    measures = [cfg.measures] if isinstance(cfg.measures, str) else list(cfg.measures)
    return metrics.compute(read_qrels(cfg.qrels), read_run(cfg.run), measures)


def main() -> None:
    try:
        print(json.dumps(evaluate(sys.argv[1:]), indent=2))
    except InputError as err:
        raise SystemExit(f"error: {err}") from None


if __name__ == "__main__":
    main()
