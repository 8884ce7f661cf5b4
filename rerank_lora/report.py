"""The sweep report command: one static report.html (PNG plots embedded, no server, works offline) answering
the paper's questions for a sweep: learning curves against the first stage, rank against rank, attention vs
MLP vs all, per-layer and per-module ablations, the boundary layer, probe curves and the adapter's update
norms. Differences come with per-query paired t-tests, Holm-corrected within each table. The page is built
in `reporting/` (`build.py` and its sections).

    python -m rerank_lora.report sweep=PATH [out=PATH] [measures='[nDCG@10,RR(rel=2)@10]'] [alpha=0.05]
    make report SWEEP=PATH
"""

from pathlib import Path

from rerank_lora import cli
from rerank_lora.cli import as_list, parse_args
from rerank_lora.errors import InputError
from rerank_lora.job_folder import write_atomic
from rerank_lora.reporting.build import build
from rerank_lora.reporting.sweep import Sweep, check_measures, load_sweep

DEFAULTS = {"sweep": "???", "out": None, "measures": ["nDCG@10", "RR(rel=2)@10"], "alpha": 0.05}


def report(args: list[str]) -> Path:
    cfg = parse_args(args, DEFAULTS, required=("sweep",))
    if cfg.sweep is None or not str(cfg.sweep).strip():
        raise InputError("missing sweep=PATH (make report SWEEP=PATH)")
    measures, cells = as_list(cfg.measures), load_sweep(cfg.sweep)
    check_measures(measures, cells)
    folder = Path(str(cfg.sweep))
    out = Path(str(cfg.out)) if cfg.out else folder / "report.html"
    write_atomic(out, build(Sweep(folder.resolve(), cells, measures, float(cfg.alpha))))
    return out


def main() -> None:
    cli.main(report)


if __name__ == "__main__":
    main()
