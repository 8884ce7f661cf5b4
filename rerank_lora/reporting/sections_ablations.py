"""Report sections on where in a trained adapter its effect sits, from the tables `ablate` wrote: LoRA dropped
layer by layer or kept in windows of layers, kept or dropped by module type and projection, each attention head
and each window of layers' attention kept alone or omitted alone (Perlman et al.), and the boundary layer (Chen et
al. 2025). Rows are told apart by their structured columns (`layer`, `window_start`, `window_end`, `head`, `mode`,
`sites_on`, `role`, `chosen`), never by parsing variant names."""

from rerank_lora.analysis import outputs
from rerank_lora.reporting import plots
from rerank_lora.reporting.page import Page
from rerank_lora.reporting.sweep import CellResults, Sweep, p_holm

Found = list[tuple[CellResults, int, list[dict]]]  # (cell, step, rows) of one table per cell


def missing(page: Page, kind: str) -> None:
    table = outputs.csv_file(outputs.ablation(kind))
    page.note(f"No {table} found: python -m rerank_lora.ablate checkpoint=JOB ablation={kind}")


def is_whole_adapter(row: dict) -> bool:
    return row["sites_on"] == row["sites_total"]


def variant_table(page: Page, sweep: Sweep, table_id: str, found: Found) -> None:
    """Every variant of every cell: the primary measure, its Δ and Holm-corrected p against the whole adapter."""
    m = sweep.primary
    columns = ["cell", "step", "split", "variant", m, f"Δ {m}", p_holm(m)]
    rows = [
        {"cell": cell.label, "step": step, "split": r["split"], "variant": r["variant"]}
        | {m: r.get(m), f"Δ {m}": r.get(f"delta_{m}"), p_holm(m): r.get(f"p_{m}")}
        for cell, step, table in found
        for r in table
    ]
    page.table(table_id, columns, rows, {p_holm(m): sweep.significant})


def heatmap(title: str, found: Found, columns: list[str], values: list[list], measure: str) -> dict:
    rows = [f"{cell.label} @{step}" for cell, step, _ in found]
    return {"title": title, "rows": rows, "columns": columns, "values": values, "label": f"Δ {measure}"}


def ablations(page: Page, sweep: Sweep) -> None:
    page.section(
        "ablation",
        "Ablations of the trained adapters",
        f"LoRA switched off in places of each cell's last ablated checkpoint (python -m rerank_lora.ablate). "
        f"Colour: Δ {sweep.primary} against the whole adapter; p: paired t-test against the whole adapter, "
        f"Holm-corrected over the variants of the cell.",
    )
    layer_ablations(page, sweep)
    module_ablations(page, sweep)
    head_ablations(page, sweep)
    attention_window_ablations(page, sweep)


def window_of(row: dict) -> tuple[int, int] | None:
    """The first and last layer of a window (keep-layers, keep-attn and omit-attn rows), else None."""
    return None if row.get("window_start") is None else (row["window_start"], row["window_end"])


def layer_ablations(page: Page, sweep: Sweep) -> None:
    found, m = sweep.last_tables(outputs.ablation("layers")), sweep.primary
    if not found:
        return missing(page, "layers")
    every_row = [r for _, _, rows in found for r in rows]
    layers = range(1 + max((r["layer"] for r in every_row if r["layer"] is not None), default=0))
    windows = sorted({window_of(r) for r in every_row} - {None})
    dropped, kept = [], []
    for _, _, rows in found:
        by_layer = {r["layer"]: r.get(f"delta_{m}") for r in rows if r["layer"] is not None}
        by_window = {window_of(r): r.get(f"delta_{m}") for r in rows}
        dropped.append([by_layer.get(x) for x in layers])
        kept.append([by_window.get(w) for w in windows])
    panels = [heatmap(f"one layer's LoRA dropped: Δ {m}", found, [str(x) for x in layers], dropped, m)]
    if windows:
        panels.append(heatmap(f"only a window of layers kept: Δ {m}", found, [f"{a}-{b}" for a, b in windows], kept, m))
    page.heading("Layers")
    page.figure(plots.heatmaps(panels), "per-layer ablation heat maps")
    variant_table(page, sweep, "ablation-layers", found)


def module_ablations(page: Page, sweep: Sweep) -> None:
    found, m = sweep.last_tables(outputs.ablation("modules")), sweep.primary
    if not found:
        return missing(page, "modules")
    variants = list(dict.fromkeys(r["variant"] for _, _, rows in found for r in rows if not is_whole_adapter(r)))
    values = []
    for _, _, rows in found:
        by_variant = {r["variant"]: r.get(f"delta_{m}") for r in rows}
        values.append([by_variant.get(v) for v in variants])
    page.heading("Modules")
    title = f"LoRA kept / dropped by module type and projection: Δ {m}"
    page.figure(plots.heatmaps([heatmap(title, found, variants, values, m)]), "module ablation heat map")
    variant_table(page, sweep, "ablation-modules", found)


MODES = {"keep": "only this head's attention update kept", "omit": "this head's attention update omitted"}


