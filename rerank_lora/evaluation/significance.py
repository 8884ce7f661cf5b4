"""Per-query measures (ir_measures `iter_calc`) and two-sided paired t-tests between rankers over the same
queries, with Holm's correction for the number of comparisons made together; `compare` does both for a list
of pairs (the ablation tables and the sweep report use it)."""

import math
from typing import NamedTuple

import ir_measures
from scipy import stats

from rerank_lora.evaluation.metrics import judged_run, parse_measures, split_by_input


def per_query(qrels: dict, run: dict, names) -> dict[str, dict[str, float]]:
    """{measure: {qid: value}} over the run's judged queries (the queries `metrics.compute` averages, ties
    broken as it breaks them; a margin only over the queries that have one)."""
    measures = parse_measures(names)
    judged, ordered = judged_run(qrels, run)
    by_rank, margins = split_by_input(measures)
    values = {str(m): dict.fromkeys(judged, 0.0) for m in by_rank}
    for row in ir_measures.iter_calc(by_rank, judged, ordered) if by_rank else ():
        values[str(row.measure)][row.query_id] = float(row.value)
    values.update({str(m): m.per_query(judged, run) for m in margins})
    return {str(m): values[str(m)] for m in measures}


def paired_t(a: dict[str, float], b: dict[str, float]) -> tuple[float, float, int]:
    """Mean of a - b over the shared queries, the two-sided paired t-test's p-value, and the number of queries.
    Identical scores on every query give p = 1."""
    qids = sorted(set(a) & set(b))
    if len(qids) < 2:
        return math.nan, math.nan, len(qids)
    diffs = [a[q] - b[q] for q in qids]
    mean = sum(diffs) / len(diffs)
    if all(abs(d - diffs[0]) < 1e-12 for d in diffs):
        return mean, 1.0 if abs(mean) < 1e-12 else 0.0, len(qids)
    return mean, float(stats.ttest_rel([a[q] for q in qids], [b[q] for q in qids]).pvalue), len(qids)


def holm(pvalues: list[float]) -> list[float]:
    """Holm-Bonferroni adjusted p-values (same order; NaN stays NaN and does not count as a comparison)."""
    order = sorted((p, i) for i, p in enumerate(pvalues) if not math.isnan(p))
    adjusted = [math.nan] * len(pvalues)
    running = 0.0
    for rank, (p, index) in enumerate(order):
        running = max(running, min(1.0, (len(order) - rank) * p))
        adjusted[index] = running
    return adjusted


class Difference(NamedTuple):
    delta: float  # mean of a - b over the shared queries
    p: float  # the paired t-test's p-value, Holm-corrected over the pairs compared together
    queries: int


PerQuery = dict[str, dict[str, float]]  # {measure: {qid: value}}, as `per_query` returns


def compare(pairs: list[tuple[PerQuery, PerQuery] | None], measures) -> list[dict[str, Difference]]:
    """Each pair (a, b) of per-query values against each other: per measure, the mean difference a - b and the
    paired t-test's p-value, Holm-corrected over the pairs (per measure). A pair given as None is not
    compared (NaN, NaN, 0 queries) and does not count as a comparison."""
    missing = (math.nan, math.nan, 0)
    tests = {m: [missing if pair is None else paired_t(pair[0][m], pair[1][m]) for pair in pairs] for m in measures}
    adjusted = {m: holm([p for _, p, _ in tests[m]]) for m in measures}
    return [{m: Difference(tests[m][i][0], adjusted[m][i], tests[m][i][2]) for m in measures} for i in range(len(pairs))]
