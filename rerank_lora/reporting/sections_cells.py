"""Report sections on the trained cells, compared with each other and with the first stage: does each cell
beat the first stage, how effectiveness grows with the step, and what the LoRA rank and the target set change.
Differences between cells come with paired t-tests over the queries, Holm-corrected within each table."""

import itertools
from collections.abc import Callable

from rerank_lora.evaluation.significance import PerQuery, compare
from rerank_lora.reporting import plots
from rerank_lora.reporting.page import Page
from rerank_lora.reporting.sweep import CellResults, Sweep, p_holm

# (A, B), each at the checkpoint the report compares on the split (CellResults.step_for: the final one; on a held-out
# split the chosen one). B None: the first stage of A's queries; B A itself: A at step 0.
Pair = tuple[CellResults, CellResults | None]


def b_step(pair: Pair, split: str) -> int | None:
    """The checkpoint of B on `split` (None: the first stage)."""
    a, b = pair
    if b is None:
        return None
    return 0 if b is a else b.step_for(split)


def pair_values(pair: Pair, split: str, measures: list[str]) -> tuple[PerQuery, PerQuery] | None:
    """The per-query values of A and B on `split`; None where a run is missing or the depths differ."""
    a, b = pair
    values_a = a.per_query(split, a.step_for(split), measures)
    values_b = (b or a).per_query(split, b_step(pair, split), measures)
    comparable = values_a is not None and values_b is not None and (b is None or a.depth == b.depth)
    return (values_a, values_b) if comparable else None


def b_label(pair: Pair) -> str:
    a, b = pair
    return "first stage" if b is None else f"{a.label} at step 0" if b is a else b.label


def comparison_rows(sweep: Sweep, pairs: list[Pair], split: str) -> list[dict]:
    """One row per pair: mean difference and Holm-corrected paired p-value per measure."""
    differences = compare([pair_values(pair, split, sweep.measures) for pair in pairs], sweep.measures)
    rows = []
    for pair, by_measure in zip(pairs, differences):
        a = pair[0]
        step_b = b_step(pair, split)
        row = {"cell A": a.label, "step A": a.step_for(split), "cell B": b_label(pair),
               "step B": "" if step_b is None else step_b, "split": split}
        row["queries"] = by_measure[sweep.primary].queries
        for m in sweep.measures:
            row[f"Δ {m} (A−B)"], row[p_holm(m)] = by_measure[m].delta, by_measure[m].p
        rows.append(row)
    return rows


def comparison_table(page: Page, sweep: Sweep, table_id: str, pairs_by_split: dict[str, list[Pair]], caption: str) -> None:
    rows = [row for split, pairs in pairs_by_split.items() for row in comparison_rows(sweep, pairs, split)]
    tests = [c for m in sweep.measures for c in (f"Δ {m} (A−B)", p_holm(m))]
    columns = ["cell A", "step A", "cell B", "step B", "split", "queries", *tests]
    page.table(table_id, columns, rows, {p_holm(m): sweep.significant for m in sweep.measures}, caption)


def groups_of(sweep: Sweep, key: Callable[[CellResults], tuple]) -> dict[tuple, list[CellResults]]:
    """The trained cells grouped by `key`, in the sweep's order."""
    groups: dict[tuple, list[CellResults]] = {}
    for cell in sweep.trained():
        groups.setdefault(key(cell), []).append(cell)
    return groups


def overview(page: Page, sweep: Sweep) -> None:
    page.section(
        "cells",
        "Cells",
        "One row per job of the sweep, at its final checkpoint; a held-out split (scored at step 0 and at the "
        "checkpoint chosen on the first eval split only) at that chosen checkpoint, its step in the column beside. "
        "Δ and p compare with the first-stage ranking of the same queries and, on a held-out split, with the "
        "cell's own step 0.",
    )
    held_out = [s for s in sweep.splits if any(c.held_out(s) for c in sweep.cells)]
    values = [(f"{s} {m}", s, m) for s in sweep.splits for m in sweep.measures]
    chosen = {f"{s} chosen step": s for s in held_out}
    first = sweep.cells[0]
    rows = [
        {"cell": "first stage", "status": "", "depth": first.depth, "final step": ""}
        | {c: first.value(s, None, m) for c, s, m in values}
    ]
    for cell in sweep.cells:
        head = {"cell": cell.label, "status": cell.status, "depth": cell.depth, "final step": cell.final_step}
        head |= {column: cell.step_for(s) for column, s in chosen.items()}
        rows.append(head | {c: cell.value(s, cell.step_for(s), m) for c, s, m in values})
    page.table("cells-table", ["cell", "status", "depth", "final step", *chosen, *(c for c, _, _ in values)], rows)
    pairs = {s: [(c, None) for c in sweep.trained()] + [(c, c) for c in sweep.trained() if s in held_out]
             for s in sweep.splits}
    comparison_table(page, sweep, "first-stage-tests", pairs,
                     "each cell (step A) against the first stage, and on a held-out split against its own step 0")


