"""What a sweep folder holds, cell by cell: each job's config, metrics.jsonl, TREC runs (per-query measures
for significance tests) and the tables that ablate / probe / adapter_stats wrote beside its checkpoints; and
`Sweep`, what the report is about (the cells, the measures shown, the significance level)."""

from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

from rerank_lora.analysis import outputs
from rerank_lora.configs import saved_config
from rerank_lora.data.trec_files import read_qrels, read_run
from rerank_lora.errors import InputError
from rerank_lora.evaluation.significance import per_query
from rerank_lora.job_folder import FIRST_STAGE, MODEL, JobFolder, job_folders
from rerank_lora.tables import read_csv

TARGET_ORDER = {"attn": 0, "mlp": 1, "all": 2}
_QRELS: dict[str, dict] = {}


def _qrels(path: str) -> dict:
    if path not in _QRELS:
        _QRELS[path] = read_qrels(path)
    return _QRELS[path]


@dataclass
class CellResults:
    job: Path
    config: dict  # the job's config as plain values (configs.saved_config)
    label: str = ""
    _per_query: dict = field(default_factory=dict, repr=False)

    @property
    def model(self) -> str:
        return str(self.config["model"]["name"])

    @property
    def rank(self) -> int:
        return int(self.config["lora"]["rank"])

    @property
    def targets(self) -> str:
        modules = self.config["targets"]["modules"]
        return modules if isinstance(modules, str) else "+".join(modules)

    @property
    def depth(self) -> int:
        return int(self.config["data"]["eval_depth"])

    @property
    def folder(self) -> JobFolder:
        return JobFolder(self.job)

    @property
    def status(self) -> str:
        return self.folder.status()["status"]

    @cached_property
    def metrics(self) -> list[dict]:
        return self.folder.metrics()

    def splits(self) -> list[str]:
        return list(dict.fromkeys(r["split"] for r in self.metrics))

    def steps(self, split: str | None = None) -> list[int]:
        return sorted({r["step"] for r in self.metrics if r["ranker"] == MODEL and split in (None, r["split"])})

    @property
    def final_step(self) -> int | None:
        steps = self.steps()
        return steps[-1] if steps else None

    def held_out(self, split: str) -> bool:
        """Whether `split` is held out: scored at step 0 and at the chosen checkpoint only."""
        return split in (self.config["data"].get("held_out_splits") or [])

    def step_for(self, split: str) -> int | None:
        """The checkpoint the report compares on `split`: the final one, or for a held-out split the chosen one
        (its last scored step; the other is step 0)."""
        steps = self.steps(split)
        return steps[-1] if steps else None

    def value(self, split: str, step: int | None, measure: str) -> float | None:
        ranker = FIRST_STAGE if step is None else MODEL
        found = [r for r in self.metrics if r["split"] == split and r["ranker"] == ranker and r["step"] == step]
        return found[-1].get(measure) if found else None

    def curve(self, split: str, measure: str) -> tuple[list[int], list[float]]:
        steps = self.steps(split)
        return steps, [self.value(split, s, measure) for s in steps]

    def per_query(self, split: str, step: int | None, measures) -> dict[str, dict[str, float]] | None:
        """{measure: {qid: value}} of the run at `step` (None: the first stage), from runs/*.trec and the qrels."""
        key = (split, step, tuple(measures))
        if key not in self._per_query:
            path = self.folder.run_file(split, step)
            self._per_query[key] = (
                per_query(_qrels(str(self.config["data"]["qrels"])), read_run(path), measures) if path.is_file() else None
            )
        return self._per_query[key]

    def checkpoints(self) -> list[tuple[int, Path]]:
        return self.folder.checkpoints()

    def table(self, name: str, step: int | None = None) -> tuple[int, list[dict]] | None:
        """(step, rows) of the table `name` (e.g. ablation-layers, see analysis/outputs.py) at `step`, or at the
        last checkpoint that has it."""
        found = [(s, rows) for s, rows in self.tables(name) if step in (None, s)]
        return found[-1] if found else None

    def tables(self, name: str) -> list[tuple[int, list[dict]]]:
        """(step, rows) of the table `name` at every checkpoint that has it."""
        files = [(s, f / outputs.csv_file(name)) for s, f in self.checkpoints()]
        return [(s, read_csv(path)) for s, path in files if path.is_file()]


def load_sweep(path) -> list[CellResults]:
    """Every job folder in `path` (a sweep or multirun folder, or one job folder), ordered model, targets, rank."""
    root = Path(str(path)).expanduser()
    if not root.is_dir():
        raise InputError(f"sweep={path}: no such folder")
    jobs = [job for job in job_folders(root, depth=2) if job.metrics_file.is_file()]
    if not jobs:
        expected = JobFolder(root)
        needs = f"{expected.config_file.relative_to(root)} and {expected.metrics_file.name}"
        raise InputError(f"sweep={path}: no job folders (with {needs}) in it")
    cells = [CellResults(job.path, saved_config(job.config_file)) for job in jobs]
    for cell in cells:
        layers = cell.config["lora"].get("layers")
        cell.label = f"{cell.model} r{cell.rank} {cell.targets}" + (f" L{list(layers)}" if layers else "")
    seen: dict[str, int] = {}
    for cell in cells:
        seen[cell.label] = seen.get(cell.label, 0) + 1
    for cell in cells:
        if seen[cell.label] > 1:
            cell.label = f"{cell.label} ({cell.job.name})"
    cells.sort(key=lambda c: (c.model, TARGET_ORDER.get(c.targets, 3), c.targets, c.rank, c.label))
    return cells


@dataclass
class Sweep:
    folder: Path
    cells: list[CellResults]
    measures: list[str]  # shown in the report; the first (`primary`) in the plots of the analyses
    alpha: float  # p-values below it are highlighted

    @property
    def primary(self) -> str:
        return self.measures[0]

    @property
    def splits(self) -> list[str]:
        return list(dict.fromkeys(s for c in self.cells for s in c.splits()))

    def first_stage(self, split: str, measure: str) -> float | None:
        return self.cells[0].value(split, None, measure)

    def trained(self) -> list[CellResults]:
        """The cells with at least one evaluated checkpoint."""
        return [c for c in self.cells if c.final_step is not None]

    def last_tables(self, name: str) -> list[tuple[CellResults, int, list[dict]]]:
        """(cell, step, rows) of the table `name` at each cell's last checkpoint that has it."""
        found = [(cell, cell.table(name)) for cell in self.cells]
        return [(cell, *table) for cell, table in found if table]

    def significant(self, p: float) -> bool:
        return p < self.alpha


def p_holm(measure: str) -> str:
    """The report's column of Holm-corrected p-values of `measure`."""
    return f"p {measure} (Holm)"


def check_measures(measures: list[str], cells: list[CellResults]) -> None:
    """Every measure asked for is one the sweep's jobs logged; else one error naming those they did."""
    known = set(cells[0].metrics[0]) if cells[0].metrics else set()
    unknown = [m for m in measures if m not in known]
    if unknown:
        accepted = sorted(known - {"step", "split", "ranker"})
        raise InputError(f"measures {unknown} are not in the jobs' {cells[0].folder.metrics_file.name}; accepted: {accepted}")
