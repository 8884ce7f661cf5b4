"""data=msmarco's training rows: Tevatron's msmarco-passage-aug layout ({query_id, query, positive_passages,
negative_passages}, passages as {docid, title, text}), converted once by `datasets` into its Arrow cache (under
data.cache_dir), then mapped read-only and read a row at a time as training groups need them.

Nothing is gathered up front beyond the row numbers kept (rows with a positive passage, sampled down to
data.train_queries): all ~400k rows start training as fast as 1,000 do. Memory stays flat over the epoch: the
file pages a row read maps into this process are dropped every RELEASE_EVERY rows (they stay in the kernel's
page cache), where a plain memory map would keep every page it ever touched resident, the whole 5-6 GB file by
the end. With data.titles a passage is (docid, text, title), its title as the row holds it, for the input template
to place (data/pairs.py; Tevatron's "-" placeholder for a missing title becomes no title there); without, (docid,
text).
"""

import mmap
import random
import re
from pathlib import Path

import numpy as np

from rerank_lora.data.offline import environ, hub_file
from rerank_lora.data.pairs import Passage, clean_title  # noqa: F401 - clean_title: tests import it here
from rerank_lora.data.spec import DataSpec
from rerank_lora.data.train_sources import Example
from rerank_lora.errors import InputError

TEVATRON_COLUMNS = ("query_id", "query", "positive_passages", "negative_passages")
RELEASE_EVERY = 64  # rows read between drops of the mapped pages (a row read maps 0.5-2 MB of the file)
LAYOUT = "{query_id, query, positive_passages: [{docid, title, text}], negative_passages: [{docid, title, text}]}"


def train_files(spec: DataSpec, cache: Path) -> list[str]:
    """Local data files for data.train_source: a file, a folder of them, or a Hub dataset's data.train_file."""
    source = str(spec.train_source)
    path = Path(source).expanduser()
    if path.is_dir():
        files = sorted(str(p) for p in path.iterdir() if _builder(p.name))
        if not files:
            raise InputError(f"data.train_source={source}: no .parquet/.jsonl/.jsonl.gz/.json files in that folder")
        return files
    if path.is_file():
        return [str(path)]
    if not re.fullmatch(r"[\w.-]+/[\w.-]+", source):
        raise InputError(f"data.train_source={source}: no such file or folder, and not a Hub dataset id (owner/name)")
    return [hub_file(source, str(spec.train_file), cache / "huggingface" / "hub")]


def _builder(name: str) -> str | None:
    """The `datasets` builder for a data file's name."""
    if name.endswith(".parquet"):
        return "parquet"
    return "json" if name.endswith((".jsonl", ".json", ".jsonl.gz", ".json.gz")) else None


def load_rows(spec: DataSpec, files: list[str], cache: Path):
    """All rows as a memory-mapped `datasets.Dataset` (its Arrow cache is built on first use)."""
    import datasets

    builders = {_builder(f) for f in files}
    if len(builders) != 1 or None in builders:
        raise InputError(f"data.train_source: expected .parquet or .jsonl(.gz) files of one kind; got {files}")
    datasets_cache = cache / "huggingface" / "datasets"
    with environ(HF_DATASETS_CACHE=str(datasets_cache)):
        rows = datasets.load_dataset(builders.pop(), data_files=files, split="train", cache_dir=str(datasets_cache))
    missing = [c for c in TEVATRON_COLUMNS if c not in rows.column_names]
    if missing:
        raise InputError(
            f"data.train_source={spec.train_source}: not in Tevatron's msmarco-passage-aug layout, missing column(s) "
            f"{missing}; columns present: {rows.column_names}"
        )
    return rows.select_columns(list(TEVATRON_COLUMNS))


class MappedTable:
    """The Arrow files of a `datasets` cache as one table over read-only memory maps this object owns, so that it
    can drop the pages its reads mapped (`madvise(MADV_DONTNEED)`: the data stays in the page cache, only this
    process's resident set shrinks). Pickles as its file names."""

    def __init__(self, files: list[str], columns: tuple[str, ...] = TEVATRON_COLUMNS):
        import pyarrow as pa

        self.files, self.columns, self.maps, self.reads = list(files), columns, [], 0
        tables = []
        for name in self.files:
            with open(name, "rb") as handle:
                self.maps.append(mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ))
            tables.append(pa.ipc.open_stream(pa.py_buffer(self.maps[-1])).read_all())
        self.table = (pa.concat_tables(tables) if len(tables) > 1 else tables[0]).select(list(columns))

    def __len__(self) -> int:
        return self.table.num_rows

    def row(self, number: int) -> dict:
        self.reads += 1
        if self.reads % RELEASE_EVERY == 0:
            self.release()
        return self.table.slice(number, 1).to_pylist()[0]

    def column(self, name: str):
        return self.table.column(name)

    def release(self) -> None:
        for mapped in self.maps:
            mapped.madvise(mmap.MADV_DONTNEED)

    def __getstate__(self) -> dict:
        return {"files": self.files, "columns": self.columns}

    def __setstate__(self, state: dict) -> None:
        self.__init__(state["files"], state["columns"])


