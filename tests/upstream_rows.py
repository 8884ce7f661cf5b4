"""Synthetic training rows in Tevatron's msmarco-passage-aug schema, from scripts/make_msmarco_rows.py, and the
overrides that run a paper-grid cell (recipe=rankllama) offline on them: DL19/DL20 from the shipped files,
dev/small (ir_datasets) left out."""

import importlib.util

from conftest import ROOT

_spec = importlib.util.spec_from_file_location("make_msmarco_rows", ROOT / "scripts" / "make_msmarco_rows.py")
make_msmarco_rows = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(make_msmarco_rows)
write_rows = make_msmarco_rows.write_rows


def offline_cell(rows, cache) -> list[str]:
    """A paper-grid cell's data overrides for local Tevatron rows and no ir_datasets."""
    return [f"data.train_source={rows}", f"data.cache_dir={cache}", "data.eval_splits=[dl19,dl20]"]
