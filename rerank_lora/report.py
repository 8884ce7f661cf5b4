"""The sweep report: one static report.html (PNG plots embedded, no server, works offline) answering the
paper's questions for a sweep: learning curves against the first stage, rank against rank, attention vs MLP
vs all, per-layer and per-module ablations, the boundary layer, probe curves and the adapter's update norms.
Differences between cells come with per-query paired t-tests, Holm-corrected within each table.

    python -m rerank_lora.report sweep=PATH [out=PATH] [measures='[nDCG@10,RR(rel=2)@10]'] [alpha=0.05]
    make report SWEEP=PATH
"""

import html
import itertools
import math
import time
from pathlib import Path

from rerank_lora import cli
from rerank_lora.cli import as_list, parse_args
from rerank_lora.errors import InputError
from rerank_lora.evaluation.significance import holm, paired_t
from rerank_lora.reporting import plots
from rerank_lora.reporting.sweep import Cell, load_sweep

DEFAULTS = {"sweep": "???", "out": None, "measures": ["nDCG@10", "RR(rel=2)@10"], "alpha": 0.05}
STYLE = """
body { font-family: system-ui, sans-serif; margin: 2em auto; max-width: 1250px; color: #222; }
h1 { font-size: 1.5em; } h2 { margin-top: 2em; border-bottom: 1px solid #ccc; } h3 { font-size: 1.05em; }
table { border-collapse: collapse; margin: 0.8em 0; font-size: 0.85em; }
th, td { border: 1px solid #ddd; padding: 0.25em 0.55em; text-align: right; }
th { background: #f3f3f3; } td.text, th.text { text-align: left; }
td.sig { font-weight: bold; background: #fff3cd; }
img { max-width: 100%; display: block; margin: 0.6em 0; }
.note { color: #555; font-size: 0.9em; } nav a { margin-right: 1em; }
"""


def fmt(value, digits: int = 4) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


class Page:
    def __init__(self, title: str):
        self.title, self.parts, self.nav = title, [], []

    def section(self, anchor: str, title: str, intro: str = "") -> None:
        self.nav.append((anchor, title))
        self.parts.append(f'<h2 id="{anchor}">{html.escape(title)}</h2>')
        if intro:
            self.parts.append(f'<p class="note">{intro}</p>')

    def note(self, text: str) -> None:
        self.parts.append(f'<p class="note">{text}</p>')

    def figure(self, data: str, alt: str) -> None:
        self.parts.append(f'<img alt="{html.escape(alt)}" src="data:image/png;base64,{data}">')

    def table(self, table_id: str, columns: list[str], rows: list[list], significant=None, caption: str = "") -> None:
        """`significant(row_index, column_index)` marks cells to highlight."""
        head = "".join(f'<th class="{"text" if i == 0 else ""}">{html.escape(c)}</th>' for i, c in enumerate(columns))
        body = []
        for r, row in enumerate(rows):
            cells = []
            for c, value in enumerate(row):
                classes = ["text"] if isinstance(value, str) else []
                if significant and significant(r, c):
                    classes.append("sig")
                cells.append(f'<td class="{" ".join(classes)}">{html.escape(fmt(value))}</td>')
            body.append(f"<tr>{''.join(cells)}</tr>")
        caption = f"<caption>{html.escape(caption)}</caption>" if caption else ""
        self.parts.append(f'<table id="{table_id}">{caption}<thead><tr>{head}</tr></thead><tbody>{"".join(body)}</tbody></table>')

    def html(self, subtitle: str) -> str:
        nav = " ".join(f'<a href="#{a}">{html.escape(t)}</a>' for a, t in self.nav)
        return (
            f'<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>{html.escape(self.title)}</title>'
            f'<style>{STYLE}</style></head><body><h1>{html.escape(self.title)}</h1><p class="note">{subtitle}</p>'
            f"<nav>{nav}</nav>{''.join(self.parts)}</body></html>\n"
        )