class TevatronRows:
    """The training rows kept, as row numbers into the mapped table; `example(i)` reads row i's query and
    passages from disk. Random negatives come from the passages of a random kept row."""

    def __init__(self, rows: MappedTable, kept: np.ndarray, titles: bool, source: str):
        self.rows, self.kept, self.titles, self.source = rows, kept, titles, source

    def __len__(self) -> int:
        return len(self.kept)

    def example(self, index: int) -> Example:
        number = int(self.kept[index])
        row = self.rows.row(number)
        try:
            positives, negatives = (self._passages(row[key]) for key in ("positive_passages", "negative_passages"))
            if not isinstance(row["query"], str):
                raise TypeError
        except (KeyError, TypeError, AttributeError):
            raise InputError(f"data.train_source={self.source}: row {number} is not a Tevatron row {LAYOUT}") from None
        positive_ids = {p[0] for p in positives}
        return Example(str(row["query_id"]), row["query"], positives, [p for p in negatives if p[0] not in positive_ids])

    def _passages(self, passages) -> list[Passage]:
        out = []
        for p in passages or []:
            text = p["text"]
            if not isinstance(text, str):
                raise TypeError
            title = p.get("title") if self.titles else None
            out.append((str(p["docid"]), text, str(title)) if title else (str(p["docid"]), text))
        return out

    def random_passage(self, rng: random.Random) -> Passage:
        example = self.example(rng.randrange(len(self.kept)))
        return rng.choice(example.positives + example.negatives)

    def lacking_negatives(self) -> list[str]:
        """Row numbers of kept rows without negative passages (counted on the Arrow column, not read)."""
        counts = _list_lengths(self.rows, "negative_passages")[self.kept]
        return [str(n) for n in self.kept[counts == 0]]

    def query_ids(self) -> list[str]:
        """The kept rows' query ids (one column read)."""
        ids = self.rows.column("query_id").to_pylist()
        self.rows.release()
        return [str(ids[n]) for n in self.kept]

    def describe(self) -> str:
        return f"{len(self.kept)} training rows of {len(self.rows)} in {self.source}"


def _list_lengths(rows, column: str) -> np.ndarray:
    """The length of each row's list in `column` (0 for a missing list), from the Arrow offsets alone."""
    import pyarrow.compute as pc

    return pc.fill_null(pc.list_value_length(rows.column(column)), 0).to_numpy()


def tevatron_rows(spec: DataSpec, files: list[str], cache: Path) -> TevatronRows:
    """The rows of data.train_source with a positive passage, sampled to data.train_queries (seeded)."""
    loaded = load_rows(spec, files, cache)
    _check_types(loaded, spec)
    rows = MappedTable([f["filename"] for f in loaded.cache_files])
    chosen = np.arange(len(rows))
    if spec.train_queries is not None and spec.train_queries < len(rows):
        chosen = np.array(sorted(random.Random(f"{spec.sample_seed}:train").sample(range(len(rows)), int(spec.train_queries))))
    kept = chosen[_list_lengths(rows, "positive_passages")[chosen] > 0] if len(chosen) else chosen
    rows.release()
    return TevatronRows(rows, kept.astype(np.int64), bool(spec.titles), str(spec.train_source))


def _check_types(rows, spec: DataSpec) -> None:
    """The passage columns must be lists of {docid, text, (title)}: checked once on the Arrow schema."""
    import pyarrow as pa

    for column in ("positive_passages", "negative_passages"):
        kind = rows.data.schema.field(column).type
        item = kind.value_type if pa.types.is_list(kind) or pa.types.is_large_list(kind) else None
        names = {item.field(i).name for i in range(item.num_fields)} if item is not None and pa.types.is_struct(item) else set()
        if not {"docid", "text"} <= names:
            raise InputError(
                f"data.train_source={spec.train_source}: column {column} is {kind}, not a list of passages; "
                f"expected Tevatron's layout {LAYOUT}"
            )
