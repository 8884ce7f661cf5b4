"""Result tables written beside a checkpoint: CSV and JSON lines, each written to a temporary name and renamed
when complete, so a file with the final name is always a finished one."""

import csv
import json
import math
from pathlib import Path

from rerank_lora.disk import write_atomic


def _atomic(path: Path, write) -> Path:
    return write_atomic(path, write, fault="table_write")


def _cell(value):
    if isinstance(value, float) and math.isnan(value):
        return ""
    return "" if value is None else value


def write_csv(path: Path, rows: list[dict], columns: list[str] | None = None) -> Path:
    """Rows as CSV with a header (`columns`, or the keys in order of first appearance); None and NaN as empty."""
    columns = columns or list(dict.fromkeys(key for row in rows for key in row))

    def write(handle):
        writer = csv.DictWriter(handle, fieldnames=columns, extrasaction="ignore")
        writer.writeheader()
        writer.writerows({k: _cell(row.get(k)) for k in columns} for row in rows)

    return _atomic(path, write)


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    return _atomic(path, lambda handle: handle.writelines(json.dumps(row) + "\n" for row in rows))


def read_csv(path: Path) -> list[dict]:
    """A CSV written by `write_csv`, numbers as int/float, empty cells as None, true/false as bools."""

    def value(text: str):
        if text == "":
            return None
        if text in ("True", "False"):
            return text == "True"
        for kind in (int, float):
            try:
                return kind(text)
            except ValueError:
                pass
        return text

    with Path(path).open(encoding="utf-8", newline="") as handle:
        return [{k: value(v) for k, v in row.items()} for row in csv.DictReader(handle)]
