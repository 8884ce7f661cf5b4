"""ir_measures on qrels and runs held as dicts: metric names are ir_measures strings, e.g. RR(rel=2)@10.

Two rules hold for every measure: score ties are broken as trec_eval breaks them (`trec_files.ranked`), and a
measure is never cut deeper than the run was reranked (`check_cutoffs`)."""

import ir_measures

from rerank_lora.data.spec import DataSpec, split_depth
from rerank_lora.data.trec_files import ranked
from rerank_lora.errors import InputError

# TREC DL has graded qrels: MRR counts rel >= 2 as relevant (trec_eval -l 2); nDCG uses the grades.
# All cut at 10, the default rerank depth (data.eval_depth).
DEFAULT_MEASURES = ("nDCG@10", "RR(rel=2)@10", "RR@10")


def parse_measures(names) -> list:
    measures = []
    for name in names:
        try:
            measures.append(ir_measures.parse_measure(str(name)))
        except (ValueError, NameError, SyntaxError, TypeError):
            raise InputError(f"measure {name!r} is not an ir_measures measure; e.g. {', '.join(DEFAULT_MEASURES)}") from None
    return measures


def check_cutoffs(names, depth: int, deeper: str) -> None:
    """Refuse a measure cut deeper than the run's `depth` (it would promise documents never reranked); `deeper`
    names the setting that reranks deeper, e.g. data.eval_depth. Measures without a cutoff pass."""
    too_deep = [(str(m), m.params["cutoff"]) for m in parse_measures(names) if m.params.get("cutoff", 0) > depth]
    if too_deep:
        said = ", ".join(f"measure {name} is cut at {cutoff}" for name, cutoff in too_deep)
        deepest = max(cutoff for _, cutoff in too_deep)
        raise InputError(
            f"{said} but the run is reranked to depth {depth}; accepted: cutoffs <= {depth}, or {deeper} >= {deepest}"
        )


def check_split_cutoffs(names, spec: DataSpec, splits, eval_depth_key: str = "data.eval_depth") -> None:
    """`check_cutoffs` for each of `splits` at its depth (`split_depth`); `eval_depth_key` names the setting of
    data.eval_depth where another command sets it (e.g. `depth`)."""
    for split in dict.fromkeys(splits):
        own = (spec.splits.get(split) or {}).get("depth") is not None
        check_cutoffs(names, split_depth(spec, split), f"data.splits.{split}.depth" if own else eval_depth_key)


def trec_eval_order(run: dict[str, dict[str, float]]) -> dict[str, dict[str, float]]:
    """The run with each query's scores replaced by n, n-1, ..., 1 in `ranked` order: no ties left, so every
    ir_measures provider (pytrec_eval, msmarco, ...) ranks as trec_eval does."""
    return {q: {pid: float(len(scores) - i) for i, (pid, _) in enumerate(ranked(scores))} for q, scores in run.items()}


def judged_run(qrels: dict, run: dict) -> tuple[dict, dict]:
    """The qrels and the run (in `trec_eval_order`) of the run's queries that have judgments."""
    judged = {q: qrels[q] for q in run if q in qrels}
    return judged, trec_eval_order({q: run[q] for q in judged})


def compute(qrels: dict, run: dict, names=DEFAULT_MEASURES) -> dict[str, float]:
    """Mean of each measure over the run's queries that have judgments (as trec_eval without -c)."""
    measures = parse_measures(names)
    judged, ordered = judged_run(qrels, run)
    if not judged:
        raise InputError("the run and the qrels share no query id")
    values = ir_measures.calc_aggregate(measures, judged, ordered)
    return {str(m): float(values[m]) for m in measures}
