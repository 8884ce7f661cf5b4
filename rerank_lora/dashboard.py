"""The sweep dashboard command: one W&B workspace (and a report with the same sections) for a sweep's runs, built
with wandb-workspaces in `dashboards/`: learning curves per eval and held-out split, rank and targets at the final
or chosen checkpoint, the analyses' W&B Tables, the runs table of the sweep's group. The specs are written beside
the sweep (`wandb-workspace.json`, `wandb-report.json`); with an API key (and save=true or W&B online) both are
saved and their URLs printed, otherwise the command that saves them later is printed.

    python -m rerank_lora.dashboard sweep=PATH [entity=...] [project=rerank-lora] [save=null|true|false]
    make dashboard SWEEP=PATH
"""

from pathlib import Path

from rerank_lora import cli
from rerank_lora.cli import parse_args
from rerank_lora.dashboards import publish, spec
from rerank_lora.dashboards.report import build_report
from rerank_lora.dashboards.sweep_view import sweep_view
from rerank_lora.dashboards.workspace import build_workspace
from rerank_lora.errors import InputError
from rerank_lora.job_folder import write_atomic
from rerank_lora.reporting.sweep import check_measures, load_sweep

DEFAULTS = {"sweep": "???", "entity": None, "project": "rerank-lora", "save": None,
            "measures": ["nDCG@10", "RR(rel=2)@10"]}


def dashboard(args: list[str]) -> list[Path]:
    cfg = parse_args(args, DEFAULTS, required=("sweep",))
    if cfg.sweep is None or not str(cfg.sweep).strip():
        raise InputError("missing sweep=PATH (make dashboard SWEEP=PATH)")
    cells, measures = load_sweep(cfg.sweep), cli.as_list(cfg.measures)
    check_measures(measures, cells)
    folder = Path(str(cfg.sweep)).expanduser().resolve()
    view = sweep_view(folder, cells, measures)
    saving = publish.wanted(cfg.save)
    if saving and not publish.has_api_key():
        raise InputError("save=true needs a W&B API key (wandb login, or WANDB_API_KEY)")
    entity = str(cfg.entity or (publish.default_entity() if saving else ""))
    workspace = build_workspace(view, entity, str(cfg.project))
    report = build_report(view, workspace)
    written = [folder / spec.WORKSPACE_FILE, folder / spec.REPORT_FILE]
    write_atomic(written[0], spec.workspace_json(workspace))
    write_atomic(written[1], spec.report_json(report))
    if saving:
        for url in publish.save(workspace, report):
            print(f"saved {url}")
    else:
        print(f"offline: to save this dashboard later, run\n  {publish.later_command(folder, entity, cfg.project)}")
    return written


def main() -> None:
    cli.main(dashboard)


if __name__ == "__main__":
    main()
