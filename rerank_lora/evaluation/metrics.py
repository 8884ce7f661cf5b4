"""The measures, on qrels and runs held as dicts: ir_measures strings (e.g. RR(rel=2)@10) and the score margin
(`Margin`, `Margin(rel=2)`), the one measure here that reads the scores themselves rather than the ranking.

Two rules hold for every ranking measure: score ties are broken as trec_eval breaks them (`trec_files.ranked`), and
a measure is never cut deeper than the run was reranked (`check_cutoffs`; the margin has no cutoff: it is taken over
every passage the run holds for a query, the reranked top-depth)."""

import math
import re
from dataclasses import dataclass

import ir_measures

from rerank_lora.data.spec import DataSpec, split_depth
from rerank_lora.data.trec_files import ranked
from rerank_lora.errors import InputError

# TREC DL has graded qrels: MRR counts rel >= 2 as relevant (trec_eval -l 2); nDCG uses the grades.
# All cut at 10, the default rerank depth (data.eval_depth).
DEFAULT_MEASURES = ("nDCG@10", "RR(rel=2)@10", "RR@10")
MARGIN_NAME = re.compile(r"Margin(?:\(rel=(\d+)\))?")


@dataclass(frozen=True)
class ScoreMargin:
    """Per query: the mean score of the run's passages judged relevant (grade >= rel) minus the mean score of its
    other passages (judged non-relevant or unjudged, as trec_eval counts them); on a split with one judged positive
    per query, the positive's score minus the others' mean. A query without both kinds in its run has no value
    (left out of the mean and of paired tests)."""

    rel: int = 1

    @property
    def params(self) -> dict:
        return {"rel": self.rel}  # no cutoff

    def __str__(self) -> str:
        return "Margin" if self.rel == 1 else f"Margin(rel={self.rel})"

    def per_query(self, qrels: dict, run: dict) -> dict[str, float]:
        values = {}
        for qid, scores in run.items():
            grades = qrels.get(qid, {})
            relevant = [s for pid, s in scores.items() if grades.get(pid, 0) >= self.rel]
            others = [s for pid, s in scores.items() if grades.get(pid, 0) < self.rel]
            if relevant and others:
                values[qid] = sum(relevant) / len(relevant) - sum(others) / len(others)
        return values


def parse_measure(name):
    """An ir_measures measure, or a ScoreMargin for `Margin` / `Margin(rel=N)`."""
    found = MARGIN_NAME.fullmatch(str(name).strip())
    if found:
        return ScoreMargin(int(found.group(1) or 1))
    try:
        measure = ir_measures.parse_measure(str(name))
        measure.validate_params()  # a missing required parameter (Recall without a cutoff) is an assert there
        return measure
    except (ValueError, NameError, SyntaxError, TypeError, AssertionError):
        raise InputError(
            f"measure {name!r} is neither an ir_measures measure nor Margin / Margin(rel=N) (no cutoff); "
            f"e.g. {', '.join(DEFAULT_MEASURES)}, Margin"
        ) from None


def parse_measures(names) -> list:
    return [parse_measure(name) for name in names]


def split_by_input(measures: list) -> tuple[list, list[ScoreMargin]]:
    """(the measures computed on the ranking, by ir_measures; the margins, computed on the scores)."""
    return [m for m in measures if not isinstance(m, ScoreMargin)], [m for m in measures if isinstance(m, ScoreMargin)]


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
    by_rank, margins = split_by_input(measures)
    values = {str(m): float(v) for m, v in ir_measures.calc_aggregate(by_rank, judged, ordered).items()} if by_rank else {}
    for margin in margins:
        per_query = margin.per_query(judged, run)
        values[str(margin)] = sum(per_query.values()) / len(per_query) if per_query else math.nan
    return {str(m): values[str(m)] for m in measures}
