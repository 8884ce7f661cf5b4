"""The job's chosen checkpoint, for its held-out splits (data.held_out_splits): the best checkpoint on the first
eval split by one measure (select_by), the earliest on a tie. The held-out splits are reranked only at step 0 and
at that checkpoint, so what they report was not chosen on them: a job that peaks early keeps its best checkpoint
and is judged on queries the choice never saw."""

from rerank_lora.errors import InputError
from rerank_lora.job_folder import MODEL, JobFolder


def check_select_by(measure: str, measures, held_out) -> None:
    if held_out and measure not in measures:
        raise InputError(f"select_by={measure!r} is not a measure this job computes; accepted: one of {list(measures)}")


def chosen_step(rows: list[dict], split: str, measure: str) -> int | None:
    """The model checkpoint of `rows` (metrics rows) best on `split` by `measure`, the earliest on a tie."""
    scored = [(row[measure], -row["step"]) for row in rows if row["split"] == split and row["ranker"] == MODEL]
    return -max(scored)[1] if scored else None


def missing_held_out(job: JobFolder, held_out, split: str, measure: str) -> dict[int, list[str]]:
    """{step: held-out splits not yet reranked there}, for step 0 and the chosen checkpoint."""
    best = chosen_step(job.metrics(), split, measure)
    done = set(job.model_metrics())
    steps = sorted({0, best}) if best is not None else []
    missing = {step: [name for name in held_out if (name, step) not in done] for step in steps}
    return {step: names for step, names in missing.items() if names}


def score_held_out(reranker, evaluator, job: JobFolder, held_out, split: str, measure: str) -> None:
    """Rerank the held-out splits at step 0 and at the chosen checkpoint, loading each one's saved weights."""
    for step, names in missing_held_out(job, held_out, split, measure).items():
        reranker.load_checkpoint(job.checkpoint(step))
        evaluator.evaluate_model(reranker, step, names)
