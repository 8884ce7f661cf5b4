"""The ablation engine: one loaded job and its LoRA switch score lists of variants (`variants.py`) on a split,
without reloading; every variant is compared with the one that has every site on (paired t-tests,
Holm-corrected over the variants), and the boundary layer is chosen on one split and reported on another."""

import logging
import time
from dataclasses import dataclass

from rerank_lora.analysis.lora_switch import LoraSwitch
from rerank_lora.analysis.prefix_sharing import PrefixSharingScorer
from rerank_lora.analysis.query_sample import only_queries, sample_queries
from rerank_lora.analysis.trained_job import TrainedJob
from rerank_lora.analysis.variants import (
    Variant,
    attention_split,
    attention_window_variants,
    boundary_variants,
    compact,
    head_variants,
    layer_variants,
    module_variants,
)
from rerank_lora.data.datamodule import EvalBatch
from rerank_lora.evaluation import metrics
from rerank_lora.evaluation.significance import PerQuery, compare, per_query

log = logging.getLogger(__name__)
Rows = tuple[list[dict], list[dict]]  # one row per variant, and one per variant and query


@dataclass(frozen=True)
class BoundarySearch:
    split: str  # the boundary is chosen on this split
    measure: str  # as the best of this measure (ties: the lower layer)
    report_split: str  # and its effect reported on this one
    queries: int | None = None  # chosen on a seeded sample of this many of `split`'s queries (None: every query)


