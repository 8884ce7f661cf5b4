"""The workspace and report as spec files (JSON, as wandb-workspaces serialises them for the W&B server) and back,
through the library's own models; and every W&B key their panels name, for checking them against the runs."""

from pathlib import Path

import wandb_workspaces.reports.v2 as wr
import wandb_workspaces.workspaces as ws
from wandb_workspaces.reports.v2 import internal as report_internal
from wandb_workspaces.workspaces import internal as workspace_internal

WORKSPACE_FILE = "wandb-workspace.json"
REPORT_FILE = "wandb-report.json"


def workspace_json(workspace: ws.Workspace) -> str:
    return workspace._to_model().model_dump_json(by_alias=True, exclude_none=True, indent=1)


def report_json(report: wr.Report) -> str:
    return report._to_model().model_dump_json(by_alias=True, exclude_none=True, indent=1)


def load_workspace(path: Path) -> ws.Workspace:
    return ws.Workspace._from_model(workspace_internal.View.model_validate_json(path.read_text()))


def load_report(path: Path) -> wr.Report:
    return wr.Report._from_model(report_internal.ReportViewspec.model_validate_json(path.read_text()))


def _name(metric) -> tuple[str, str]:
    """(kind, key) of a panel's metric: history (a bare name or wr.Metric), summary or config."""
    if isinstance(metric, wr.Config):
        return "config", metric.name
    if isinstance(metric, wr.SummaryMetric):
        return "summary", metric.name
    return "history", getattr(metric, "name", metric)


def panel_keys(panel) -> set[tuple[str, str]]:
    """Every (kind, key) a panel reads: history and summary metrics, config keys, tables (summary values)."""
    if isinstance(panel, wr.LinePlot):
        named = [panel.x, *panel.y] + ([panel.groupby] if panel.groupby else [])
    elif isinstance(panel, wr.ScatterPlot):
        named = [panel.x, panel.y]
    elif isinstance(panel, wr.BarPlot):
        named = [wr.SummaryMetric(getattr(m, "name", m)) for m in panel.metrics] + ([panel.groupby] if panel.groupby else [])
    elif isinstance(panel, wr.ParallelCoordinatesPlot):
        named = [c.metric for c in panel.columns]
    elif isinstance(panel, wr.WeavePanelSummaryTable):
        named = [wr.SummaryMetric(panel.table_name)]
    else:
        named = []
    found = {_name(m) for m in named}
    template = getattr(panel, "legend_template", None) or ""
    found |= {("config", part.split("}")[0]) for part in template.split("${config:")[1:]}
    return found


def workspace_keys(workspace: ws.Workspace) -> set[tuple[str, str]]:
    """The keys of every panel and of the runs table's columns."""
    found = {k for section in workspace.sections for panel in section.panels for k in panel_keys(panel)}
    for column in workspace.runset_settings.pinned_columns:
        section, _, key = column.partition(":")
        if section in ("config", "summary"):
            found.add((section, key))
    return found
