"""The `data` config group as a dataclass: where the collection comes from, how training groups are drawn,
and how the eval splits are reranked. Built once in the entry point (`configs.to_spec`). Also the shape of
one data.splits entry (data=msmarco), read from the plain dicts DataSpec.splits holds, and each split's depth.
"""

from dataclasses import dataclass, field, fields

from rerank_lora.data.pairs import check_template
from rerank_lora.errors import InputError, check_int


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
    # loader=msmarco: Tevatron training rows (read on demand) and eval splits, read from cache_dir
    cache_dir: str | None = None
    train_source: str | None = None
    train_file: str | None = None
    train_queries: int | None = None
    sample_seed: int = 0
    titles: bool = False  # data=msmarco: training passages carry their titles (refused while eval passages have none)
    splits: dict = field(default_factory=dict)
    # training groups
    train_split: str = "train"
    group_size: int = 4
    queries_per_batch: int = 2
    negatives: list = field(default_factory=lambda: ["triples", "random"])
    candidate_negatives_depth: int = 100
    bm25_negatives_depth: int = 10  # negatives=bm25: each query's top-k of BM25 over the training passages
    allow_eval_queries_in_training: bool = False  # else a training query that an eval split reranks is an error
    max_length: int = 160
    template: str = "rerank_lora"  # how a pair becomes tokens: rerank_lora | tevatron | rankllama_v1 (data/pairs.py)
    query_prefix: str = ""  # template=tevatron: Tevatron's --query_prefix
    passage_prefix: str = ""  # template=tevatron: Tevatron's --passage_prefix
    append_eos: bool = False  # template=tevatron: Tevatron's --append_eos_token
    # evaluation
    eval_splits: list = field(default_factory=lambda: ["test"])
    held_out_splits: list = field(default_factory=list)  # scored only at step 0 and at the checkpoint chosen on eval_splits[0]
    eval_depth: int = 10
    eval_batch_size: int = 16
    sort_by_length: bool = True

    def __post_init__(self):
        for key, least, why in [
            ("group_size", 2, "1 positive + at least 1 negative: a group of one makes the softmax loss zero"),
            ("queries_per_batch", 1, ""),
            ("max_length", 2, "tokens per pair; the template needs more, checked with the tokenizer"),
            ("eval_depth", 1, "rerank each query's top-k"),
            ("bm25_negatives_depth", 1, "each training query's top-k of BM25 over the training passages"),
            ("eval_batch_size", 1, ""),
        ]:
            check_int(f"data.{key}", getattr(self, key), least, why=why)
        check_int("data.train_queries", self.train_queries, null="every training query")
        check_template(self.template, "data.template")
        both = sorted(set(self.eval_splits) & set(self.held_out_splits))
        if both:
            raise InputError(
                f"data.held_out_splits={list(self.held_out_splits)} repeats eval splits {both}; accepted: splits "
                "not in data.eval_splits (a held-out split is scored only at step 0 and at the chosen checkpoint)"
            )
        if self.held_out_splits and not self.eval_splits:
            raise InputError("data.held_out_splits needs data.eval_splits: the checkpoint is chosen on eval_splits[0]")

    @property
    def scored_splits(self) -> list[str]:
        """Every split the job reranks: the eval splits, then the held-out ones."""
        return [*self.eval_splits, *self.held_out_splits]


@dataclass(frozen=True)
class EvalSplit:
    """One entry of data.splits: its queries, qrels, first-stage candidates and passage texts come either from
    an ir_datasets id or from a folder of files in the shipped layout (corpus.jsonl, queries.jsonl, qrels.tsv,
    candidates.tsv), keeping the queries labelled `label` there (None: all); how many judged queries to keep
    (None: all); a ranked TREC run to rerank instead of the source's candidates; and its own reranking depth
    (None: data.eval_depth)."""

    ir_dataset: str | None = None
    files: str | None = None
    label: str | None = None
    max_queries: int | None = None
    run: str | None = None
    depth: int | None = None


def eval_split_specs(spec: DataSpec) -> dict[str, EvalSplit]:
    """data.splits as EvalSplits by name; an entry in another shape is named with the accepted keys."""
    accepted = ", ".join(f.name for f in fields(EvalSplit))
    splits = {}
    for name, values in spec.splits.items():
        try:
            split = EvalSplit(**values)
        except TypeError:
            raise InputError(f"data.splits.{name}={values!r}; expected a mapping with keys {accepted}") from None
        if (split.ir_dataset is None) == (split.files is None):
            raise InputError(
                f"data.splits.{name}: give exactly one of ir_dataset (an ir_datasets id) or files (a folder holding "
                f"corpus.jsonl, queries.jsonl, qrels.tsv, candidates.tsv); got ir_dataset={split.ir_dataset!r}, "
                f"files={split.files!r}"
            )
        check_int(f"data.splits.{name}.depth", split.depth, null="data.eval_depth")
        splits[name] = split
    return splits


def split_depth(spec: DataSpec, split: str) -> int:
    """How deep `split`'s first-stage candidates are reranked: its data.splits entry's depth, else data.eval_depth."""
    depth = (spec.splits.get(split) or {}).get("depth")
    return int(depth) if depth is not None else spec.eval_depth
