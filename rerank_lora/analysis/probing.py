"""The layer-wise probing engine: where in the network the ranking is readable. For every decoder layer, the
last real token's hidden state (passed through the model's final norm, as the last layer's is) is scored by
the trained head and, when asked, by a linear probe fitted for that layer on training groups (grouped softmax
loss, as the reranker is trained); each layer's ranking is evaluated. `layer` k is the output of decoder
layer k; the embeddings are left out (the last token is always EOS, so every pair would tie)."""

import logging
import time
from contextlib import nullcontext
from dataclasses import dataclass

import torch
from torch import nn

from rerank_lora.analysis.lora_switch import LoraSwitch
from rerank_lora.analysis.trained_job import TrainedJob
from rerank_lora.data.pairs import pad
from rerank_lora.errors import InputError
from rerank_lora.evaluation import metrics
from rerank_lora.model.linear_probe import fit_probe
from rerank_lora.model.lora import base_model

log = logging.getLogger(__name__)
FINAL_NORMS = ("norm", "final_layer_norm", "ln_f")


@dataclass(frozen=True)
class ProbeFit:
    groups: int = 256  # training groups (1 positive + group_size-1 negatives) the probes are fitted on
    l2: float = 1e-3  # L2 penalty on the probe's weights (features standardised per dimension)


def final_norm(backbone) -> nn.Module:
    model = base_model(backbone)
    for name in FINAL_NORMS:
        if isinstance(getattr(model, name, None), nn.Module):
            return getattr(model, name)
    raise InputError(f"{type(model).__name__}: no final norm among {FINAL_NORMS}; layer-wise probing needs it")


@torch.no_grad()
def layer_states(reranker, batches: list[dict], device) -> torch.Tensor:
    """(layers, pairs, hidden) float32: the read token's state (model/read_position.py) after each decoder layer, the
    intermediate ones through the final norm (the last one already is)."""
    norm = final_norm(reranker.backbone)
    out = []
    for inputs in batches:
        ids, mask = inputs["input_ids"].to(device), inputs["attention_mask"].to(device)
        with reranker.autocast():  # as the job scored, so the last layer's head row is the job's own score
            hidden = reranker.backbone(
                input_ids=ids, attention_mask=mask, use_cache=False, output_hidden_states=True
            ).hidden_states
            rows, last = torch.arange(ids.size(0), device=device), reranker.read.index(ids, mask)  # the head's token
            states = torch.stack([h[rows, last] for h in hidden[1:]])  # [0] is the embeddings
            states = torch.cat([norm(states[:-1]), states[-1:]])
        out.append(states.float().cpu())
    return torch.cat(out, dim=1)


class Prober:
    """Probes every layer of the job's current checkpoint on `split`; `merge` folds LoRA into the weights
    while computing hidden states (restored exactly); `fit`: also fit a linear probe per layer."""

    def __init__(self, job: TrainedJob, split: str, merge: bool = True, fit: ProbeFit | None = None):
        self.job, self.split, self.merge, self.fit = job, split, merge, fit
        self.switch = LoraSwitch(job.reranker.backbone)
        self.batches = job.data.eval_batches(split)
        self.pairs = [(q, p) for b in self.batches for q, p in zip(b.qids, b.pids)]
        self.qrels = job.data.qrels(split)

    def rows(self) -> list[dict]:
        """One row per layer and probe (`head`, then `fitted`): the measures of the ranking read there."""
        started = time.perf_counter()
        states = self._states([b.inputs for b in self.batches])
        head = self.job.reranker.head
        scores = states @ head.weight.detach().float().cpu()[0]
        rows = [self._evaluate(scores[i], i, "head") for i in range(states.size(0))]
        if self.fit is not None:
            rows += self._fitted(states, self.fit)
        log.info("step %s: %d layers probed in %.1f s", self.job.step, states.size(0), time.perf_counter() - started)
        return rows

    def _states(self, batches: list[dict]) -> torch.Tensor:
        self.job.reranker.eval()
        with self.switch.only(self.switch.sites), self.switch.merged() if self.merge else nullcontext():
            return layer_states(self.job.reranker, batches, self.job.device)

    def _evaluate(self, scores: torch.Tensor, layer: int, probe: str, **extra) -> dict:
        run: dict[str, dict[str, float]] = {}
        for (qid, pid), value in zip(self.pairs, scores.tolist()):
            run.setdefault(qid, {})[pid] = value
        values = metrics.compute(self.qrels, run, self.job.measures)
        return {
            "step": self.job.step,
            "split": self.split,
            "depth": self.job.depth_of(self.split),
            "layer": layer,
            "probe": probe,
            **extra,
            **values,
        }

    def _fitted(self, states: torch.Tensor, fit: ProbeFit) -> list[dict]:
        data, size = self.job.data, self.job.data.spec.eval_batch_size
        pairs = [pair for k in range(fit.groups) for pair in data.train_set.group(k)]
        train = self._states([pad(pairs[i : i + size], data.pad_id) for i in range(0, len(pairs), size)])
        rows = []
        for i in range(states.size(0)):
            probe = fit_probe(train[i], data.spec.group_size, fit.l2)
            with torch.no_grad():
                rows.append(self._evaluate(probe(states[i]).squeeze(-1), i, "fitted", fit_pairs=len(pairs)))
        return rows
