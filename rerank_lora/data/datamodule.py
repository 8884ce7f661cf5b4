"""Training groups (1 positive + negatives per query) and length-sorted eval batches over a Collection."""

import functools
import random
from dataclasses import dataclass

import lightning as L
import torch
from torch.utils.data import DataLoader, Dataset

from rerank_lora.data.collection_type import Collection
from rerank_lora.data.pairs import PairEncoder, pad
from rerank_lora.data.spec import DataSpec
from rerank_lora.data.trec_files import top_k
from rerank_lora.errors import InputError

NEGATIVE_SOURCES = ("triples", "candidates", "random")


@dataclass
class EvalBatch:
    qids: list[str]
    pids: list[str]
    inputs: dict[str, torch.Tensor]


class TrainGroups:
    """The training stream: group k is query k % n of pass k // n over the training queries (each pass
    in its own seeded order), with token ids for [positive, negative, ...] drawn from (seed, pass, k).
    A function of k alone, so a resumed run picks up exactly where the interrupted one stopped."""

    def __init__(self, collection: Collection, spec: DataSpec, encoder: PairEncoder, seed: int):
        self.group_size, self.seed = spec.group_size, seed
        self.sources = _check_sources(spec.negatives)
        self.positives, self.negatives = _train_pairs(collection, spec)
        self.qids = sorted(self.positives)
        self.random_pool = sorted({p for pids in self.positives.values() for p in pids} | _flat(self.negatives))
        self._check_enough_negatives()
        pids = sorted({p for q in self.qids for p in self.positives[q] + self.negatives.get(q, [])} | set(self.random_pool))
        self.query_ids = dict(zip(self.qids, encoder.queries([collection.queries[q] for q in self.qids])))
        self.passage_ids = dict(zip(pids, encoder.passages([collection.corpus[p] for p in pids])))
        self.encoder = encoder

    def group(self, k: int) -> list[list[int]]:
        n = len(self.qids)
        passes, position = divmod(k, n)
        qid = self.qids[self._order(passes)[position]]
        rng = random.Random(f"{self.seed}:{passes}:{position}")
        group = [rng.choice(self.positives[qid])] + self._draw_negatives(qid, rng)
        return [self.encoder.join(self.query_ids[qid], self.passage_ids[pid]) for pid in group]

    @functools.lru_cache(maxsize=2)  # noqa: B019 - one object per job; the cache holds two permutations
    def _order(self, passes: int) -> list[int]:
        return random.Random(f"{self.seed}:order:{passes}").sample(range(len(self.qids)), len(self.qids))

    def _draw_negatives(self, qid: str, rng: random.Random) -> list[str]:
        wanted = self.group_size - 1
        own = list(self.negatives.get(qid, []))
        rng.shuffle(own)
        drawn = own[:wanted]
        if "random" in self.sources:
            excluded = set(self.positives[qid]) | set(drawn)
            while len(drawn) < wanted:
                pid = rng.choice(self.random_pool)
                if pid not in excluded:
                    drawn.append(pid)
                    excluded.add(pid)
        while len(drawn) < wanted:  # too few negatives of its own and no random source: repeat them
            drawn.append(rng.choice(own))
        return drawn

    def _check_enough_negatives(self) -> None:
        if not self.qids:
            raise InputError("no training queries: give data.triples, or queries labelled data.train_split in qrels")
        if "random" in self.sources:
            return
        lacking = [q for q in self.qids if not self.negatives.get(q)]
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


def _flat(by_query: dict[str, list[str]]) -> set[str]:
    return {p for pids in by_query.values() for p in pids}


def _check_sources(sources) -> list[str]:
    sources = list(sources)
    unknown = [s for s in sources if s not in NEGATIVE_SOURCES]
    if unknown or not sources:
        raise InputError(f"data.negatives={sources}; accepted: a non-empty list from {list(NEGATIVE_SOURCES)}")
    return sources