def extremes(rows: list[dict], m: str, count: int = 3) -> list[dict]:
    """The rows that are no single head (all, none, mlp-only) and, per mode, the `count` heads of highest and of
    lowest Δ m: a table of thousands of heads would hide them."""
    kept = [r for r in rows if r.get("head") is None]
    for mode in MODES:
        ranked = sorted(
            (r for r in rows if r.get("mode") == mode and r.get(f"delta_{m}") is not None),
            key=lambda r: r[f"delta_{m}"],
            reverse=True,
        )
        kept += ranked if len(ranked) <= 2 * count else ranked[:count] + ranked[-count:]
    return kept


def head_panel(cell: CellResults, step: int, rows: list[dict], mode: str, m: str) -> dict:
    """Layer x head heat map of Δ m of one cell's heads in one mode."""
    heads = [r for r in rows if r.get("head") is not None and r.get("mode") == mode]
    layers, columns = sorted({r["layer"] for r in heads}), sorted({r["head"] for r in heads})
    delta = {(r["layer"], r["head"]): r.get(f"delta_{m}") for r in heads}
    values = [[delta.get((x, h)) for h in columns] for x in layers]
    title = f"{cell.label} @{step}: {MODES[mode]}: Δ {m}"
    return {
        "title": title,
        "rows": [f"layer {x}" for x in layers],
        "columns": [str(h) for h in columns],
        "values": values,
        "label": f"Δ {m}",
    }


def head_ablations(page: Page, sweep: Sweep) -> None:
    found, m = sweep.last_tables(outputs.ablation("heads")), sweep.primary
    if not found:
        return missing(page, "heads")
    page.heading("Attention heads kept alone / omitted alone (layer x head)")
    panels = [head_panel(cell, step, rows, mode, m) for cell, step, rows in found for mode in MODES]
    page.figure(plots.heatmaps(panels), "per-head ablation heat maps")
    variant_table(page, sweep, "ablation-heads", [(cell, step, extremes(rows, m)) for cell, step, rows in found])


def attention_window_ablations(page: Page, sweep: Sweep) -> None:
    found, m = sweep.last_tables(outputs.ablation("windows")), sweep.primary
    if not found:
        return missing(page, "windows")
    windows = sorted({window_of(r) for _, _, rows in found for r in rows} - {None})
    panels = []
    for mode, what in (("keep", "only a window's attention update kept"), ("omit", "a window's attention update omitted")):
        values = []
        for _, _, rows in found:
            by_window = {window_of(r): r.get(f"delta_{m}") for r in rows if r.get("mode") == mode}
            values.append([by_window.get(w) for w in windows])
        panels.append(heatmap(f"{what} (MLP LoRA on): Δ {m}", found, [f"{a}-{b}" for a, b in windows], values, m))
    page.heading("Windows of layers' attention kept alone / omitted alone")
    page.figure(plots.heatmaps(panels), "attention window ablation heat maps")
    variant_table(page, sweep, "ablation-windows", found)


def boundary_row(cell: CellResults, step: int, rows: list[dict], m: str) -> dict:
    """The chosen boundary of one cell and, on the report split, all LoRA, no LoRA and LoRA up to it."""
    select = [r for r in rows if r["role"] == "select"]
    report = [r for r in rows if r["role"] == "report"]
    first, chosen = (select or [{}])[0], next((r for r in select if r["chosen"]), {})
    whole = next((r for r in report if is_whole_adapter(r) and r.get(f"delta_{m}") == 0.0), {})
    none = next((r for r in report if r["sites_on"] == 0), {})
    pick = next((r for r in report if r["chosen"]), {})
    return {
        "cell": cell.label,
        "step": step,
        "chosen b": chosen.get("layer"),
        "chosen on": first.get("split"),
        "queries": first.get("queries"),
        "reported on": pick.get("split"),
        f"{m} all LoRA": whole.get(m),
        f"{m} no LoRA": none.get(m),
        f"{m} LoRA ≤ b": pick.get(m),
        f"Δ {m} (≤ b − all)": pick.get(f"delta_{m}"),
        f"p {m}": pick.get(f"p_{m}"),
    }


def boundary(page: Page, sweep: Sweep) -> None:
    m = sweep.primary
    page.section(
        "boundary",
        "The boundary layer (Chen et al. 2025)",
        "LoRA kept only in layers up to the boundary b (−1: none). The curve is measured on the selection queries; "
        "★ marks the chosen boundary; the table reports its effect on the held-out split.",
    )
    found = sweep.last_tables(outputs.ablation("boundary"))
    if not found:
        return missing(page, "boundary")
    lines, marks = [], []
    for cell, step, rows in found:
        select = [r for r in rows if r["role"] == "select"]
        lines.append((f"{cell.label} @{step}", [r["layer"] for r in select], [r[m] for r in select], "-o"))
        marks += [(r["layer"], r[m]) for r in select if r["chosen"]]
    title = f"{m} against the boundary layer (selection queries)"
    panel = {"title": title, "xlabel": "boundary layer b", "ylabel": m, "lines": lines, "marks": marks}
    page.figure(plots.curves([panel]), "boundary-layer curve")
    rows = [boundary_row(cell, step, table, m) for cell, step, table in found]
    page.table("boundary-table", list(rows[0]), rows, {f"p {m}": sweep.significant})
