"""Training groups (1 positive + negatives per query), tokenised as they are drawn, and length-sorted eval
batches over a Collection."""

import functools
import logging
import math
import random
from dataclasses import dataclass

import lightning as L
import torch
from torch.utils.data import DataLoader, Dataset, DistributedSampler

from rerank_lora.data.in_memory import Collection
from rerank_lora.data.pairs import TemplateOptions, pad, pair_encoder
from rerank_lora.data.spec import DataSpec, split_depth
from rerank_lora.data.train_sources import NEGATIVE_SOURCES, CollectionPairs, Example, check_sources
from rerank_lora.data.trec_files import top_k
from rerank_lora.errors import InputError

log = logging.getLogger(__name__)
CACHED_QUERIES, CACHED_PASSAGES = 4096, 16384  # token ids kept (a few tens of MB at most)


@dataclass
class EvalBatch:
    qids: list[str]
    pids: list[str]
    inputs: dict[str, torch.Tensor]


class TrainGroups:
    """The training stream: group k is query k % n of pass k // n over the training queries (each pass
    in its own seeded order), with token ids for [positive, negative, ...] drawn from (seed, pass, k).
    A function of k alone, so a resumed run picks up exactly where the interrupted one stopped. Texts are
    read from the source and tokenised when a group needs them (a bounded cache keeps recent ones), so the
    stream starts at once however many queries the source holds."""

    def __init__(self, collection: Collection, spec: DataSpec, encoder, seed: int):
        self.group_size, self.seed, self.encoder = spec.group_size, seed, encoder
        self.sources = check_sources(spec.negatives)
        self.source = collection.train_rows if collection.train_rows is not None else CollectionPairs(collection, spec)
        if collection.train_rows is not None and "candidates" in self.sources:
            raise InputError(
                f"data.negatives={self.sources}: data=msmarco's training rows have no first-stage candidates; "
                "accepted there: triples (each row's own hard negatives), random"
            )
        self._check_enough_negatives()

    def __len__(self) -> int:
        return len(self.source)

    def group(self, k: int) -> list[list[int]]:
        n = len(self.source)
        passes, position = divmod(k, n)
        example = self.source.example(self._order(passes)[position])
        rng = random.Random(f"{self.seed}:{passes}:{position}")
        chosen = [rng.choice(example.positives)] + self._draw_negatives(example, rng)
        return self.encoder.encode([(example.qid, example.query)] * len(chosen), chosen)

    @functools.lru_cache(maxsize=2)  # noqa: B019 - one object per job; the cache holds two permutations
    def _order(self, passes: int) -> list[int]:
        n = len(self.source)
        return random.Random(f"{self.seed}:order:{passes}").sample(range(n), n)

    def _draw_negatives(self, example: Example, rng: random.Random) -> list[tuple[str, str]]:
        wanted = self.group_size - 1
        own = list(example.negatives)
        rng.shuffle(own)
        drawn = own[:wanted]
        if "random" in self.sources:
            excluded = {p[0] for p in example.positives} | {p[0] for p in drawn}
            while len(drawn) < wanted:
                passage = self.source.random_passage(rng)
                if passage[0] not in excluded:
                    drawn.append(passage)
                    excluded.add(passage[0])
        while len(drawn) < wanted:  # too few negatives of its own and no random source: repeat them
            drawn.append(rng.choice(own))
        return drawn

    def _check_enough_negatives(self) -> None:
        if not len(self.source):
            raise InputError(
                "no training queries: give data.triples, or queries labelled data.train_split in qrels "
                "(data=msmarco: rows with a positive passage in data.train_source)"
            )
        if "random" in self.sources:
            return
        lacking = self.source.lacking_negatives()
        if lacking:
            raise InputError(
                f"{len(lacking)} training queries (e.g. {lacking[0]}) have no negatives from {self.sources}; "
                f"add 'random' to data.negatives (accepted: {list(NEGATIVE_SOURCES)})"
            )


class StreamWindow(Dataset):
    """Groups start..stop-1 of the training stream, in order."""

    def __init__(self, groups: TrainGroups, start: int, stop: int):
        self.groups, self.start, self.stop = groups, start, stop

    def __len__(self) -> int:
        return max(0, self.stop - self.start)

    def __getitem__(self, index: int) -> list[list[int]]:
        return self.groups.group(self.start + index)


def template_options(spec: DataSpec) -> TemplateOptions:
    return TemplateOptions(spec.query_prefix, spec.passage_prefix, spec.append_eos)


def check_titles_on_both_sides(collection: Collection, spec: DataSpec) -> None:
    """Evaluation passages (corpus files, ir_datasets' msmarco-passage) carry no titles, so training passages may not
    either: the model would be measured on inputs built otherwise than those it learned from."""
    if spec.titles and collection.train_rows is not None and spec.scored_splits:
        raise InputError(
            "data.titles=true: the training rows' passages would carry their titles but the evaluation passages "
            f"({', '.join(spec.scored_splits)}) have none, so pairs would be built differently in training and in "
            "evaluation; accepted: data.titles=false (the default of data=msmarco and recipe=rankllama)"
        )


