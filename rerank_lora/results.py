"""Reading a job's metrics.jsonl back, as a table for people."""

import json
from pathlib import Path

SHOWN = ("nDCG@10", "RR(rel=2)@10")


def read_metrics(job_dir: Path) -> list[dict]:
    path = Path(job_dir) / "metrics.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()] if path.exists() else []


def table(rows: list[dict], shown=SHOWN) -> str:
    lines = [f"{'split':<6} {'ranker':<12} {'step':>6} " + " ".join(f"{m:>13}" for m in shown)]
    for row in sorted(rows, key=lambda r: (r["split"], r["step"] is not None, r["step"] or 0)):
        step = "-" if row["step"] is None else str(row["step"])
        lines.append(f"{row['split']:<6} {row['ranker']:<12} {step:>6} " + " ".join(f"{row[m]:>13.4f}" for m in shown))
    return "\n".join(lines)


def print_results(job_dir: Path) -> None:
    print(table(read_metrics(job_dir)))
    print(f"results: {Path(job_dir).resolve()}")
