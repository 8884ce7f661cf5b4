"""The sweep report's figures (matplotlib, no display), each returned as a base64 PNG for an <img> tag."""

import base64
import io
import math

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.ticker import MaxNLocator  # noqa: E402

DPI = 90


def png(fig) -> str:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=DPI, bbox_inches="tight")
    plt.close(fig)
    return base64.b64encode(buffer.getvalue()).decode("ascii")


def _grid(n: int, columns: int, width: float = 4.6, height: float = 3.3):
    rows = max(1, math.ceil(n / columns))
    columns = min(columns, max(n, 1))
    fig, axes = plt.subplots(rows, columns, figsize=(width * columns, height * rows), squeeze=False)
    flat = [ax for row in axes for ax in row]
    for ax in flat[n:]:
        ax.axis("off")
    return fig, flat


def curves(panels: list[dict]) -> str:
    """Line panels: each {"title", "xlabel", "ylabel", "lines": [(label, xs, ys, style)], "hlines": [(label, y)],
    "marks": [(x, y)], "xlog2": bool}."""
    fig, axes = _grid(len(panels), 2 if len(panels) > 1 else 1, width=5.4)
    for ax, panel in zip(axes, panels):
        for label, xs, ys, style in panel["lines"]:
            ax.plot(xs, ys, style or "-o", label=label, markersize=3.5, linewidth=1.4)
        for label, y in panel.get("hlines", []):
            if y is not None:
                ax.axhline(y, linestyle="--", color="gray", linewidth=1.1, label=label)
        for x, y in panel.get("marks", []):
            ax.plot([x], [y], marker="*", color="black", markersize=12, linestyle="none")
        if panel.get("xlog2"):
            ax.set_xscale("log", base=2)
        else:
            ax.xaxis.set_major_locator(MaxNLocator(integer=True))  # steps and layers
        ax.set_title(panel["title"], fontsize=10)
        ax.set_xlabel(panel["xlabel"])
        ax.set_ylabel(panel["ylabel"])
        ax.grid(alpha=0.3)
        if panel["lines"] or panel.get("hlines"):
            ax.legend(fontsize=7, loc="best")
    fig.tight_layout()
    return png(fig)


def bars(panels: list[dict]) -> str:
    """Grouped bars: each panel {"title", "ylabel", "groups": [group labels], "series": [(label, values)],
    "hline": (label, y) or None}."""
    fig, axes = _grid(len(panels), 2 if len(panels) > 1 else 1, width=5.6)
    for ax, panel in zip(axes, panels):
        groups, series = panel["groups"], panel["series"]
        width = 0.8 / max(len(series), 1)
        for k, (label, values) in enumerate(series):
            xs = [i + (k - (len(series) - 1) / 2) * width for i in range(len(groups))]
            ax.bar(xs, [v if v is not None else 0 for v in values], width=width, label=label)
        if panel.get("hline") and panel["hline"][1] is not None:
            ax.axhline(panel["hline"][1], linestyle="--", color="gray", linewidth=1.1, label=panel["hline"][0])
        ax.set_xticks(range(len(groups)))
        ax.set_xticklabels(groups, rotation=20, ha="right", fontsize=8)
        ax.set_ylim(bottom=0.0)  # a bar's length is its value: a cut axis would magnify small differences
        ax.set_title(panel["title"], fontsize=10)
        ax.set_ylabel(panel["ylabel"])
        ax.grid(alpha=0.3, axis="y")
        ax.legend(fontsize=7)
    fig.tight_layout()
    return png(fig)


def heatmaps(panels: list[dict], diverging: bool = True) -> str:
    """Each panel {"title", "rows": [labels], "columns": [labels], "values": [[float|None]], "label"}; a diverging
    colour scale centred on 0 (differences) or a sequential one."""
    width = max(6.0, 0.38 * max(len(p["columns"]) for p in panels) + 3)
    fig, axes = _grid(len(panels), 1, width=width, height=1.6 + 0.32 * max(len(p["rows"]) for p in panels))
    for ax, panel in zip(axes, panels):
        values = [[math.nan if v is None else v for v in row] for row in panel["values"]]
        finite = [abs(v) for row in values for v in row if not math.isnan(v)] or [1.0]
        if diverging:
            limit = max(finite) or 1.0
            image = ax.imshow(values, cmap="RdBu", vmin=-limit, vmax=limit, aspect="auto")
        else:
            image = ax.imshow(values, cmap="viridis", aspect="auto")
        ax.set_yticks(range(len(panel["rows"])))
        ax.set_yticklabels(panel["rows"], fontsize=8)
        ax.set_xticks(range(len(panel["columns"])))
        ax.set_xticklabels(panel["columns"], rotation=90 if len(panel["columns"]) > 8 else 0, fontsize=7)
        ax.set_title(panel["title"], fontsize=10)
        fig.colorbar(image, ax=ax, label=panel["label"], fraction=0.04)
    fig.tight_layout()
    return png(fig)
