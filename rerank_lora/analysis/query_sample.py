"""The queries an analysis scores: a seeded sample of a split's queries (the same for every variant and checkpoint,
so paired tests compare like with like), and a split's eval batches cut down to them."""

import random

from rerank_lora.data.datamodule import EvalBatch


def sample_queries(first_stage: dict, size: int | None, seed: int) -> set[str] | None:
    """A seeded sample of `size` of a split's queries (None: every query)."""
    if size is None:
        return None
    pool = sorted(first_stage)
    return set(random.Random(seed).sample(pool, min(size, len(pool))))


def only_queries(batches: list[EvalBatch], qids: set[str]) -> list[EvalBatch]:
    """The batches' pairs of the queries `qids`, in their order (a batch left with none dropped)."""
    kept = []
    for batch in batches:
        rows = [i for i, q in enumerate(batch.qids) if q in qids]
        if rows:
            inputs = {k: v[rows] for k, v in batch.inputs.items()}
            kept.append(EvalBatch([batch.qids[i] for i in rows], [batch.pids[i] for i in rows], inputs))
    return kept