def learning_curves(page: Page, sweep: Sweep) -> None:
    page.section(
        "curves",
        "Effectiveness against the checkpoint step",
        "Per model: one line per LoRA rank and target set; dashed: the first-stage ranking.",
    )
    for split in sweep.splits:
        panels = []
        for model in dict.fromkeys(c.model for c in sweep.cells):
            cells = [c for c in sweep.cells if c.model == model and c.steps(split)]
            for m in sweep.measures if cells else []:
                panels.append(
                    {
                        "title": f"{model}: {m} on {split}",
                        "xlabel": "checkpoint step",
                        "ylabel": m,
                        "lines": [(f"r{c.rank} {c.targets}", *c.curve(split, m), "-o") for c in cells],
                        "hlines": [("first stage", cells[0].value(split, None, m))],
                    }
                )
        if panels:
            page.heading(split)
            page.figure(plots.curves(panels), f"learning curves on {split}")


def ranks(page: Page, sweep: Sweep) -> None:
    page.section("ranks", "Rank against rank", "Final checkpoint (held-out splits: the chosen checkpoint, step A / B in "
                 "the table); one line per model and target set.")
    groups = groups_of(sweep, lambda c: (c.model, c.targets))
    panels = [
        {
            "title": f"{m} on {split}",
            "xlabel": "LoRA rank",
            "ylabel": m,
            "lines": [
                (f"{model} {targets}", [c.rank for c in cells], [c.value(split, c.step_for(split), m) for c in cells], "-o")
                for (model, targets), cells in groups.items()
            ],
            "hlines": [("first stage", sweep.first_stage(split, m))],
            "xlog2": True,
        }
        for split in sweep.splits
        for m in sweep.measures
    ]
    page.figure(plots.curves(panels), "rank against rank")
    pairs = [p for cells in groups.values() for p in itertools.combinations(sorted(cells, key=lambda c: c.rank), 2)]
    if pairs:
        comparison_table(
            page, sweep, "rank-tests", {s: pairs for s in sweep.splits}, "pairs of ranks with the same model and targets"
        )
    else:
        page.note("No two cells differ in rank alone: no rank comparisons.")


def targets(page: Page, sweep: Sweep) -> None:
    page.section(
        "targets",
        "Attention vs MLP vs all",
        "Final checkpoint (held-out splits: the chosen checkpoint); LoRA on attention projections, MLP projections "
        "or both, per model and rank; bars from 0.",
    )
    groups = groups_of(sweep, lambda c: (c.model, c.rank))
    target_sets = list(dict.fromkeys(c.targets for c in sweep.cells))

    def final_value(cells: list[CellResults], target_set: str, split: str, m: str) -> float | None:
        found = [c for c in cells if c.targets == target_set]
        return found[0].value(split, found[0].step_for(split), m) if found else None

    panels = [
        {
            "title": f"{m} on {split}",
            "ylabel": m,
            "groups": [f"{model} r{rank}" for model, rank in groups],
            "series": [(t, [final_value(cells, t, split, m) for cells in groups.values()]) for t in target_sets],
            "hline": ("first stage", sweep.first_stage(split, m)),
        }
        for split in sweep.splits
        for m in sweep.measures
    ]
    page.figure(plots.bars(panels), "attention vs MLP vs all")
    pairs = [p for cells in groups.values() for p in itertools.combinations(cells, 2)]
    if pairs:
        comparison_table(
            page, sweep, "target-tests", {s: pairs for s in sweep.splits}, "pairs of target sets with the same model and rank"
        )
    else:
        page.note("No two cells differ in targets alone: no target comparisons.")