def first_queries(run: dict, queries: int | None) -> dict:
    """The run's first `queries` queries (None: all of them)."""
    if queries is None:
        return run
    if queries > len(run):
        raise InputError(f"queries={queries}; accepted: 1 to {len(run)} (the split's queries with candidates)")
    return dict(list(run.items())[:queries])


class RerankDataModule(L.LightningDataModule):
    """Training groups for Lightning's fit loop (unless train=False); eval batches for each eval split,
    reranking the first-stage candidates to data.eval_depth (each split's first `queries` queries, if given)."""

    def __init__(self, collection: Collection, tokenizer, spec: DataSpec, seed: int, train: bool = True,
                 queries: int | None = None):
        super().__init__()
        self.collection, self.spec, self.seed = collection, spec, seed
        self.encoder = pair_encoder(tokenizer, spec.max_length, spec.template, (CACHED_QUERIES, CACHED_PASSAGES),
                                    template_options(spec))
        self.pad_id = tokenizer.pad_token_id
        if train:
            check_titles_on_both_sides(collection, spec)
        self.train_set = TrainGroups(collection, spec, self.encoder, seed) if train else None
        self.first_stage = {split: first_queries(self._first_stage(split), queries) for split in spec.scored_splits}

    def _first_stage(self, split: str) -> dict[str, dict[str, float]]:
        queries = set(self.collection.split_queries(split))
        run = {q: s for q, s in self.collection.candidates.items() if q in queries}
        if not run:
            labels = sorted({str(s) for s in self.collection.query_splits.values()})
            raise InputError(f"data.eval_splits: split {split!r} has no queries with candidates; labels present: {labels}")
        return top_k(run, split_depth(self.spec, split))

    def qrels(self, split: str) -> dict[str, dict[str, int]]:
        return {q: self.collection.qrels[q] for q in self.first_stage[split] if q in self.collection.qrels}

    def train_dataloader(self) -> DataLoader:
        """The rest of the run as one pass: from the trainer's (possibly restored) step to max_steps. An
        optimizer step takes `accumulate_grad_batches` micro-batches of queries_per_batch groups on each rank:
        consecutive groups of the stream, dealt out in order (rank r takes groups r, r + world_size, ...), so a
        step covers the same groups as one process with world_size x the batch. The sampler is our own:
        Lightning would give a training loader a shuffling DistributedSampler."""
        per_batch, ranks = self.spec.queries_per_batch, self.trainer.world_size
        groups_per_step = per_batch * ranks * self.trainer.accumulate_grad_batches
        start, stop = self.trainer.global_step * groups_per_step, self.trainer.max_steps * groups_per_step
        self._log_epoch(groups_per_step)
        window = StreamWindow(self.train_set, start, stop)
        in_order = DistributedSampler(window, ranks, self.trainer.global_rank, shuffle=False) if ranks > 1 else None
        return DataLoader(
            window,
            batch_size=per_batch,
            sampler=in_order,
            shuffle=False,
            generator=torch.Generator(),  # leaves the global RNG (dropout) untouched, as a resume needs
            collate_fn=lambda groups: pad([pair for group in groups for pair in group], self.pad_id),
        )

    def _log_epoch(self, groups_per_step: int) -> None:
        """How the run's length compares with one pass over the training queries (once per job)."""
        if getattr(self, "_epoch_logged", False):
            return
        self._epoch_logged = True
        queries, steps = len(self.train_set), self.trainer.max_steps
        epoch = math.ceil(queries / groups_per_step)
        log.info("training: %d queries, %d a step: one pass is %d optimizer steps; trainer.max_steps=%d is %.2f passes",
                 queries, groups_per_step, epoch, steps, steps * groups_per_step / queries)

    def eval_batches(self, split: str, sort_by_length: bool | None = None) -> list[EvalBatch]:
        """Pairs of the split's reranking depth, sorted by length and padded to each batch's longest
        (or, with data.sort_by_length=false, in candidate order padded to data.max_length). `sort_by_length`:
        instead of data.sort_by_length (the benches compare both)."""
        sort = self.spec.sort_by_length if sort_by_length is None else sort_by_length
        pairs = [(q, p) for q, scores in self.first_stage[split].items() for p in scores]
        texts = self.collection
        encoded = self.encoder.encode([(q, texts.queries[q]) for q, _ in pairs], [(p, texts.corpus[p]) for _, p in pairs])
        order = range(len(pairs))
        if sort:
            order = sorted(order, key=lambda i: len(encoded[i]))
        order, size = list(order), self.spec.eval_batch_size
        length = None if sort else self.spec.max_length
        return [
            EvalBatch(
                [pairs[i][0] for i in chunk], [pairs[i][1] for i in chunk], pad([encoded[i] for i in chunk], self.pad_id, length)
            )
            for chunk in (order[start : start + size] for start in range(0, len(order), size))
        ]
