"""ir_measures on qrels and runs held as dicts: metric names are ir_measures strings, e.g. RR(rel=2)@10."""

import ir_measures

from rerank_lora.errors import InputError

# TREC DL has graded qrels: MRR counts rel >= 2 as relevant (trec_eval -l 2); nDCG uses the grades.
DEFAULT_MEASURES = ("nDCG@10", "RR(rel=2)@10", "RR@10", "nDCG@20", "AP(rel=2)@100")


def parse_measures(names) -> list:
    measures = []
    for name in names:
        try:
            measures.append(ir_measures.parse_measure(str(name)))
        except (ValueError, NameError, SyntaxError, TypeError):
            raise InputError(f"measure {name!r} is not an ir_measures measure; e.g. {', '.join(DEFAULT_MEASURES)}") from None
    return measures


def compute(qrels: dict, run: dict, names=DEFAULT_MEASURES) -> dict[str, float]:
    """Mean of each measure over the run's queries that have judgments (as trec_eval without -c)."""
    measures = parse_measures(names)
    judged = {q: qrels[q] for q in run if q in qrels}
    if not judged:
        raise InputError("the run and the qrels share no query id")
    values = ir_measures.calc_aggregate(measures, judged, {q: run[q] for q in judged})
    return {str(m): float(values[m]) for m in measures}
