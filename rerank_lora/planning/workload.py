"""What one cell does, counted as the job counts it: optimizer steps (trainer.max_steps), training groups
(steps x queries_per_batch x accumulate_grad_batches x world size) and pairs (x group_size), the checkpoints of
its schedule (`checkpoint_steps`) each reranking every eval split, the held-out splits reranked twice (step 0 and
the chosen checkpoint: at most two), and the tokens of all of it."""

from dataclasses import dataclass
from pathlib import Path

from rerank_lora.data.spec import DataSpec, eval_split_specs
from rerank_lora.data.trec_files import read_qrels, read_queries, read_run
from rerank_lora.errors import InputError, check_int
from rerank_lora.planning.tokens import Tokens, TokenSample
from rerank_lora.train.schedule import checkpoint_steps

# Judged queries of the ir_datasets eval splits data=msmarco knows (data.splits.NAME.max_queries caps them).
KNOWN_QUERIES = {
    "msmarco-passage/dev/small": 6980,
    "msmarco-passage/trec-dl-2019/judged": 43,
    "msmarco-passage/trec-dl-2020/judged": 54,
}


HELD_OUT_EVALUATIONS = 2  # step 0 and the chosen checkpoint (one when step 0 is chosen)


@dataclass(frozen=True)
class Workload:
    steps: int
    world_size: int
    accumulate: int
    groups: int
    pairs: int
    checkpoints: list[int]
    splits: list[str]
    scored_per_evaluation: dict[str, int]  # pairs of each split at the reranking depth
    train: Tokens  # every training pair of the run
    scoring: Tokens  # every pair scored, over all checkpoints
    held_out_per_evaluation: dict[str, int]  # pairs of each held-out split, scored at step 0 and the chosen checkpoint

    @property
    def evaluations(self) -> int:
        return len(self.checkpoints) * len(self.splits) + HELD_OUT_EVALUATIONS * len(self.held_out_per_evaluation)

    @property
    def pairs_scored(self) -> int:
        every = len(self.checkpoints) * sum(self.scored_per_evaluation.values())
        return every + HELD_OUT_EVALUATIONS * sum(self.held_out_per_evaluation.values())


def world_size(trainer: dict) -> int:
    """devices x num_nodes where they are integers (devices=auto counts as 1)."""
    devices, nodes = trainer.get("devices", 1), trainer.get("num_nodes", 1)
    return (devices if isinstance(devices, int) else 1) * (nodes if isinstance(nodes, int) else 1)


def workload(trainer: dict, schedule: dict, spec: DataSpec, sample: TokenSample | None, per_pair: Tokens | None) -> Workload:
    """The cell's counts; tokens from `sample` (the job's data, or a proxy: None where `per_pair` states them)."""
    steps = trainer.get("max_steps")
    check_int("trainer.max_steps", steps, 0, why="the plan needs the run's length in optimizer steps")
    accumulate, world = trainer.get("accumulate_grad_batches") or 1, world_size(trainer)
    groups = steps * spec.queries_per_batch * accumulate * world
    checkpoints = checkpoint_steps(steps, **schedule)
    scored = {split: split_pairs(spec, split, sample) for split in spec.eval_splits}
    held_out = {split: split_pairs(spec, split, sample) for split in spec.held_out_splits}
    packed = bool(trainer.get("packed", False))
    train = sample.training(groups, packed) if per_pair is None else per_pair.scaled(groups * spec.group_size)
    scoring = scoring_tokens(spec, scored, sample, per_pair) * len(checkpoints)
    if held_out:
        scoring += scoring_tokens(spec, held_out, sample, per_pair) * HELD_OUT_EVALUATIONS
    return Workload(
        steps, world, accumulate, groups, groups * spec.group_size, checkpoints, list(spec.eval_splits), scored,
        train, scoring, held_out,
    )


def split_pairs(spec: DataSpec, split: str, sample: TokenSample | None) -> int:
    """Pairs one evaluation of `split` scores: counted on local data (data.loader=files, or a data.splits entry
    read from `files`); else its queries (ir_datasets' judged count, capped by max_queries) x its depth."""
    if spec.loader == "files":
        return int(sample.scoring(split).pairs)
    splits = eval_split_specs(spec)
    if split not in splits:
        raise InputError(f"data.eval_splits: {split!r} is not in data.splits ({', '.join(splits)})")
    entry = splits[split]
    depth = entry.depth or spec.eval_depth
    if entry.files:
        return files_split_pairs(entry, depth, split)
    known = KNOWN_QUERIES.get(entry.ir_dataset)
    if known is None and entry.max_queries is None:
        raise InputError(
            f"data.splits.{split}: the plan does not know how many queries {entry.ir_dataset} has; give max_queries"
        )
    return min(q for q in (known, entry.max_queries) if q is not None) * depth


def files_split_pairs(entry, depth: int, name: str) -> int:
    """A split read from a folder of files: its judged queries labelled entry.label, each with its candidates
    cut to `depth` (a max_queries sample: their mean x max_queries)."""
    folder = Path(str(entry.files)).expanduser()
    texts, labels = read_queries(folder / "queries.jsonl")
    qrels, run = read_qrels(folder / "qrels.tsv"), read_run(folder / "candidates.tsv")
    chosen = [q for q in texts if (entry.label is None or labels[q] in (entry.label, None)) and qrels.get(q) and run.get(q)]
    if not chosen:
        raise InputError(f"data.splits.{name}: no judged queries with candidates labelled {entry.label!r} in {folder}")
    per_query = [min(depth, len(run[q])) for q in chosen]
    kept = len(chosen) if entry.max_queries is None else min(len(chosen), entry.max_queries)
    return round(sum(per_query) / len(chosen) * kept)


def scoring_tokens(spec: DataSpec, scored: dict[str, int], sample: TokenSample | None, per_pair: Tokens | None) -> Tokens:
    """The tokens of one evaluation of each split in `scored` ({split: pairs})."""
    if per_pair is not None:
        return per_pair.scaled(sum(scored.values()))
    if spec.loader == "files":
        return sum((sample.scoring(split) for split in scored), Tokens())
    return sample.scoring_per_pair().scaled(sum(scored.values()))
