"""The tables the analysis commands write beside a checkpoint (`<job>/checkpoints/step-N/`), by name: the one
place the writers (ablate, probe, attention, adapter_stats) and the reader (the sweep report) take the names from. A
table `<name>` is the file `<name>.csv` and, when W&B logs it, the W&B table and job type `<name>`.
Light on purpose (no torch): the report imports it."""

ABLATIONS = ("modules", "layers", "boundary", "heads", "windows")
PROBE = "probe"
ATTENTION = "attention"
ADAPTER_STATS = "adapter-stats"


def ablation(kind: str) -> str:
    """The table of one ablation (one of `ABLATIONS`): one row per variant."""
    return f"ablation-{kind}"


def csv_file(table: str) -> str:
    return f"{table}.csv"


def queries_file(table: str) -> str:
    """The per-query values behind an ablation table, as JSON lines."""
    return f"{table}.queries.jsonl"
