"""A job's metrics as the table printed at the end of a job, with the verdict beside each checkpoint: the
two-sided paired t-test's p-value over the split's queries against the untrained model (step 0) and against
the first stage, from the job's run files and qrels (uncorrected: one test per cell of the table). With more
than one split, rows `dev+test` pool their queries (the mean over all of them, and the test over all of them):
43 or 54 queries alone leave small differences as noise."""

from pathlib import Path

from rerank_lora.data.spec import DataSpec
from rerank_lora.data.trec_files import read_qrels, read_run
from rerank_lora.evaluation.selection import chosen_step
from rerank_lora.evaluation.significance import paired_t, per_query
from rerank_lora.job_folder import FIRST_STAGE, JobFolder

SHOWN = ("nDCG@10", "RR(rel=2)@10")


def table(job: JobFolder, shown=SHOWN) -> str:
    """The job's rows by split and step; the `shown` measures it logged (none of them: its first two)."""
    rows = sorted(job.metrics(), key=lambda r: (r["split"], r["step"] is not None, r["step"] or 0))
    logged = [key for key in rows[0] if key not in ("step", "split", "ranker")] if rows else []
    shown = [m for m in shown if m in logged] or logged[:2]
    head = " ".join(f"{m:>13} {'p(step0)':>8} {'p(first)':>8}" for m in shown)
    lines = [f"{'split':<8} {'ranker':<12} {'step':>6} {head}"]
    splits = {r["split"] for r in rows}
    values = {split: _per_query(job, split, {r["step"] for r in rows if r["split"] == split}, shown) for split in splits}
    if len(splits) > 1:
        name, pooled = "+".join(sorted(splits)), _pooled(values)
        rows += _pooled_rows(rows, pooled, name, shown)
        values[name] = pooled
    for row in rows:
        step = "-" if row["step"] is None else str(row["step"])
        found = values[row["split"]]
        cells = [f"{row[m]:>13.4f} {_p(found, row, 0, m):>8} {_p(found, row, None, m):>8}" for m in shown]
        lines.append(f"{row['split']:<8} {row['ranker']:<12} {step:>6} " + " ".join(cells))
    return "\n".join(lines)


def _pooled(values: dict) -> dict:
    """{step: {measure: {split:qid: value}}} over every split, for the steps every split has."""
    steps = set.intersection(*(set(found) for found in values.values()))
    return {
        step: {m: {f"{split}:{q}": v for split, found in values.items() for q, v in found[step][m].items()}
               for m in next(iter(values.values()))[step]}
        for step in steps
    }


def _pooled_rows(rows: list[dict], pooled: dict, name: str, shown) -> list[dict]:
    """One row per (ranker, step) that every split has (`pooled`: `_pooled`'s values): each measure's mean over
    all their queries."""
    seen = dict.fromkeys((r["ranker"], r["step"]) for r in rows if r["step"] in pooled)
    return [{"split": name, "ranker": ranker, "step": step,
             **{m: sum(pooled[step][m].values()) / len(pooled[step][m]) for m in shown}} for ranker, step in seen]


def _per_query(job: JobFolder, split: str, steps: set, shown) -> dict:
    """{step: {measure: {qid: value}}} of every run of `split` (step None: the first stage); {} without qrels."""
    if not job.qrels_file(split).is_file():
        return {}
    qrels = read_qrels(job.qrels_file(split))
    runs = {step: job.run_file(split, step) for step in steps}
    return {step: per_query(qrels, read_run(path), shown) for step, path in runs.items() if path.is_file()}


def _p(values: dict, row: dict, against, measure: str) -> str:
    if row["ranker"] == FIRST_STAGE or row["step"] == against or row["step"] not in values or against not in values:
        return ""
    _, p, _ = paired_t(values[row["step"]][measure], values[against][measure])
    return f"{p:.3f}"


def print_results(job: JobFolder, data: DataSpec, select_by: str) -> None:
    """The table, and how the job's `data` and `select_by` bear on it: the checkpoint chosen for the held-out
    splits, evaluation queries allowed in training."""
    print(table(job))
    print("p: two-sided paired t-test over the split's queries, against step 0 and against the first stage (uncorrected)")
    if data.held_out_splits:
        step = chosen_step(job.metrics(), data.eval_splits[0], select_by)
        print(f"checkpoint chosen on {data.eval_splits[0]} by {select_by}: step {step}; "
              f"{', '.join(data.held_out_splits)} (held out) scored at step 0 and there only")
    if data.allow_eval_queries_in_training:
        print("data.allow_eval_queries_in_training=true: training may include evaluation queries; a metric on "
              "them is not a held-out result")
    print(f"results: {Path(job.path).resolve()}")
