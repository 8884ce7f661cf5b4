"""Linear probing, then fine-tuning (Kumar et al. 2022): the score head starts as a linear probe fitted on the
pooled states of the first training groups, so LoRA's first steps follow a head that already ranks instead of a
random one. The `head` config group: init random | probe."""

import logging
import time
from dataclasses import dataclass

import lightning as L
import torch

from rerank_lora.data.pairs import pad
from rerank_lora.errors import InputError, check_int
from rerank_lora.model.linear_probe import fit_probe

log = logging.getLogger(__name__)
HEAD_INITS = ("random", "probe")


@dataclass(frozen=True)
class HeadInit:
    init: str = "random"  # random | probe
    probe_groups: int = 128  # training groups the probe is fitted on (the stream's first ones)
    probe_l2: float = 1e-3  # L2 penalty on the probe's weights (features standardised per dimension)

    def __post_init__(self):
        if self.init not in HEAD_INITS:
            raise InputError(f"head.init={self.init!r}; accepted: {', '.join(HEAD_INITS)}")
        check_int("head.probe_groups", self.probe_groups, 1)
        if isinstance(self.probe_l2, bool) or not isinstance(self.probe_l2, int | float) or self.probe_l2 < 0:
            raise InputError(f"head.probe_l2={self.probe_l2!r}; accepted: a number >= 0")


class ProbeHead(L.Callback):
    """At the start of a fresh run (before step 0 is saved), the head becomes the probe fitted on the pooled
    states of training groups 0..count-1 (LoRA's B matrices are still zero: the states are the base model's)."""

    def __init__(self, groups, count: int, l2: float, pad_id: int, batch_size: int):
        self.groups, self.count, self.l2, self.pad_id, self.batch_size = groups, count, l2, pad_id, batch_size

    def on_fit_start(self, trainer, reranker) -> None:
        started = time.perf_counter()
        pairs = [pair for k in range(self.count) for pair in self.groups.group(k)]
        order, size = sorted(range(len(pairs)), key=lambda i: len(pairs[i])), self.batch_size  # less padding
        batches = [pad([pairs[i] for i in order[j : j + size]], self.pad_id) for j in range(0, len(order), size)]
        states = torch.empty(len(pairs), reranker.head.in_features)
        states[order] = pooled_states(reranker, batches).cpu()
        weight = fit_probe(states, self.groups.group_size, self.l2).weight.detach()
        weight = trainer.strategy.broadcast(weight.to(reranker.device), 0)  # every DDP rank starts from rank 0's
        with torch.no_grad():
            reranker.head.weight.copy_(weight)
        log.info("head: a linear probe fitted on %d training groups (%d pairs) in %.1f s", self.count, len(pairs),
                 time.perf_counter() - started)


@torch.no_grad()
def pooled_states(reranker, batches: list[dict]) -> torch.Tensor:
    """(pairs, hidden) float32: what the head reads, with dropout off."""
    was_training, device = reranker.training, reranker.device
    reranker.eval()
    try:
        with reranker.autocast():
            return torch.cat([reranker.pooled(b["input_ids"].to(device), b["attention_mask"].to(device)) for b in batches])
    finally:
        reranker.train(was_training)
