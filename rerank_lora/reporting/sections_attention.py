"""The report section on where the scoring token looks, from the tables `attention` wrote: per layer and head, its
attention's share on the query and on the passage (the sink token set apart), and how that attention follows term
rarity and exact query-term match; across checkpoints, how the passage share moved with training."""

from rerank_lora.analysis import outputs
from rerank_lora.reporting import plots
from rerank_lora.reporting.page import Page
from rerank_lora.reporting.sweep import CellResults, Sweep

SHARES = (("query", "share on the query"), ("passage", "share on the passage"))
CORRELATIONS = (("idf_corr", "r with IDF"), ("match_corr", "r with query-term match"))
TOP = 3  # heads listed per cell, checkpoint and correlation


def layer_by_head(cell: CellResults, step: int, rows: list[dict], feature: str, label: str) -> dict:
    layers, heads = sorted({r["layer"] for r in rows}), sorted({r["head"] for r in rows})
    value = {(r["layer"], r["head"]): r[feature] for r in rows}
    return {
        "title": f"{cell.label} @{step} on {rows[0]['split']}: {label}",
        "rows": [f"layer {x}" for x in layers],
        "columns": [str(h) for h in heads],
        "values": [[value.get((x, h)) for h in heads] for x in layers],
        "label": label,
    }


def passage_share_by_layer(rows: list[dict]) -> tuple[list[int], list[float]]:
    """The passage share averaged over heads, per layer."""
    layers = sorted({r["layer"] for r in rows})
    return layers, [sum(r["passage"] for r in rows if r["layer"] == x) / sum(r["layer"] == x for r in rows) for x in layers]


def strongest(cell: CellResults, step: int, rows: list[dict]) -> list[dict]:
    """The TOP heads of largest |r| for each correlation."""
    found = []
    for feature, label in CORRELATIONS:
        ranked = sorted((r for r in rows if r[feature] is not None), key=lambda r: abs(r[feature]), reverse=True)
        for r in ranked[:TOP]:
            found.append({"cell": cell.label, "step": step, "split": r["split"], "feature": label,
                          "layer": r["layer"], "head": r["head"], "r": r[feature], "p (Holm)": r[f"p_{feature}"],
                          "queries": r["queries"]})
    return found


def attention(page: Page, sweep: Sweep) -> None:
    page.section(
        "attention",
        "Where the scoring token looks",
        "Per layer and head, the read token's attention: its share on the query's and the passage's tokens (the first, "
        "sink, token set apart), and the Pearson r of its attention over the passage with each token's IDF and with "
        "exact query-term match (mean over queries; p: one-sample t-test over queries, Holm over layers x heads).",
    )
    shares, correlations, lines, rows = [], [], [], []
    for cell in sweep.cells:
        tables = cell.tables(outputs.ATTENTION)
        if not tables:
            continue
        step, last = tables[-1]
        shares += [layer_by_head(cell, step, last, f, label) for f, label in SHARES]
        correlations += [layer_by_head(cell, step, last, f, label) for f, label in CORRELATIONS]
        lines += [(f"{cell.label} @{s}", *passage_share_by_layer(t), "-o") for s, t in tables]
        rows += [row for s, t in tables for row in strongest(cell, s, t)]
    if not shares:
        return page.note(f"No {outputs.csv_file(outputs.ATTENTION)} found: python -m rerank_lora.attention checkpoint=JOB")
    page.figure(plots.heatmaps(shares, diverging=False), "attention share heat maps")
    page.figure(plots.heatmaps(correlations), "attention correlation heat maps")
    panel = {"title": "passage share by layer, per checkpoint", "xlabel": "layer", "ylabel": "share", "lines": lines}
    page.figure(plots.curves([panel]), "passage share by layer")
    columns = ["cell", "step", "split", "feature", "layer", "head", "r", "p (Holm)", "queries"]
    page.table("attention-table", columns, rows, {"p (Holm)": sweep.significant},
               caption=f"the {TOP} heads of largest |r| per checkpoint")
