"""The plan as text: one row per cell, the totals, and the assumptions behind the numbers."""

COLUMNS = ("#", "model", "rank", "targets", "steps", "pairs", "tokens real/computed", "evals", "scored", "PFLOP",
           "{time}", "mem GB ckpt/no", "fits")
NAMED = ("model", "lora.rank", "targets")  # the columns that name a cell; other overrides are listed below


def si(value: float) -> str:
    """1234567 -> 1.23M."""
    for unit, size in (("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if abs(value) >= size:
            return f"{value / size:.3g}{unit}"
    return f"{value:.3g}"


def duration(seconds: float, gpu: bool) -> str:
    return f"{seconds / 3600:.3g}" if gpu else f"{seconds / 60:.1f}"


def _tokens(counts: dict) -> str:
    return f"{si(counts['training_tokens'])}/{si(counts['training_tokens_padded'])}"


def row(cell: dict, gpu: bool) -> list[str]:
    memory = cell["memory_gb"]
    return [
        str(cell["cell"]), cell["model"], str(cell["rank"]), cell["targets"], str(cell["steps"]),
        si(cell["training_pairs"]), _tokens(cell), str(cell["evaluations"]), si(cell["pairs_scored"]),
        f"{cell['flops']['total'] / 1e15:.3g}", duration(cell["seconds"]["device" if gpu else "wall"], gpu),
        f"{memory['total_with_checkpointing']:.1f}/{memory['total_without_checkpointing']:.1f}",
        "yes" if memory["fits"] else "WILL NOT FIT",
    ]


def totals_row(totals: dict, gpu: bool) -> list[str]:
    return [
        "all", f"{totals['cells']} cells", "", "", str(totals["steps"]), si(totals["training_pairs"]),
        _tokens(totals), str(totals["evaluations"]), si(totals["pairs_scored"]),
        f"{totals['flops'] / 1e15:.3g}", duration(totals["device_seconds" if gpu else "wall_seconds"], gpu), "",
        f"{totals['cells'] - totals['cells_not_fitting']} fit",
    ]


def render(report: dict) -> str:
    gpu = not report["assumptions"]["device"].startswith("cpu")
    header = [c.format(time="GPU-h" if gpu else "min") for c in COLUMNS]
    rows = [header] + [row(cell, gpu) for cell in report["cells"]] + [totals_row(report["totals"], gpu)]
    widths = [max(len(r[i]) for r in rows) for i in range(len(header))]
    lines = ["  ".join(value.rjust(width) for value, width in zip(r, widths)) for r in rows]
    lines.insert(1, "-" * len(lines[0]))
    lines.insert(len(lines) - 1, "-" * len(lines[0]))
    notes = [f"  {key}: {value}" for key, value in report["assumptions"].items()]
    return "\n".join(lines + _other_overrides(report["cells"]) + ["", "assumptions:"] + notes + [_summary(report, gpu)])


def _other_overrides(cells: list[dict]) -> list[str]:
    """The overrides beyond the named columns: once if every cell has them, else per cell."""
    other = [[o for o in cell["overrides"] if o.lstrip("+~").partition("=")[0] not in NAMED] for cell in cells]
    common = [o for o in other[0] if all(o in cell for cell in other)] if other else []
    lines = [f"  every cell: {' '.join(common)}"] if common else []
    for cell, overrides in zip(cells, other):
        own = [o for o in overrides if o not in common]
        if own:
            lines.append(f"  cell {cell['cell']}: {' '.join(own)}")
    return ["", "overrides:", *lines] if lines else []


def _summary(report: dict, gpu: bool) -> str:
    totals = report["totals"]
    if gpu:
        return (f"total: {totals['flops'] / 1e15:.4g} PFLOP, {totals['device_seconds'] / 3600:.4g} GPU-hours "
                f"on {report['assumptions']['device']}; {totals['cells_not_fitting']} cell(s) will not fit")
    minutes = totals["wall_seconds"] / 60
    return (f"total: {totals['flops'] / 1e15:.4g} PFLOP, predicted {minutes:.1f} min ({minutes / 60:.2f} h) on this "
            f"CPU, start-up included; {totals['cells_not_fitting']} cell(s) will not fit in RAM")
