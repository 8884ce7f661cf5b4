"""A sweep's W&B workspace (wandb-workspaces objects): the runs of its group, and sections answering the questions
report.html answers. Learning curves: each split's measures against the checkpoint step, the first stage beside
them. Rank and targets: every cell's last logged value (an eval split: the final checkpoint; a held-out split: the
chosen checkpoint, scored after step 0) over model, rank and targets. The analysis tables. The runs table."""

import wandb_workspaces.reports.v2 as wr
import wandb_workspaces.workspaces as ws
from wandb_workspaces import expr

from rerank_lora.dashboards import keys
from rerank_lora.dashboards.sweep_view import SweepView

LEGEND = "${config:model.name} r${config:lora.rank} ${config:targets.modules}"
WIDE = wr.Layout(w=24, h=10)


def which_checkpoint(view: SweepView, split: str) -> str:
    if split in view.held_out:
        return "the chosen checkpoint (best on the first eval split; held out)"
    return "the final checkpoint"


def curve(split: str, measure: str, held_out: bool) -> wr.LinePlot:
    scored = "step 0 and the chosen checkpoint" if held_out else "every checkpoint"
    return wr.LinePlot(
        title=f"{measure} on {split} ({scored}); first stage beside it",
        x=keys.STEP_AXIS,
        y=[keys.metric(split, measure), keys.first_stage(split, measure)],
        title_x="checkpoint step",
        title_y=measure,
        legend_template=LEGEND,
    )


def curves_section(view: SweepView, split: str) -> ws.Section:
    panels = [curve(split, m, split in view.held_out) for m in view.measures]
    return ws.Section(name=f"Learning curves on {split}", panels=panels, is_open=True)


def comparison_panels(view: SweepView, split: str, measure: str) -> list:
    key, at = keys.metric(split, measure), which_checkpoint(view, split)
    return [
        wr.ScatterPlot(title=f"{measure} on {split} against the rank, at {at}", x=wr.Config("lora.rank"),
                       y=wr.SummaryMetric(key), log_x=True),
        wr.BarPlot(title=f"{measure} on {split} per cell, at {at} (axis from 0)", metrics=[key], range_x=(0, None),
                   groupby=wr.Config("targets.modules")),
    ]


def grid_section(view: SweepView) -> ws.Section:
    axes = [wr.ParallelCoordinatesPlotColumn(metric=wr.Config(k)) for k in keys.GRID_COLUMNS]
    values = [
        wr.ParallelCoordinatesPlotColumn(metric=wr.SummaryMetric(keys.metric(s, m)), display_name=f"{s} {m}")
        for s in view.splits for m in view.measures
    ]
    panels = [wr.ParallelCoordinatesPlot(title="model, rank, targets -> each split's last logged value",
                                         columns=[*axes, *values], layout=WIDE)]
    panels += [p for s in view.splits for m in view.measures for p in comparison_panels(view, s, m)]
    return ws.Section(name="Rank and targets at the final (eval) or chosen (held-out) checkpoint", panels=panels)


def tables_section(view: SweepView) -> ws.Section:
    panels = [wr.WeavePanelSummaryTable(table_name=table, layout=WIDE) for table in view.tables]
    return ws.Section(name="Ablations, probes, attention features and update norms (W&B Tables)", panels=panels)


def runs_section() -> ws.Section:
    return ws.Section(name="Runs of the sweep", panels=[wr.RunComparer(diff_only="split", layout=WIDE)])


def runset(view: SweepView) -> ws.RunsetSettings:
    summary = [f"summary:{keys.metric(s, m)}" for s in view.splits for m in view.measures]
    return ws.RunsetSettings(
        filters=expr.And(expr.Metric("Group") == view.group),
        pinned_columns=[*(f"config:{k}" for k in view.columns), *summary],
    )


def build_workspace(view: SweepView, entity: str, project: str) -> ws.Workspace:
    sections = [curves_section(view, s) for s in view.splits]
    sections += [grid_section(view), *([tables_section(view)] if view.tables else []), runs_section()]
    return ws.Workspace(
        entity=entity,
        project=project,
        name=f"rerank-lora sweep {view.group}",
        sections=sections,
        runset_settings=runset(view),
    )
