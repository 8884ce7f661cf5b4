"""Report sections on what is inside a trained cell, from the tables `probe` and `adapter_stats` wrote: at
which layer the ranking becomes readable, and how large the LoRA update is per layer and projection."""

from rerank_lora.analysis import outputs
from rerank_lora.analysis.update_stats import total_norm
from rerank_lora.reporting import plots
from rerank_lora.reporting.page import Page
from rerank_lora.reporting.sweep import CellResults, Sweep

PROBE_STYLES = (("head", "-o"), ("fitted", "--s"))  # the trained head solid, fitted probes dashed


def probe_panel(cell: CellResults, tables: list[tuple[int, list[dict]]], m: str) -> tuple[dict, list[dict]]:
    """One cell's probe curves (a line per checkpoint and probe) and a row per line: its best layer."""
    lines, rows = [], []
    for step, table in tables:
        for kind, style in PROBE_STYLES:
            chosen = [r for r in table if r["probe"] == kind]
            if not chosen:
                continue
            lines.append((f"step {step} {kind}", [r["layer"] for r in chosen], [r[m] for r in chosen], style))
            best = max(chosen, key=lambda r: r[m])
            head = {"cell": cell.label, "step": step, "probe": kind, "split": chosen[0]["split"]}
            rows.append(head | {"best layer": best["layer"], f"best {m}": best[m], f"last layer {m}": chosen[-1][m]})
    split = tables[-1][1][0]["split"]
    hlines = [("first stage", cell.value(split, None, m))]
    return {"title": cell.label, "xlabel": "layer", "ylabel": f"{m} on {split}", "lines": lines, "hlines": hlines}, rows


def probes(page: Page, sweep: Sweep) -> None:
    m = sweep.primary
    page.section(
        "probe",
        "Layer-wise probes",
        f"{m} when the ranking is read from each layer's last-token state: by the trained head (solid) or a "
        "linear probe fitted per layer (dashed), per checkpoint.",
    )
    panels, rows = [], []
    for cell in sweep.cells:
        tables = cell.tables(outputs.PROBE)
        if tables:
            panel, cell_rows = probe_panel(cell, tables, m)
            panels.append(panel)
            rows += cell_rows
    if not panels:
        return page.note(f"No {outputs.csv_file(outputs.PROBE)} found: python -m rerank_lora.probe checkpoint=JOB")
    page.figure(plots.curves(panels), "probe curves")
    page.table("probe-table", ["cell", "step", "probe", "split", "best layer", f"best {m}", f"last layer {m}"], rows)


def norm_heatmap(cell: CellResults, step: int, rows: list[dict]) -> dict:
    """‖ΔW‖_F by projection (rows) and layer (columns) at one checkpoint."""
    projections = list(dict.fromkeys(r["projection"] for r in rows))
    layers = sorted({r["layer"] for r in rows})
    norms = {(r["projection"], r["layer"]): r["fro_norm"] for r in rows}
    return {
        "title": f"{cell.label} @{step}: ‖ΔW‖_F",
        "rows": projections,
        "columns": [str(x) for x in layers],
        "values": [[norms.get((p, x)) for x in layers] for p in projections],
        "label": "‖ΔW‖_F",
    }


def projection_rows(cell: CellResults, step: int, rows: list[dict]) -> list[dict]:
    """Per projection: the mean update norm and effective rank over the layers, and the LoRA rank."""
    found = []
    for projection in dict.fromkeys(r["projection"] for r in rows):
        chosen = [r for r in rows if r["projection"] == projection]
        found.append(
            {
                "cell": cell.label,
                "step": step,
                "projection": projection,
                "mean ‖ΔW‖_F": sum(r["fro_norm"] for r in chosen) / len(chosen),
                "mean effective rank": sum(r["effective_rank"] for r in chosen) / len(chosen),
                "rank": chosen[0]["rank"],
            }
        )
    return found


def adapters(page: Page, sweep: Sweep) -> None:
    page.section(
        "adapter",
        "What the adapters learned",
        "‖scaling·B·A‖_F per layer and projection at the last checkpoint, and the total update norm against the step.",
    )
    heatmaps, lines, rows = [], [], []
    for cell in sweep.cells:
        tables = cell.tables(outputs.ADAPTER_STATS)
        if not tables:
            continue
        step, last = tables[-1]
        heatmaps.append(norm_heatmap(cell, step, last))
        lines.append((cell.label, [s for s, _ in tables], [total_norm(t) for _, t in tables], "-o"))
        rows += projection_rows(cell, step, last)
    if not heatmaps:
        return page.note(
            f"No {outputs.csv_file(outputs.ADAPTER_STATS)} found: python -m rerank_lora.adapter_stats checkpoint=JOB"
        )
    page.figure(plots.heatmaps(heatmaps, diverging=False), "update norm heat maps")
    panel = {"title": "total ‖ΔW‖_F against the step", "xlabel": "checkpoint step", "ylabel": "‖ΔW‖_F", "lines": lines}
    page.figure(plots.curves([panel]), "update norm against step")
    page.table("adapter-table", ["cell", "step", "projection", "mean ‖ΔW‖_F", "mean effective rank", "rank"], rows)