class Ablation:
    """One loaded job and its LoRA switch; `merge` folds the switched-on LoRA into the weights while scoring;
    `queries`: each split is scored on a seeded sample of this many of its queries (None: every query)."""

    def __init__(self, job: TrainedJob, merge: bool = True, share_prefix: bool = True, queries: int | None = None):
        self.job, self.merge, self.share_prefix, self.queries = job, merge, share_prefix, queries
        self.switch = LoraSwitch(job.reranker.backbone)
        self.measures = job.measures
        self._batches: dict[str, list[EvalBatch]] = {}

    def modules(self, split: str) -> Rows:
        return self.evaluate(module_variants(self.switch, self.job.model.modules), split)

    def layers(self, split: str, window: int | None = None) -> Rows:
        return self.evaluate(layer_variants(self.switch, window), split)

    def heads(self, split: str, layers: list[int] | None = None) -> Rows:
        """`layers`: the adapted layers whose heads are kept and omitted (None: every one)."""
        variants = head_variants(self.switch, self._attention, self.switch.head_layout.heads, layers)
        return self.evaluate(variants, split, references=[self._attention_reverted()])

    def windows(self, split: str, width: int | None = None, stride: int | None = None) -> Rows:
        variants = attention_window_variants(self.switch, self._attention, width, stride)
        return self.evaluate(variants, split, references=[self._attention_reverted()])

    @property
    def _attention(self) -> list[str]:
        return self.job.model.modules["attn"]

    def _attention_reverted(self):
        """Every site but attention's: where each kept head or window differs from only at its own layers."""
        return attention_split(self.switch, self._attention)[1]

    def boundary(self, search: BoundarySearch) -> Rows:
        """Every boundary on the selection queries; the chosen one, no LoRA and all LoRA on the report split."""
        variants = boundary_variants(self.switch)
        qids = sample_queries(self.job.data.first_stage[search.split], search.queries, self.job.seed)
        rows, queries = self.evaluate(variants, search.split, qids, role="select", chosen=False)
        best = max(range(len(rows)), key=lambda i: (rows[i][search.measure], -i))
        rows[best]["chosen"], chosen = True, variants[best]
        log.info(
            "boundary layer %s chosen on %s (%s=%.4f)", chosen.layer, search.split, search.measure, rows[best][search.measure]
        )
        reported = [variants[-1], variants[0]] + ([chosen] if chosen not in (variants[0], variants[-1]) else [])
        more_rows, more_queries = self.evaluate(reported, search.report_split, role="report", chosen=False)
        for row in more_rows:
            row["chosen"] = row["layer"] == chosen.layer
        return rows + more_rows, queries + more_queries

    def evaluate(self, variants: list[Variant], split: str, qids: set[str] | None = None, references=(), **extra) -> Rows:
        """One row per variant (what is on, the measures, and deltas and Holm-corrected paired p-values against
        the variant with every site on) and the per-query values; `extra` columns go into every row;
        `references`: more sets of sites whose hidden states prefix sharing may start variants from."""
        sampled = sample_queries(self.job.data.first_stage[split], self.queries, self.job.seed)
        batches = self._eval_batches(split, qids if qids is not None else sampled)
        qrels = self.job.data.qrels(split)
        rows, queries, values = [], [], []
        for variant, run, seconds in zip(variants, *self._runs(variants, batches, split, references)):
            by_query, means = per_query(qrels, run, self.measures), metrics.compute(qrels, run, self.measures)
            rows.append(self._row(variant, split, by_query, means, seconds, extra))
            queries += self._query_rows(variant, split, by_query, extra)
            values.append(by_query)
            log.info("%-22s %s  (%.1f s)", variant.name, " ".join(f"{m}={means[m]:.4f}" for m in self.measures[:2]), seconds)
        self._compare(rows, values, variants)
        return rows, queries

    def _runs(self, variants: list[Variant], batches: list[EvalBatch], split: str, references=()) -> tuple[list, list[float]]:
        """Each variant's run and seconds; with share_prefix, the hidden states below a variant's first switched
        layer come from a reference pass (analysis/prefix_sharing.py), else every variant runs the whole model."""
        if self.share_prefix:
            seconds: list[float] = []
            desc = f"variants on {split}"
            scorer = PrefixSharingScorer(self.switch, self.job.reranker, batches, self.merge, desc, references)
            return scorer.runs([v.on for v in variants], seconds), seconds
        runs, seconds = [], []
        for variant in variants:
            started = time.perf_counter()
            runs.append(self.switch.score(self.job.reranker, batches, variant.on, self.merge, desc=f"{variant.name} on {split}"))
            seconds.append(time.perf_counter() - started)
        return runs, seconds

    def _eval_batches(self, split: str, qids: set[str] | None) -> list[EvalBatch]:
        if split not in self._batches:
            self._batches[split] = self.job.data.eval_batches(split)
        return self._batches[split] if qids is None else only_queries(self._batches[split], qids)

    def _row(self, variant: Variant, split: str, by_query: PerQuery, means: dict, seconds: float, extra: dict) -> dict:
        on = sorted(variant.on)
        return {
            "step": self.job.step,
            "split": split,
            "depth": self.job.depth_of(split),
            "queries": max(len(values) for values in by_query.values()),  # a margin may lack a few
            **variant.columns(),
            **extra,
            "layers_on": compact({s.layer for s in on}),
            "projections_on": "+".join(p for p in self.switch.projections if any(s.projection == p for s in on)),
            "sites_on": len(on),
            "sites_total": len(self.switch.sites),
            **means,
            "seconds": round(seconds, 3),
        }

    def _query_rows(self, variant: Variant, split: str, by_query: PerQuery, extra: dict) -> list[dict]:
        role = {"role": extra["role"]} if "role" in extra else {}
        head = {"step": self.job.step, "split": split, "variant": variant.name, **role}
        qids = sorted({q for values in by_query.values() for q in values})
        return [{**head, "qid": q, **{m: by_query[m].get(q) for m in self.measures}} for q in qids]

    def _compare(self, rows: list[dict], values: list[PerQuery], variants: list[Variant]) -> None:
        """delta_<M> and p_<M> of every row against the variant with every site on (none there: empty)."""
        everything = frozenset(self.switch.sites)
        reference = next((i for i, v in enumerate(variants) if v.on == everything), None)
        pairs = [None if reference in (None, i) else (values[i], values[reference]) for i in range(len(rows))]
        for i, (row, differences) in enumerate(zip(rows, compare(pairs, self.measures))):
            for m in self.measures:
                row[f"delta_{m}"] = None if reference is None else 0.0 if i == reference else differences[m].delta
                row[f"p_{m}"] = differences[m].p
