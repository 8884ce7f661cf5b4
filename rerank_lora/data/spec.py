"""The `data` config group as a dataclass: where the collection comes from, how training groups are drawn,
and how the eval splits are reranked. Built once in the entry point (`configs.to_spec`)."""

from dataclasses import dataclass, field


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
