"""The `data` config group as a dataclass: where the collection comes from, how training groups are drawn,
and how the eval splits are reranked. Built once in the entry point (`configs.to_spec`). Also the shape of
one data.splits entry (data=msmarco), read from the plain dicts DataSpec.splits holds.
"""

from dataclasses import dataclass, field, fields

from rerank_lora.errors import InputError


@dataclass(frozen=True)
class DataSpec:
    name: str = "trec"
    loader: str = "files"  # files (data=trec and the shipped set) | msmarco (data=msmarco)
    # loader=files: the collection's files
    corpus: str | None = None
    queries: str | None = None
    qrels: str | None = None
    candidates: str | None = None
    triples: str | None = None
    # loader=msmarco: Tevatron training rows and ir_datasets eval splits, read from cache_dir
    cache_dir: str | None = None
    train_source: str | None = None
    train_file: str | None = None
    train_queries: int | None = None
    sample_seed: int = 0
    splits: dict = field(default_factory=dict)
    # training groups
    train_split: str = "train"
    group_size: int = 4
    queries_per_batch: int = 2
    negatives: list = field(default_factory=lambda: ["triples", "random"])
    candidate_negatives_depth: int = 100
    max_length: int = 160
    # evaluation
    eval_splits: list = field(default_factory=lambda: ["test"])
    eval_depth: int = 10
    eval_batch_size: int = 16
    sort_by_length: bool = True


@dataclass(frozen=True)
class EvalSplit:
    """One entry of data.splits: an ir_datasets id, how many judged queries to keep (None = all), and a ranked
    TREC run to rerank instead of the dataset's scoreddocs."""

    ir_dataset: str
    max_queries: int | None = None
    run: str | None = None


def eval_split_specs(spec: DataSpec) -> dict[str, EvalSplit]:
    """data.splits as EvalSplits by name; an entry in another shape is named with the accepted keys."""
    accepted = ", ".join(f.name for f in fields(EvalSplit))
    splits = {}
    for name, values in spec.splits.items():
        try:
            splits[name] = EvalSplit(**values)
        except TypeError:
            raise InputError(f"data.splits.{name}={values!r}; expected a mapping with keys {accepted}") from None
    return splits
