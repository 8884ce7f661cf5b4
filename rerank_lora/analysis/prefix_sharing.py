"""Scoring ablation variants without recomputing what they share. A variant whose LoRA sites agree with a
reference (every site on, or none) in every layer below layer f computes exactly the reference's hidden states up
to f. So each reference is run one layer at a time over every batch, keeping only the current layer's input, and a
variant runs just its own layers f.. from the reference's state there: dropping layer x or cutting at boundary b
costs the layers above x or b, not the whole model. Each layer sees the same inputs and the same (merged) weights as
on the plain path, so the scores are bitwise the plain path's (tests/test_ablate.py checks the tables are equal)."""

import time
from contextlib import contextmanager, nullcontext

import torch
from torch import nn
from tqdm import tqdm

from rerank_lora.analysis.lora_switch import LoraSwitch, Site

Run = dict[str, dict[str, float]]


def decoder_layers(backbone) -> nn.ModuleList:
    model = backbone.get_base_model() if hasattr(backbone, "get_base_model") else backbone
    return model.layers


class LayerWindow:
    """Makes the backbone run only decoder layers [start, stop): the input of layer `start` is `self.state` (unless
    start is 0) and the output of layer stop - 1 is kept in `self.output`."""

    def __init__(self, backbone):
        self.model = backbone.get_base_model() if hasattr(backbone, "get_base_model") else backbone
        self.layers = list(self.model.layers)
        self.state: torch.Tensor | None = None
        self.output: torch.Tensor | None = None

    @contextmanager
    def running(self, start: int, stop: int):
        full = self.model.layers
        hooks = [self.layers[stop - 1].register_forward_hook(self._keep_output)]
        if start > 0:
            hooks.append(self.layers[start].register_forward_pre_hook(self._inject, with_kwargs=True))
        self.model.layers = nn.ModuleList(self.layers[start:stop])
        try:
            yield self
        finally:
            self.model.layers = full
            for hook in hooks:
                hook.remove()

    def _inject(self, module, args, kwargs):
        if args:
            return (self.state, *args[1:]), kwargs
        return args, {**kwargs, "hidden_states": self.state}

    def _keep_output(self, module, args, output):
        self.output = output[0] if isinstance(output, tuple) else output


class PrefixSharingScorer:
    """Runs of `variants` (sets of LoRA sites on) over `batches`, as a list in the same order."""

    def __init__(self, switch: LoraSwitch, reranker, batches, merge: bool = True, desc: str = "scoring"):
        self.switch, self.reranker, self.batches, self.merge, self.desc = switch, reranker, batches, merge, desc
        self.window = LayerWindow(reranker.backbone)
        self.num_layers = len(self.window.layers)
        self.references = [frozenset(switch.sites), frozenset()]

    def first_difference(self, on: frozenset[Site], reference: frozenset[Site]) -> int:
        """The lowest layer whose sites differ between the two (num_layers: none does)."""
        layers = {s.layer for s in on ^ reference}
        return min(layers) if layers else self.num_layers

    def plan(self, variants: list[frozenset[Site]]) -> list[tuple[int, int]]:
        """For each variant, (reference index, the layer its own run starts at)."""
        plans = []
        for on in variants:
            starts = [self.first_difference(on, ref) for ref in self.references]
            best = max(range(len(starts)), key=lambda i: starts[i])
            plans.append((best, starts[best]))
        return plans

    @torch.inference_mode()
    def runs(self, variants: list[frozenset[Site]], timings: list[float] | None = None) -> list[Run]:
        """`timings`, when given, receives each variant's seconds (a reference's own layer-by-layer pass counts
        as that of the variant equal to it)."""
        plans, out = self.plan(variants), [None] * len(variants)
        seconds = [0.0] * len(variants)
        was_training = self.reranker.training
        self.reranker.eval()
        try:
            for r, reference in enumerate(self.references):
                mine = [i for i, (ref, _) in enumerate(plans) if ref == r]
                if not mine:
                    continue
                deepest = max(plans[i][1] for i in mine)
                states: list[torch.Tensor | None] = [None] * len(self.batches)
                layers = range(min(deepest, self.num_layers - 1) + 1)
                for layer in tqdm(layers, desc=f"{self.desc} (reference {r})", unit="layer", leave=False):
                    for i in mine:
                        if plans[i][1] == layer:
                            started = time.perf_counter()
                            out[i] = self._score_from(variants[i], layer, states)
                            seconds[i] += time.perf_counter() - started
                    started = time.perf_counter()
                    finished = self._advance(reference, layer, states)
                    equal = [i for i in mine if plans[i][1] == self.num_layers]
                    for i in equal:
                        seconds[i] += (time.perf_counter() - started) / len(equal)
                        if finished is not None:
                            out[i] = finished
        finally:
            self.reranker.train(was_training)
        if timings is not None:
            timings[:] = seconds
        return out

    def _sites(self, on: frozenset[Site], layers: range) -> frozenset[Site]:
        return frozenset(s for s in on if s.layer in layers)

    def _advance(self, reference: frozenset[Site], layer: int, states: list) -> Run | None:
        """Every batch's state through `layer` with the reference's sites; after the last layer, its run."""
        last = layer == self.num_layers - 1
        run = self._forward(self._sites(reference, range(layer, layer + 1)), layer, layer + 1, states, keep=True)
        return run if last else None

    def _score_from(self, on: frozenset[Site], layer: int, states: list) -> Run:
        return self._forward(self._sites(on, range(layer, self.num_layers)), layer, self.num_layers, states, keep=False)

    def _forward(self, on: frozenset[Site], start: int, stop: int, states: list, keep: bool) -> Run:
        run: Run = {}
        device = next(self.reranker.parameters()).device
        bf16 = torch.autocast("cuda", dtype=torch.bfloat16, enabled=device.type == "cuda")  # as evaluator.score
        with self.switch.only(on), self.switch.merged() if self.merge else nullcontext(), self.window.running(start, stop):
            for b, batch in enumerate(self.batches):
                self.window.state = states[b]
                inputs = {k: v.to(device) for k, v in batch.inputs.items()}
                with bf16:
                    scores = self.reranker(**inputs).tolist()
                if keep:
                    states[b] = self.window.output
                for qid, pid, value in zip(batch.qids, batch.pids, scores):
                    run.setdefault(qid, {})[pid] = value
        return run