def _train_pairs(c: Collection, spec: DataSpec) -> tuple[dict[str, list[str]], dict[str, list[str]]]:
    """Positives from triples and from qrels of train-split queries; negatives from the chosen sources."""
    positives, negatives = {}, {}
    for qid, pos, neg in c.triples:
        positives.setdefault(qid, []).append(pos)
        if "triples" in spec.negatives:
            negatives.setdefault(qid, []).append(neg)
    for qid, label in c.query_splits.items():
        if label == spec.train_split:
            positives.setdefault(qid, []).extend(p for p, rel in c.qrels.get(qid, {}).items() if rel > 0)
    if "candidates" in spec.negatives:
        for qid in positives:
            ranked = top_k(c.candidates.get(qid, {}), spec.candidate_negatives_depth)
            negatives.setdefault(qid, []).extend(p for p in ranked if c.qrels.get(qid, {}).get(p, 0) <= 0)
    positives = {q: sorted(set(p) & c.corpus.keys()) for q, p in positives.items()}
    positives = {q: p for q, p in positives.items() if p}
    negatives = {q: sorted(set(n) - set(positives.get(q, []))) for q, n in negatives.items()}
    return positives, negatives


class RerankDataModule(L.LightningDataModule):
    """Training groups for Lightning's fit loop; eval batches for each eval split, reranking the
    first-stage candidates to data.eval_depth."""

    def __init__(self, collection: Collection, tokenizer, spec: DataSpec, seed: int):
        super().__init__()
        self.collection, self.cfg, self.seed = collection, spec, seed
        self.encoder = PairEncoder(tokenizer, spec.max_length)
        self.pad_id = tokenizer.pad_token_id
        self.train_set = TrainGroups(collection, spec, self.encoder, seed)
        self.first_stage = {split: self._first_stage(split) for split in spec.eval_splits}

    def _first_stage(self, split: str) -> dict[str, dict[str, float]]:
        queries = set(self.collection.split_queries(split))
        run = {q: s for q, s in self.collection.candidates.items() if q in queries}
        if not run:
            labels = sorted({str(s) for s in self.collection.query_splits.values()})
            raise InputError(f"data.eval_splits: split {split!r} has no queries with candidates; labels present: {labels}")
        return top_k(run, self.cfg.eval_depth)

    def qrels(self, split: str) -> dict[str, dict[str, int]]:
        return {q: self.collection.qrels[q] for q in self.first_stage[split] if q in self.collection.qrels}

    def train_dataloader(self) -> DataLoader:
        """The rest of the run as one pass: from the trainer's (possibly restored) step to max_steps. An
        optimizer step takes `accumulate_grad_batches` micro-batches of queries_per_batch groups on each rank:
        consecutive groups of the stream, dealt out to the ranks by Lightning's distributed sampler."""
        per_batch = self.cfg.queries_per_batch
        groups_per_step = per_batch * self.trainer.world_size * self.trainer.accumulate_grad_batches
        start, stop = self.trainer.global_step * groups_per_step, self.trainer.max_steps * groups_per_step
        return DataLoader(
            StreamWindow(self.train_set, start, stop),
            batch_size=per_batch,
            shuffle=False,
            generator=torch.Generator(),  # leaves the global RNG (dropout) untouched, as a resume needs
            collate_fn=lambda groups: pad([pair for group in groups for pair in group], self.pad_id),
        )

    def eval_batches(self, split: str) -> list[EvalBatch]:
        """Pairs of the split's reranking depth, sorted by length and padded to each batch's longest
        (or, with data.sort_by_length=false, in candidate order padded to data.max_length)."""
        pairs = [(q, p) for q, scores in self.first_stage[split].items() for p in scores]
        texts = self.collection
        q_ids = dict(zip(self.first_stage[split], self.encoder.queries([texts.queries[q] for q in self.first_stage[split]])))
        pids = sorted({p for _, p in pairs})
        p_ids = dict(zip(pids, self.encoder.passages([texts.corpus[p] for p in pids])))
        encoded = [self.encoder.join(q_ids[q], p_ids[p]) for q, p in pairs]
        order = range(len(pairs))
        if self.cfg.sort_by_length:
            order = sorted(order, key=lambda i: len(encoded[i]))
        order, size = list(order), self.cfg.eval_batch_size
        length = None if self.cfg.sort_by_length else self.cfg.max_length
        return [
            EvalBatch(
                [pairs[i][0] for i in chunk], [pairs[i][1] for i in chunk], pad([encoded[i] for i in chunk], self.pad_id, length)
            )
            for chunk in (order[start : start + size] for start in range(0, len(order), size))
        ]
