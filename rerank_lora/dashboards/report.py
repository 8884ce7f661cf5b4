"""The sweep's W&B report (a second output beside the workspace): a workspace has one run set, a report one per
panel grid, so here each model x target set gets its own learning curves, lines grouped by LoRA rank, the first
stage beside them; then the workspace's other sections, each as a grid over the sweep's runs."""

import wandb_workspaces.reports.v2 as wr
import wandb_workspaces.workspaces as ws
from wandb_workspaces import expr

from rerank_lora.dashboards import keys
from rerank_lora.dashboards.sweep_view import SweepView


def runs(view: SweepView, entity: str, project: str, *filters) -> wr.Runset:
    return wr.Runset(entity=entity, project=project, name=view.group,
                     filters=expr.And(expr.Metric("Group") == view.group, *filters))


def cell_curves(view: SweepView, model: str, targets: str) -> list[wr.LinePlot]:
    return [
        wr.LinePlot(
            title=f"{model} {targets}: {m} on {split}, by LoRA rank",
            x=keys.STEP_AXIS,
            y=[keys.metric(split, m), keys.first_stage(split, m)],
            groupby=wr.Config("lora.rank"),
            title_x="checkpoint step",
        )
        for split in view.splits
        for m in view.measures
    ]


def curves_grids(view: SweepView, entity: str, project: str) -> list:
    blocks = []
    for model in view.models:
        for targets in view.target_sets:
            chosen = runs(view, entity, project, expr.Config("model.name") == model,
                          expr.Config("targets.modules") == targets)
            blocks += [wr.H2(f"Learning curves: {model}, targets {targets}"),
                       wr.PanelGrid(runsets=[chosen], panels=cell_curves(view, model, targets))]
    return blocks


def section_grid(view: SweepView, section: ws.Section, entity: str, project: str) -> list:
    return [wr.H2(section.name), wr.PanelGrid(runsets=[runs(view, entity, project)], panels=list(section.panels))]


def build_report(view: SweepView, workspace: ws.Workspace) -> wr.Report:
    entity, project = workspace.entity, workspace.project
    others = [s for s in workspace.sections if not s.name.startswith("Learning curves")]
    blocks = curves_grids(view, entity, project) + [b for s in others for b in section_grid(view, s, entity, project)]
    return wr.Report(project=project, entity=entity, title=workspace.name,
                     description=f"The sweep {view.folder}, made by python -m rerank_lora.dashboard", blocks=blocks)
