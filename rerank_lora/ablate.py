"""Ablations without retraining: switch the LoRA update off in chosen places of a trained adapter and rerank.

    python -m rerank_lora.ablate checkpoint=PATH ablation=modules|layers|boundary [split=dev] [depth=20]
    python -m rerank_lora.ablate checkpoint=PATH ablation=[modules,layers,boundary] boundary.queries=10

- modules:  all / none / attention LoRA only / MLP LoRA only / each projection dropped / each projection kept alone
- layers:   all / none / each layer dropped / contiguous windows of `layers.window` layers kept
- boundary: keep LoRA only in layers <= b for every b (Chen et al. 2025); b is chosen on `split` (or on
            `boundary.queries` of its queries) and its effect reported on `boundary.report_split`

One model is loaded; every variant switches LoRA modules on and off in place. Tables go beside the
checkpoint: `ablation-<name>.csv` and the per-query values `ablation-<name>.queries.jsonl`.
"""

import logging
import random
import time
from dataclasses import dataclass, field
from pathlib import Path

from omegaconf import OmegaConf

from rerank_lora import cli
from rerank_lora.analysis.lora_switch import LoraSwitch
from rerank_lora.analysis.trained_job import TrainedJob, checkpoint_folders, job_config
from rerank_lora.analysis.wandb_tables import Chart, log_tables, wanted
from rerank_lora.cli import as_list, parse_args
from rerank_lora.data.datamodule import EvalBatch
from rerank_lora.errors import InputError
from rerank_lora.evaluation import metrics
from rerank_lora.evaluation.significance import holm, paired_t, per_query
from rerank_lora.tables import write_csv, write_jsonl

log = logging.getLogger("rerank_lora.ablate")
ABLATIONS = ("modules", "layers", "boundary")
DEFAULTS = {
    "checkpoint": "???",  # <job>/checkpoints/step-N, or a job folder (its last checkpoint)
    "ablation": "???",  # modules | layers | boundary, or a list of them
    "split": "dev",  # the split ablated (boundary: the split the boundary is chosen on)
    "depth": None,  # rerank each query's first-stage top-k; null: the job's data.eval_depth
    "merge": True,  # fold switched-on LoRA into the weights while scoring (faster; weights restored exactly)
    "logger": "job",  # job (the job's own logger) | wandb | none
    "layers": {"window": None},  # width of the kept windows; null: a sixth of the adapted layers, rounded up
    "boundary": {"queries": None, "measure": "nDCG@10", "report_split": "test"},
}


@dataclass
class Variant:
    name: str
    on: frozenset = field(repr=False)
    layer: int | None = None  # the layer dropped (drop-layer:L) or the boundary layer (boundary:b)


def module_variants(switch: LoraSwitch, modules_by_group) -> list[Variant]:
    everything = frozenset(switch.sites)
    variants = [Variant("all", everything), Variant("none", frozenset())]
    for group in ("attn", "mlp"):
        kept = switch.where(projections=modules_by_group[group])
        if kept and kept != everything:
            variants.append(Variant(f"{group}-only", kept))
    if len(switch.projections) > 1:
        for projection in switch.projections:
            variants.append(Variant(f"drop:{projection}", everything - switch.where(projections=[projection])))
        for projection in switch.projections:
            variants.append(Variant(f"keep:{projection}", switch.where(projections=[projection])))
    return variants


