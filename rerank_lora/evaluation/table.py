"""A job's metrics as the table printed at the end of a job."""

from pathlib import Path

from rerank_lora.job_folder import JobFolder

SHOWN = ("nDCG@10", "RR(rel=2)@10")


def table(rows: list[dict], shown=SHOWN) -> str:
    lines = [f"{'split':<6} {'ranker':<12} {'step':>6} " + " ".join(f"{m:>13}" for m in shown)]
    for row in sorted(rows, key=lambda r: (r["split"], r["step"] is not None, r["step"] or 0)):
        step = "-" if row["step"] is None else str(row["step"])
        lines.append(f"{row['split']:<6} {row['ranker']:<12} {step:>6} " + " ".join(f"{row[m]:>13.4f}" for m in shown))
    return "\n".join(lines)


def print_results(job: JobFolder) -> None:
    print(table(job.metrics()))
    print(f"results: {Path(job.path).resolve()}")
