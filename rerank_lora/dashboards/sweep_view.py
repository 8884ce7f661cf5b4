"""What a dashboard shows of a sweep, read from its folder: its W&B group, its eval and held-out splits, the
measures, the analysis tables its jobs wrote, and the config keys its cells differ in (the runs table's columns)."""

from dataclasses import dataclass
from pathlib import Path

from rerank_lora.analysis import outputs
from rerank_lora.analysis.wandb_tables import job_group
from rerank_lora.configs import saved_config
from rerank_lora.dashboards.keys import GRID_COLUMNS
from rerank_lora.dashboards.logged_runs import flatten
from rerank_lora.errors import InputError
from rerank_lora.reporting.sweep import CellResults

TABLES = (*(outputs.ablation(kind) for kind in outputs.ABLATIONS), outputs.PROBE, outputs.ATTENTION, outputs.ADAPTER_STATS)


@dataclass
class SweepView:
    folder: Path
    group: str  # the W&B group of every run of the sweep
    models: list[str]
    target_sets: list[str]  # as the config holds them (targets.modules: a name or a list)
    eval_splits: list[str]
    held_out: list[str]  # scored at step 0 and at each cell's chosen checkpoint only
    measures: list[str]
    tables: list[str]  # analysis tables some job logged
    columns: list[str]  # config keys for the runs table: the grid's axes and whatever else differs

    @property
    def splits(self) -> list[str]:
        return [*self.eval_splits, *self.held_out]


def check_logged_to_wandb(folder: Path, cells: list[CellResults]) -> None:
    """Every job must have logged to W&B: a dashboard of a CSV-logged sweep would show nothing."""
    other = [c for c in cells if not str(_logger(c) or "").endswith("WandbLogger")]
    if other:
        target = _logger(other[0]) or "none"
        raise InputError(
            f"sweep={folder}: {len(other)} of {len(cells)} jobs did not log to W&B (logger {target}); "
            "a dashboard reads W&B runs: run the sweep with logger=wandb"
        )


def _logger(cell: CellResults) -> str | None:
    """The job's logger._target_ (None where it has no logger)."""
    return (cell.config.get("logger") or {}).get("_target_")


def differing_keys(cells: list[CellResults]) -> list[str]:
    """The config keys whose values differ between the cells (as their saved configs hold them, interpolations
    unresolved), after the grid's own axes."""
    flat = [flatten(saved_config(c.folder.config_file, resolve=False)) for c in cells]
    keys = dict.fromkeys(k for config in flat for k in config)
    differing = [k for k in keys if len({repr(config.get(k)) for config in flat}) > 1]
    return [*GRID_COLUMNS, *(k for k in differing if k not in GRID_COLUMNS)]


def sweep_view(folder: Path, cells: list[CellResults], measures: list[str]) -> SweepView:
    check_logged_to_wandb(folder, cells)
    held_out = list(dict.fromkeys(s for c in cells for s in c.config["data"].get("held_out_splits") or []))
    splits = list(dict.fromkeys(s for c in cells for s in c.splits()))
    return SweepView(
        folder=folder,
        group=job_group(cells[0].job),
        models=list(dict.fromkeys(c.model for c in cells)),
        target_sets=list(dict.fromkeys(c.targets for c in cells)),
        eval_splits=[s for s in splits if s not in held_out],
        held_out=[s for s in splits if s in held_out],
        measures=measures,
        tables=[t for t in TABLES if any(c.tables(t) for c in cells)],
        columns=differing_keys(cells),
    )