def layer_variants(switch: LoraSwitch, window: int | None) -> list[Variant]:
    layers = switch.layers
    if window is None:
        window = -(-len(layers) // 6)
    if not isinstance(window, int) or window < 1:
        raise InputError(f"layers.window={window!r}; accepted: an integer >= 1, or null")
    everything = frozenset(switch.sites)
    variants = [Variant("all", everything), Variant("none", frozenset())]
    variants += [Variant(f"drop-layer:{layer}", everything - switch.where(layers=[layer]), layer) for layer in layers]
    for start in range(0, len(layers), window):
        kept = layers[start : start + window]
        variants.append(Variant(f"keep-layers:{kept[0]}-{kept[-1]}", switch.where(layers=kept)))
    return variants


def boundary_variants(switch: LoraSwitch) -> list[Variant]:
    """LoRA kept in layers <= b, for b from -1 (no LoRA) to the last adapted layer (all of it)."""
    bounds = [-1, *switch.layers]
    return [Variant(f"boundary:{b}", switch.where(layers=[x for x in switch.layers if x <= b]), b) for b in bounds]


def compact(numbers: list[int]) -> str:
    """[0,1,2,5,7,8] -> '0-2,5,7-8'."""
    parts, run = [], []
    for n in sorted(numbers):
        if run and n != run[-1] + 1:
            parts.append(f"{run[0]}-{run[-1]}" if len(run) > 1 else str(run[0]))
            run = []
        run.append(n)
    if run:
        parts.append(f"{run[0]}-{run[-1]}" if len(run) > 1 else str(run[0]))
    return ",".join(parts)


def only_queries(batches: list[EvalBatch], qids: set[str]) -> list[EvalBatch]:
    kept = []
    for batch in batches:
        rows = [i for i, q in enumerate(batch.qids) if q in qids]
        if rows:
            inputs = {k: v[rows] for k, v in batch.inputs.items()}
            kept.append(EvalBatch([batch.qids[i] for i in rows], [batch.pids[i] for i in rows], inputs))
    return kept


class Ablation:
    """One loaded job and its LoRA switch; evaluates lists of variants on a split."""

    def __init__(self, job: TrainedJob, cfg):
        self.job, self.cfg = job, cfg
        self.switch = LoraSwitch(job.reranker.backbone)
        self.measures = list(job.cfg.measures)
        self._batches: dict[str, list[EvalBatch]] = {}

    def evaluate(self, variants: list[Variant], split: str, qids: set[str] | None = None, **extra) -> tuple[list, list]:
        """One row per variant (measures, deltas and Holm-corrected paired p-values against the variant `all`,
        or the one with every site on) and the per-query values."""
        if split not in self._batches:
            self._batches[split] = self.job.data.eval_batches(split)
        batches = self._batches[split] if qids is None else only_queries(self._batches[split], qids)
        qrels = self.job.data.qrels(split)
        rows, queries, values = [], [], []
        for variant in variants:
            started = time.perf_counter()
            run = self.switch.score(self.job.reranker, batches, variant.on, self.cfg.merge, desc=f"{variant.name} on {split}")
            seconds = time.perf_counter() - started
            per_q = per_query(qrels, run, self.measures)
            means = metrics.compute(qrels, run, self.measures)
            on = sorted(variant.on)
            rows.append(
                {
                    "step": self.job.step,
                    "split": split,
                    "depth": self.job.depth,
                    "queries": len(next(iter(per_q.values()))),
                    "variant": variant.name,
                    "layer": variant.layer,
                    **extra,
                    "layers_on": compact(sorted({s.layer for s in on})),
                    "projections_on": "+".join(p for p in self.switch.projections if any(s.projection == p for s in on)),
                    "sites_on": len(on),
                    "sites_total": len(self.switch.sites),
                    **means,
                    "seconds": round(seconds, 3),
                }
            )
            values.append(per_q)
            queries += [
                {
                    "step": self.job.step,
                    "split": split,
                    "variant": variant.name,
                    **({"role": extra["role"]} if "role" in extra else {}),
                    "qid": q,
                    **{m: per_q[m][q] for m in self.measures},
                }
                for q in sorted(per_q[self.measures[0]])
            ]
            log.info("%-22s %s  (%.1f s)", variant.name, " ".join(f"{m}={means[m]:.4f}" for m in self.measures[:2]), seconds)
        self._compare(rows, values, variants)
        return rows, queries

    def _compare(self, rows: list[dict], values: list[dict], variants: list[Variant]) -> None:
        full = frozenset(self.switch.sites)
        reference = next(i for i, v in enumerate(variants) if v.on == full) if any(v.on == full for v in variants) else None
        for measure in self.measures:
            tests = [
                paired_t(values[i][measure], values[reference][measure])
                if reference is not None and i != reference
                else (float("nan"),) * 3
                for i in range(len(rows))
            ]
            adjusted = holm([p for _, p, _ in tests])
            for row, (diff, _, _), p in zip(rows, tests, adjusted):
                row[f"delta_{measure}"] = None if reference is None else (0.0 if row is rows[reference] else diff)
                row[f"p_{measure}"] = p

    def modules(self) -> tuple[list, list]:
        return self.evaluate(module_variants(self.switch, self.job.cfg.model.modules), self.cfg.split)

    def layers(self) -> tuple[list, list]:
        return self.evaluate(layer_variants(self.switch, self.cfg.layers.window), self.cfg.split)

    def boundary(self) -> tuple[list, list]:
        """Every boundary on the selection queries; the chosen one (best `boundary.measure`, ties to the lower
        layer), no LoRA and all LoRA on the report split."""
        bcfg, split = self.cfg.boundary, self.cfg.split
        qids = None
        if bcfg.queries is not None:
            if not isinstance(bcfg.queries, int) or bcfg.queries < 1:
                raise InputError(f"boundary.queries={bcfg.queries!r}; accepted: an integer >= 1, or null (every query)")
            pool = sorted(self.job.data.first_stage[split])
            qids = set(random.Random(self.job.cfg.seed).sample(pool, min(bcfg.queries, len(pool))))
        variants = boundary_variants(self.switch)
        rows, queries = self.evaluate(variants, split, qids, role="select", chosen=False)
        best = max(range(len(rows)), key=lambda i: (rows[i][bcfg.measure], -i))
        rows[best]["chosen"] = True
        chosen = variants[best]
        log.info("boundary layer %s chosen on %s (%s=%.4f)", chosen.layer, split, bcfg.measure, rows[best][bcfg.measure])
        reported = [variants[-1], variants[0]] + ([chosen] if chosen not in (variants[0], variants[-1]) else [])
        more_rows, more_queries = self.evaluate(reported, bcfg.report_split, role="report")
        for row in more_rows:
            row["chosen"] = row["variant"] == chosen.name
        return rows + more_rows, queries + more_queries


def check(cfg, job_cfg) -> list[str]:
    """The ablations asked for, checked before any model loads."""
    names = as_list(cfg.ablation)
    unknown = [n for n in names if n not in ABLATIONS]
    if unknown or not names:
        raise InputError(
            f"ablation={OmegaConf.to_container(cfg).get('ablation')!r}; accepted: {', '.join(ABLATIONS)} (or a list)"
        )
    if cfg.boundary.measure not in job_cfg.measures:
        raise InputError(
            f"boundary.measure={cfg.boundary.measure!r}; accepted: one of the job's measures {list(job_cfg.measures)}"
        )
    wanted(cfg.logger, job_cfg)
    return list(dict.fromkeys(names))


def ablate(args: list[str]) -> list[Path]:
    cfg = parse_args(args, DEFAULTS, required=("checkpoint", "ablation"))
    (folder,) = checkpoint_folders(cfg.checkpoint, every=False)
    job_cfg, job_dir = job_config(folder)
    names = check(cfg, job_cfg)
    splits = [cfg.split] + ([cfg.boundary.report_split] if "boundary" in names else [])
    started = time.perf_counter()
    job = TrainedJob(folder, splits, cfg.depth)
    log.info("loaded %s step %s in %.1f s", job_dir, job.step, time.perf_counter() - started)
    ablation = Ablation(job, cfg)
    written = []
    for name in names:
        started = time.perf_counter()
        rows, queries = getattr(ablation, name)()
        log.info("ablation=%s: %d variants in %.1f s", name, len(rows), time.perf_counter() - started)
        rows = [{"ablation": name, **row} for row in rows]
        written.append(write_jsonl(folder / f"ablation-{name}.queries.jsonl", queries))
        written.append(write_csv(folder / f"ablation-{name}.csv", rows))
        if wanted(cfg.logger, job_cfg):
            measure = job_cfg.measures[0]
            chart = {
                "modules": Chart(name, "bar", "variant", measure),
                "layers": Chart(name, "line", "layer", measure, rows="drop-layer"),
                "boundary": Chart(name, "line", "layer", measure, rows="boundary"),
            }[name]
            log_tables(
                job_cfg,
                job_dir,
                f"ablation-{name}/step-{job.step}",
                {name: rows},
                {f"{name}-chart": chart},
                {"step": job.step, **OmegaConf.to_container(cfg)},
            )
        print(summary(rows, job_cfg.measures[:2]))
    return written


def summary(rows: list[dict], measures) -> str:
    lines = [f"{'split':<6} {'variant':<24} " + " ".join(f"{m:>13} {'delta':>8} {'p(Holm)':>8}" for m in measures)]
    for row in rows:
        cells = []
        for m in measures:
            delta, p = row.get(f"delta_{m}"), row.get(f"p_{m}")
            cells.append(
                f"{row[m]:>13.4f} {'' if delta is None else f'{delta:+.4f}':>8} {'' if p is None or p != p else f'{p:.3f}':>8}"
            )
        lines.append(f"{row['split']:<6} {row['variant']:<24} " + " ".join(cells))
    return "\n".join(lines)


def main() -> None:
    cli.main(ablate)


if __name__ == "__main__":
    main()