class SweepReport:
    def __init__(self, cells: list[Cell], measures: list[str], alpha: float):
        self.cells, self.measures, self.alpha = cells, measures, alpha
        self.splits = list(dict.fromkeys(s for c in cells for s in c.splits()))
        self.primary = measures[0]
        self.page = Page("rerank-lora sweep report")

    # --- significance -------------------------------------------------------------------------------------------
    def compare(self, pairs: list[tuple[Cell, Cell | None]], split: str) -> list[list]:
        """One row per pair: mean difference and Holm-corrected paired p-value per measure, at each cell's final
        checkpoint (a None partner: the first stage of the first cell)."""
        tests = {m: [] for m in self.measures}
        counts = []
        for a, b in pairs:
            qa = a.per_query(split, a.final_step, self.measures)
            qb = (a if b is None else b).per_query(split, None if b is None else b.final_step, self.measures)
            comparable = qa is not None and qb is not None and (b is None or a.depth == b.depth)
            for m in self.measures:
                tests[m].append(paired_t(qa[m], qb[m]) if comparable else (math.nan, math.nan, 0))
            counts.append(tests[self.measures[0]][-1][2])
        adjusted = {m: holm([t[1] for t in tests[m]]) for m in self.measures}
        rows = []
        for i, (a, b) in enumerate(pairs):
            row = [a.label, "first stage" if b is None else b.label, split, counts[i]]
            for m in self.measures:
                row += [tests[m][i][0], adjusted[m][i]]
            rows.append(row)
        return rows

    def test_table(self, table_id: str, pairs_by_split: dict[str, list], caption: str) -> None:
        rows = [row for split, pairs in pairs_by_split.items() for row in self.compare(pairs, split)]
        columns = ["cell A", "cell B", "split", "queries"]
        for m in self.measures:
            columns += [f"Δ {m} (A−B)", f"p {m} (Holm)"]
        p_columns = {4 + 2 * k + 1 for k in range(len(self.measures))}
        self.page.table(
            table_id, columns, rows, lambda r, c: c in p_columns and rows[r][c] == rows[r][c] and rows[r][c] < self.alpha, caption
        )

    # --- sections ------------------------------------------------------------------------------------------------
    def overview(self) -> None:
        self.page.section(
            "cells",
            "Cells",
            "One row per job of the sweep, at its final checkpoint. Δ and p compare "
            "with the first-stage ranking of the same queries.",
        )
        columns = ["cell", "status", "depth", "final step"] + [f"{s} {m}" for s in self.splits for m in self.measures]
        rows = [
            ["first stage", "", self.cells[0].depth, ""]
            + [self.cells[0].value(s, None, m) for s in self.splits for m in self.measures]
        ]
        for cell in self.cells:
            rows.append(
                [cell.label, cell.status, cell.depth, cell.final_step]
                + [cell.value(s, cell.final_step, m) for s in self.splits for m in self.measures]
            )
        self.page.table("cells-table", columns, rows)
        with_runs = [c for c in self.cells if c.final_step is not None]
        self.test_table(
            "first-stage-tests",
            {s: [(c, None) for c in with_runs] for s in self.splits},
            "each cell's final checkpoint against the first stage",
        )

    def learning_curves(self) -> None:
        self.page.section(
            "curves",
            "Effectiveness against the checkpoint step",
            "Per model: one line per LoRA rank and target set; dashed: the first-stage ranking.",
        )
        for split in self.splits:
            panels = []
            for model in dict.fromkeys(c.model for c in self.cells):
                cells = [c for c in self.cells if c.model == model and c.steps(split)]
                if not cells:
                    continue
                for m in self.measures:
                    lines = [(f"r{c.rank} {c.targets}", *c.curve(split, m), "-o") for c in cells]
                    panels.append(
                        {
                            "title": f"{model}: {m} on {split}",
                            "xlabel": "checkpoint step",
                            "ylabel": m,
                            "lines": lines,
                            "hlines": [("first stage", cells[0].value(split, None, m))],
                        }
                    )
            if panels:
                self.page.parts.append(f"<h3>{html.escape(split)}</h3>")
                self.page.figure(plots.curves(panels), f"learning curves on {split}")

    def ranks(self) -> None:
        self.page.section("ranks", "Rank against rank", "Final checkpoint; one line per model and target set.")
        groups = {}
        for cell in self.cells:
            if cell.final_step is not None:
                groups.setdefault((cell.model, cell.targets), []).append(cell)
        panels = []
        for split in self.splits:
            for m in self.measures:
                lines = [
                    (f"{model} {targets}", [c.rank for c in cells], [c.value(split, c.final_step, m) for c in cells], "-o")
                    for (model, targets), cells in groups.items()
                ]
                hline = [("first stage", self.cells[0].value(split, None, m))]
                panels.append(
                    {
                        "title": f"{m} on {split}",
                        "xlabel": "LoRA rank",
                        "ylabel": m,
                        "lines": lines,
                        "hlines": hline,
                        "xlog2": True,
                    }
                )
        self.page.figure(plots.curves(panels), "rank against rank")
        pairs = [p for cells in groups.values() for p in itertools.combinations(sorted(cells, key=lambda c: c.rank), 2)]
        if pairs:
            self.test_table("rank-tests", {s: pairs for s in self.splits}, "pairs of ranks with the same model and targets")
        else:
            self.page.note("No two cells differ in rank alone: no rank comparisons.")

    def targets(self) -> None:
        self.page.section(
            "targets",
            "Attention vs MLP vs all",
            "Final checkpoint; LoRA on attention projections, MLP projections or both, per model and rank.",
        )
        groups = {}
        for cell in self.cells:
            if cell.final_step is not None:
                groups.setdefault((cell.model, cell.rank), []).append(cell)
        targets = list(dict.fromkeys(c.targets for c in self.cells))
        panels = []
        for split in self.splits:
            for m in self.measures:
                series = []
                for t in targets:
                    values = []
                    for cells in groups.values():
                        found = [c for c in cells if c.targets == t]
                        values.append(found[0].value(split, found[0].final_step, m) if found else None)
                    series.append((t, values))
                panels.append(
                    {
                        "title": f"{m} on {split}",
                        "ylabel": m,
                        "groups": [f"{a} r{b}" for a, b in groups],
                        "series": series,
                        "hline": ("first stage", self.cells[0].value(split, None, m)),
                    }
                )
        self.page.figure(plots.bars(panels), "attention vs MLP vs all")
        pairs = [p for cells in groups.values() for p in itertools.combinations(cells, 2)]
        if pairs:
            self.test_table("target-tests", {s: pairs for s in self.splits}, "pairs of target sets with the same model and rank")
        else:
            self.page.note("No two cells differ in targets alone: no target comparisons.")

    def ablations(self) -> None:
        m = self.primary
        self.page.section(
            "ablation",
            "Ablations of the trained adapters",
            f"LoRA switched off in places of each cell's "
            f"last ablated checkpoint (python -m rerank_lora.ablate). Colour: Δ {m} against the whole adapter; "
            f"p: paired t-test against the whole adapter, Holm-corrected over the variants of the cell.",
        )
        layer_cells = [(c, c.table("ablation-layers.csv")) for c in self.cells]
        layer_cells = [(c, t) for c, t in layer_cells if t]
        if layer_cells:
            depth = max(max((r["layer"] or 0) for r in rows) for _, (_, rows) in layer_cells) + 1
            drop = [[None] * depth for _ in layer_cells]
            windows = sorted(
                {r["variant"] for _, (_, rows) in layer_cells for r in rows if r["variant"].startswith("keep-layers:")},
                key=lambda v: int(v.split(":")[1].split("-")[0]),
            )
            keep = [[None] * len(windows) for _ in layer_cells]
            table = []
            for i, (cell, (step, rows)) in enumerate(layer_cells):
                for r in rows:
                    if r["variant"].startswith("drop-layer:"):
                        drop[i][r["layer"]] = r.get(f"delta_{m}")
                    elif r["variant"] in windows:
                        keep[i][windows.index(r["variant"])] = r.get(f"delta_{m}")
                    table.append([cell.label, step, r["split"], r["variant"], r.get(m), r.get(f"delta_{m}"), r.get(f"p_{m}")])
            labels = [f"{c.label} @{s}" for c, (s, _) in layer_cells]
            self.page.parts.append("<h3>Layers</h3>")
            self.page.figure(
                plots.heatmaps(
                    [
                        {
                            "title": f"one layer's LoRA dropped: Δ {m}",
                            "rows": labels,
                            "columns": [str(i) for i in range(depth)],
                            "values": drop,
                            "label": f"Δ {m}",
                        },
                        {
                            "title": f"only a window of layers kept: Δ {m}",
                            "rows": labels,
                            "columns": [w.split(":")[1] for w in windows],
                            "values": keep,
                            "label": f"Δ {m}",
                        },
                    ]
                ),
                "per-layer ablation heat maps",
            )
            self.page.table(
                "ablation-layers",
                ["cell", "step", "split", "variant", m, f"Δ {m}", f"p {m} (Holm)"],
                table,
                lambda r, c: c == 6 and table[r][6] is not None and table[r][6] < self.alpha,
            )
        else:
            self.page.note("No ablation-layers.csv found: python -m rerank_lora.ablate checkpoint=JOB ablation=layers")
        module_cells = [(c, c.table("ablation-modules.csv")) for c in self.cells]
        module_cells = [(c, t) for c, t in module_cells if t]
        if module_cells:
            variants = list(dict.fromkeys(r["variant"] for _, (_, rows) in module_cells for r in rows if r["variant"] != "all"))
            values, table = [], []
            for cell, (step, rows) in module_cells:
                by_variant = {r["variant"]: r for r in rows}
                values.append([by_variant.get(v, {}).get(f"delta_{m}") for v in variants])
                table += [
                    [cell.label, step, r["split"], r["variant"], r.get(m), r.get(f"delta_{m}"), r.get(f"p_{m}")] for r in rows
                ]
            self.page.parts.append("<h3>Modules</h3>")
            self.page.figure(
                plots.heatmaps(
                    [
                        {
                            "title": f"LoRA kept / dropped by module type and projection: Δ {m}",
                            "rows": [f"{c.label} @{s}" for c, (s, _) in module_cells],
                            "columns": variants,
                            "values": values,
                            "label": f"Δ {m}",
                        }
                    ]
                ),
                "module ablation heat map",
            )
            self.page.table(
                "ablation-modules",
                ["cell", "step", "split", "variant", m, f"Δ {m}", f"p {m} (Holm)"],
                table,
                lambda r, c: c == 6 and table[r][6] is not None and table[r][6] < self.alpha,
            )
        else:
            self.page.note("No ablation-modules.csv found: python -m rerank_lora.ablate checkpoint=JOB ablation=modules")

    def boundary(self) -> None:
        m = self.primary
        self.page.section(
            "boundary",
            "The boundary layer (Chen et al. 2025)",
            "LoRA kept only in layers up to the "
            "boundary b (−1: none). The curve is measured on the selection queries; ★ marks the chosen "
            "boundary; the table reports its effect on the held-out split.",
        )
        found = [(c, c.table("ablation-boundary.csv")) for c in self.cells]
        found = [(c, t) for c, t in found if t]
        if not found:
            self.page.note("No ablation-boundary.csv found: python -m rerank_lora.ablate checkpoint=JOB ablation=boundary")
            return
        lines, marks, table = [], [], []
        for cell, (step, rows) in found:
            select = [r for r in rows if r["role"] == "select"]
            lines.append((f"{cell.label} @{step}", [r["layer"] for r in select], [r[m] for r in select], "-o"))
            chosen = [r for r in select if r["chosen"]]
            marks += [(r["layer"], r[m]) for r in chosen]
            report = {r["variant"]: r for r in rows if r["role"] == "report"}
            full = next((r for r in report.values() if r.get(f"delta_{m}") == 0.0 and r["sites_on"] == r["sites_total"]), None)
            none = next((r for r in report.values() if r["sites_on"] == 0), None)
            pick = next((r for r in report.values() if r["chosen"]), None)
            table.append(
                [
                    cell.label,
                    step,
                    chosen[0]["layer"] if chosen else None,
                    select[0]["split"] if select else None,
                    select[0]["queries"] if select else None,
                    pick["split"] if pick else None,
                    full and full[m],
                    none and none[m],
                    pick and pick[m],
                    pick and pick.get(f"delta_{m}"),
                    pick and pick.get(f"p_{m}"),
                ]
            )
        self.page.figure(
            plots.curves(
                [
                    {
                        "title": f"{m} against the boundary layer (selection queries)",
                        "xlabel": "boundary layer b",
                        "ylabel": m,
                        "lines": lines,
                        "marks": marks,
                    }
                ]
            ),
            "boundary-layer curve",
        )
        self.page.table(
            "boundary-table",
            [
                "cell",
                "step",
                "chosen b",
                "chosen on",
                "queries",
                "reported on",
                f"{m} all LoRA",
                f"{m} no LoRA",
                f"{m} LoRA ≤ b",
                f"Δ {m} (≤ b − all)",
                f"p {m}",
            ],
            table,
            lambda r, c: c == 10 and table[r][10] is not None and table[r][10] < self.alpha,
        )

    def probes(self) -> None:
        m = self.primary
        self.page.section(
            "probe",
            "Layer-wise probes",
            f"{m} when the ranking is read from each layer's last-token "
            "state: by the trained head (solid) or a linear probe fitted per layer (dashed), per checkpoint.",
        )
        panels, table = [], []
        for cell in self.cells:
            tables = cell.tables("probe.csv")
            if not tables:
                continue
            lines = []
            for step, rows in tables:
                for kind, style in (("head", "-o"), ("fitted", "--s")):
                    chosen = [r for r in rows if r["probe"] == kind]
                    if chosen:
                        lines.append((f"step {step} {kind}", [r["layer"] for r in chosen], [r[m] for r in chosen], style))
                        best = max(chosen, key=lambda r: r[m])
                        table.append([cell.label, step, kind, chosen[0]["split"], best["layer"], best[m], chosen[-1][m]])
            split = tables[-1][1][0]["split"]
            panels.append(
                {
                    "title": cell.label,
                    "xlabel": "layer",
                    "ylabel": f"{m} on {split}",
                    "lines": lines,
                    "hlines": [("first stage", cell.value(split, None, m))],
                }
            )
        if not panels:
            self.page.note("No probe.csv found: python -m rerank_lora.probe checkpoint=JOB")
            return
        self.page.figure(plots.curves(panels), "probe curves")
        self.page.table("probe-table", ["cell", "step", "probe", "split", "best layer", f"best {m}", f"last layer {m}"], table)

    def adapters(self) -> None:
        self.page.section(
            "adapter",
            "What the adapters learned",
            "‖scaling·B·A‖_F per layer and projection at the last checkpoint, and the total update norm against the step.",
        )
        panels, lines, table = [], [], []
        for cell in self.cells:
            tables = cell.tables("adapter-stats.csv")
            if not tables:
                continue
            step, rows = tables[-1]
            projections = list(dict.fromkeys(r["projection"] for r in rows))
            layers = sorted({r["layer"] for r in rows})
            grid = {(r["projection"], r["layer"]): r["fro_norm"] for r in rows}
            panels.append(
                {
                    "title": f"{cell.label} @{step}: ‖ΔW‖_F",
                    "rows": projections,
                    "columns": [str(x) for x in layers],
                    "values": [[grid.get((p, x)) for x in layers] for p in projections],
                    "label": "‖ΔW‖_F",
                }
            )
            lines.append(
                (cell.label, [s for s, _ in tables], [math.sqrt(sum(r["fro_norm"] ** 2 for r in t)) for _, t in tables], "-o")
            )
            for p in projections:
                chosen = [r for r in rows if r["projection"] == p]
                table.append(
                    [
                        cell.label,
                        step,
                        p,
                        sum(r["fro_norm"] for r in chosen) / len(chosen),
                        sum(r["effective_rank"] for r in chosen) / len(chosen),
                        chosen[0]["rank"],
                    ]
                )
        if not panels:
            self.page.note("No adapter-stats.csv found: python -m rerank_lora.adapter_stats checkpoint=JOB")
            return
        self.page.figure(plots.heatmaps(panels, diverging=False), "update norm heat maps")
        self.page.figure(
            plots.curves(
                [{"title": "total ‖ΔW‖_F against the step", "xlabel": "checkpoint step", "ylabel": "‖ΔW‖_F", "lines": lines}]
            ),
            "update norm against step",
        )
        self.page.table("adapter-table", ["cell", "step", "projection", "mean ‖ΔW‖_F", "mean effective rank", "rank"], table)

    def build(self, sweep: Path) -> str:
        for section in (
            self.overview,
            self.learning_curves,
            self.ranks,
            self.targets,
            self.ablations,
            self.boundary,
            self.probes,
            self.adapters,
        ):
            section()
        subtitle = (
            f"{html.escape(str(sweep))}: {len(self.cells)} cells, generated {time.strftime('%Y-%m-%d %H:%M')}. "
            f"Significance: two-sided paired t-test over the split's queries, Holm-corrected within each table "
            f"(per split and measure); highlighted: p &lt; {self.alpha}."
        )
        return self.page.html(subtitle)


def report(args: list[str]) -> Path:
    cfg = parse_args(args, DEFAULTS, required=("sweep",))
    if cfg.sweep is None or not str(cfg.sweep).strip():
        raise InputError("missing sweep=PATH (make report SWEEP=PATH)")
    measures = as_list(cfg.measures)
    cells = load_sweep(cfg.sweep)
    known = set(cells[0].metrics[0]) if cells[0].metrics else set()
    unknown = [m for m in measures if m not in known]
    if unknown:
        raise InputError(
            f"measures {unknown} are not in the jobs' metrics.jsonl; accepted: {sorted(known - {'step', 'split', 'ranker'})}"
        )
    sweep = Path(str(cfg.sweep))
    out = Path(str(cfg.out)) if cfg.out else sweep / "report.html"
    text = SweepReport(cells, measures, float(cfg.alpha)).build(sweep.resolve())
    partial = out.with_name(f".{out.name}.partial")
    partial.write_text(text, encoding="utf-8")
    partial.replace(out)
    return out


def main() -> None:
    cli.main(report)


if __name__ == "__main__":
    main()
